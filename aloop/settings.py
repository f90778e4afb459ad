"""Machine-level settings from the environment (prefix ``ALOOP_``), not from a campaign."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "aloop"


class AloopSettings(BaseSettings):
    """Settings that belong to the machine or the user, never to a campaign's results.

    Each field is read from ``ALOOP_<NAME>`` (e.g. ``ALOOP_DB_URI``).
    """

    model_config = SettingsConfigDict(env_prefix="ALOOP_", extra="ignore", frozen=True)

    db_uri: str | None = Field(
        None, description="database URI; wins over a campaign file's database.uri"
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="embedded database, model files and exports live here",
    )


def get_settings() -> AloopSettings:
    """Settings as the environment says now (read afresh: tests change the environment)."""
    return AloopSettings()


def resolve_db_uri(config_uri: str | None = None) -> str | None:
    """The database URI in force: ALOOP_DB_URI, else the campaign's, else None (embedded)."""
    return get_settings().db_uri or config_uri


#: URI options whose value is a secret, masked like the password.
_SECRET_OPTIONS = re.compile(r"((?:tlsCertificateKeyFilePassword|password)=)[^&;#]*", re.I)


def _userinfo(uri: str) -> tuple[str, str, str] | None:
    """``(scheme://user:, password, @rest)`` of a URI with a password, else None.

    The password ends at the *last* ``@`` of the URI, so that an unescaped ``@``, ``/``
    or ``?`` inside it is masked too (masking too much is safe, too little is not).
    """
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)(.*)(@[^@]*)$", uri, re.S)
    return None if match is None else (match[1], match[2], match[3])


def uri_secret(uri: str) -> str | None:
    """The password of ``uri`` as written, or None: what no message may contain."""
    parts = _userinfo(uri)
    return parts[1] if parts and parts[1] else None


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (safe for logs and pages)."""
    parts = _userinfo(uri)
    if parts is not None:
        uri = f"{parts[0]}***{parts[2]}"
    return _SECRET_OPTIONS.sub(r"\1***", uri)
