"""Checking a ``mongodb://`` / ``mongodb+srv://`` URI before anything connects.

pymongo's own parser does most of it (escaping, ports, options and their values, empty
hosts, the SRV rules); this adds what pymongo lets through (an invalid IPv6 or IPv4
literal, a host with a space, a stray ``%`` in an option, a database name with a dot,
a duplicated option) and turns every complaint into one :class:`InvalidDatabaseUri`
naming what is wrong, with the password masked. The SRV lookup is a separate step
(:func:`resolve_srv`) because it asks DNS, with a deadline.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from typing import Any

from aloop.errors import InfrastructureError, UserError
from aloop.settings import mask_uri, uri_secret

#: A host name as DNS (and docker's service names) allows.
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_DOTTED_QUAD = re.compile(r"^[0-9.]+$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class InvalidDatabaseUri(UserError):
    """A database URI that cannot be right, whatever the server: the message says why."""


def _refuse(uri: str, reason: str) -> InvalidDatabaseUri:
    secret = uri_secret(uri)
    if secret:  # a parser may echo a piece of the URI: never the password
        reason = reason.replace(secret, "***")
    return InvalidDatabaseUri(f"invalid database URI {mask_uri(uri)}: {reason}")


def _known_options() -> set[str]:
    from pymongo import common

    names = set(common.URI_OPTIONS_VALIDATOR_MAP) | set(common.URI_OPTIONS_ALIAS_MAP)
    return {n.lower() for n in names | set(common.URI_OPTIONS_DEPRECATION_MAP)}


def _unknown_option(uri: str) -> str | None:
    """The first option name pymongo does not know, when naming it cannot leak a password
    (an option part with an ``@`` is more likely an unescaped password than options)."""
    _, _, query = uri.partition("?")
    if not query or "@" in query:
        return None
    known = _known_options()
    for pair in re.split("[&;]", query):
        key = pair.partition("=")[0]
        if key and key.lower() not in known:
            return key
    return None


def _pymongo_reason(uri: str, exc: Exception) -> str:
    text = str(exc).split(". Did you mean")[0].rstrip(".")
    if text.startswith("Unknown option"):
        key = _unknown_option(uri)
        if key is None:
            return "unknown option (is a '?' in the password unescaped?)"
        return f"unknown option {key!r}"
    return text


def _parse(uri: str) -> dict[str, Any]:
    """pymongo's parse, without the SRV lookup; its warnings (a duplicated option) refuse."""
    from pymongo.errors import PyMongoError
    from pymongo.uri_parser_shared import _validate_uri

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = _validate_uri(uri, validate=True, warn=False)
        except (PyMongoError, ValueError, OSError) as exc:
            # OSError: a TLS file option (tlsCAFile, ...) naming a file that is not there
            raise _refuse(uri, _pymongo_reason(uri, exc)) from None
    if caught:
        raise _refuse(uri, str(caught[0].message).lower().rstrip("."))
    return parsed


def _check_host(uri: str, host: str) -> None:
    if host.endswith(".sock"):  # a unix domain socket, percent-encoded in the URI
        return
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _refuse(uri, f"{host!r} is not a valid IPv6 address") from None
    elif _DOTTED_QUAD.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _refuse(uri, f"{host!r} is not a valid IPv4 address or host name") from None
    elif not _HOSTNAME.match(host):
        raise _refuse(uri, f"{host!r} is not a valid host name")


def check_mongo_uri(uri: str) -> str:
    """Refuse a URI that cannot be right; its database name (default ``aloop``).

    Raises
    ------
    InvalidDatabaseUri
        One line naming what is wrong, the password masked.
    """
    if _BAD_PERCENT.search(uri):
        raise _refuse(uri, "a '%' must be escaped as %25 (percent-encode the password)")
    parsed = _parse(uri)
    for host, _ in parsed["nodelist"]:
        _check_host(uri, host)
    if parsed["fqdn"]:
        _check_host(uri, parsed["fqdn"])
    if parsed["collection"] is not None:
        name = f"{parsed['database']}.{parsed['collection']}"
        raise _refuse(uri, f"database name {name!r} must not contain '.'")
    return parsed["database"] or "aloop"


def resolve_srv(uri: str, timeout_s: float) -> None:
    """Look up a ``mongodb+srv://`` URI's SRV record within ``timeout_s``.

    A name that does not exist is the user's to fix (:class:`InvalidDatabaseUri`);
    a lookup that gets no answer in time is infrastructure (no network, no DNS).
    """
    from pymongo.errors import PyMongoError
    from pymongo.uri_parser import parse_uri

    try:
        parse_uri(uri, connect_timeout=timeout_s)
    except (PyMongoError, ValueError) as exc:
        reason = _pymongo_reason(uri, exc)
        if "timed out" in reason.lower() or "no nameservers" in reason.lower():
            raise InfrastructureError(
                f"cannot look up the SRV record of {mask_uri(uri)} within {timeout_s:g} s: {reason}"
            ) from None
        raise _refuse(uri, f"SRV lookup failed: {reason}") from None
