"""Connecting the documents to a database named by one URI.

- ``mongodb://`` / ``mongodb+srv://``: a real MongoDB server (pymongo).
- ``embedded://PATH`` (or no URI at all): a file-backed store under the data directory,
  no server needed. It is litemongo's SQLite engine: every collection is one SQLite file in
  WAL mode, so a second process (the dashboard, ``aloop status``) sees committed writes.
  Chosen over mongita after measuring (benchmarks/README.md): mongita has no aggregation
  pipeline and no unique indexes, both of which the data layer relies on.
- ``memory://NAME``: the same engine held in memory, for unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mongoengine
from mongoengine.connection import get_db

from aloop.errors import InfrastructureError
from aloop.settings import mask_uri

DEFAULT_DB_NAME = "aloop"
SERVER_TIMEOUT_MS = 3000


class DatabaseUnavailable(InfrastructureError):
    """The configured database cannot be reached or opened; the message names it."""


@dataclass(frozen=True)
class Target:
    """A parsed database URI."""

    kind: str  # "mongodb", "embedded" or "memory"
    uri: str
    db_name: str
    path: Path | None = None

    @property
    def display(self) -> str:
        """Where the data lives, without secrets."""
        if self.kind == "embedded":
            return f"embedded store at {self.path}"
        if self.kind == "memory":
            return f"in-memory store {self.uri}"
        return mask_uri(self.uri)


def default_data_dir() -> Path:
    """``$ALOOP_DATA_DIR``, else ``$XDG_DATA_HOME/aloop``, else ``~/.local/share/aloop``."""
    from aloop.settings import get_settings

    return get_settings().data_dir


def parse_uri(uri: str | None) -> Target:
    """Resolve a URI (or None: the embedded store in the data directory) to a target."""
    if not uri:
        return Target("embedded", "embedded://", DEFAULT_DB_NAME, default_data_dir() / "db")
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        name = urlsplit(uri).path.lstrip("/") or DEFAULT_DB_NAME
        return Target("mongodb", uri, name)
    if uri.startswith("embedded://"):
        rest = uri.removeprefix("embedded://")
        path = Path(rest).expanduser() if rest else default_data_dir() / "db"
        return Target("embedded", uri, DEFAULT_DB_NAME, path.resolve())
    if uri.startswith("memory://"):
        return Target("memory", uri, uri.removeprefix("memory://") or DEFAULT_DB_NAME)
    raise DatabaseUnavailable(
        f"unknown database URI scheme in {mask_uri(uri)!r}; "
        "use mongodb://, mongodb+srv://, embedded://PATH or memory://NAME"
    )


def _litemongo_client_class(store_uri: str) -> type:
    """A litemongo client class that mongoengine can instantiate with its own kwargs."""
    import litemongo

    class _Client(litemongo.MongoClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(store_uri)

        def close(self) -> None:
            # litemongo's in-memory store has nothing to close; its file stores do.
            if hasattr(self._store, "close"):
                super().close()

    return _Client


def connect(uri: str | None = None, alias: str = "default") -> Target:
    """Connect the documents to ``uri`` and make sure it answers.

    Raises
    ------
    DatabaseUnavailable
        Within a few seconds when a server does not answer or a path cannot be used;
        the message names the host or path, never the password.
    """
    target = parse_uri(uri)
    mongoengine.disconnect(alias)
    if target.kind == "mongodb":
        mongoengine.connect(
            db=target.db_name,
            host=target.uri,
            alias=alias,
            serverSelectionTimeoutMS=SERVER_TIMEOUT_MS,
            connectTimeoutMS=SERVER_TIMEOUT_MS,
            uuidRepresentation="standard",
            tz_aware=True,
        )
        _ping(target, alias)
    else:
        if target.kind == "embedded":
            assert target.path is not None
            try:
                target.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(f"cannot use {target.display}: {exc.strerror}") from None
            store_uri = f"file://{target.path}"
        else:
            store_uri = f"mem://{target.db_name}?engine=memory"
        mongoengine.connect(
            db=target.db_name,
            host="mongodb://localhost",
            alias=alias,
            mongo_client_class=_litemongo_client_class(store_uri),
            uuidRepresentation="standard",
            tz_aware=True,
        )
    if alias == "default":  # the documents' own alias; others get indexes when used so
        _ensure_indexes()
    _targets[alias] = target
    return target


#: The target each alias is connected to (for backend-specific fast paths).
_targets: dict[str, Target] = {}


def current_target(alias: str = "default") -> Target | None:
    """Where the alias is connected, or None."""
    return _targets.get(alias)


def _ping(target: Target, alias: str) -> None:
    from pymongo.errors import OperationFailure, PyMongoError

    try:
        get_db(alias).command("ping")
    except OperationFailure as exc:
        mongoengine.disconnect(alias)
        message = str((exc.details or {}).get("errmsg", exc))
        if exc.code in (18, 13) or "auth" in message.lower():
            reason = "authentication failed (check the user, password and authSource)"
        else:
            reason = message
        raise DatabaseUnavailable(f"MongoDB at {target.display} refused: {reason}") from None
    except PyMongoError as exc:
        mongoengine.disconnect(alias)
        first = str(exc).split(",")[0].split(" (configured")[0]
        raise DatabaseUnavailable(
            f"cannot reach MongoDB at {target.display} within "
            f"{SERVER_TIMEOUT_MS / 1000:g} s: {mask_uri(first)}"
        ) from None


def _ensure_indexes() -> None:
    from db.documents import ALL_DOCUMENTS

    for doc in ALL_DOCUMENTS:
        doc._collection = None  # a new connection: forget the old collection handle
        doc.ensure_indexes()


def disconnect(alias: str = "default") -> None:
    """Close the connection (flushes and closes embedded store files)."""
    from db.documents import ALL_DOCUMENTS

    mongoengine.disconnect(alias)
    _targets.pop(alias, None)
    for doc in ALL_DOCUMENTS:
        doc._collection = None


def database(alias: str = "default") -> Any:
    """The raw database handle (pymongo-compatible) of the connection."""
    return get_db(alias)
