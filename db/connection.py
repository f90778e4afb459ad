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

import mongoengine
from mongoengine.connection import get_db

from aloop.errors import InfrastructureError, UserError
from aloop.settings import mask_uri
from db.uri import InvalidDatabaseUri, check_mongo_uri, resolve_srv

__all__ = ["DatabaseUnavailable", "InvalidDatabaseUri", "NoEmbeddedStore", "Target", "connect"]

DEFAULT_DB_NAME = "aloop"
SERVER_TIMEOUT_MS = 3000


class DatabaseUnavailable(InfrastructureError):
    """The configured database cannot be reached or opened; the message names it."""


class NoEmbeddedStore(UserError):
    """A read-only command named an embedded store that does not exist (a typo, most
    likely): refused rather than served as an empty store."""


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
    """Resolve a URI (or None: the embedded store in the data directory) to a target.

    Raises
    ------
    InvalidDatabaseUri
        A URI that cannot be right (a user error: one line, the password masked).
    """
    if not uri:
        return Target("embedded", "embedded://", DEFAULT_DB_NAME, default_data_dir() / "db")
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        return Target("mongodb", uri, check_mongo_uri(uri))
    if uri.startswith("embedded://"):
        rest = uri.removeprefix("embedded://")
        path = Path(rest).expanduser() if rest else default_data_dir() / "db"
        return Target("embedded", uri, DEFAULT_DB_NAME, path.resolve())
    if uri.startswith("memory://"):
        return Target("memory", uri, uri.removeprefix("memory://") or DEFAULT_DB_NAME)
    raise InvalidDatabaseUri(
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


def connect(uri: str | None = None, alias: str = "default", create: bool = True) -> Target:
    """Connect the documents to ``uri`` and make sure it answers.

    ``create=False`` is for commands that only read: an embedded store that does not
    exist is refused (:class:`NoEmbeddedStore`) instead of created empty.

    Raises
    ------
    InvalidDatabaseUri
        At once, for a URI that cannot be right.
    DatabaseUnavailable
        Within a few seconds when a server does not answer or a path cannot be used;
        the message names the host or path, never the password.
    """
    target = parse_uri(uri)
    mongoengine.disconnect(alias)
    if target.kind == "mongodb":
        _connect_server(target, alias)
    else:
        if target.kind == "embedded":
            store_uri = f"file://{_embedded_path(target, create)}"
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


def _embedded_path(target: Target, create: bool) -> Path:
    """The embedded store's directory: created, or (``create=False``) required to exist."""
    assert target.path is not None
    if not create:
        if not (target.path / target.db_name).is_dir():
            raise NoEmbeddedStore(
                f"no embedded store at {target.path} (check the path; `aloop run` creates one)"
            )
        return target.path
    try:
        target.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot use {target.display}: {exc.strerror}") from None
    return target.path


def _connect_server(target: Target, alias: str) -> None:
    """Connect ``alias`` to a MongoDB server and ping it, each step within the timeout."""
    from pymongo.errors import PyMongoError

    if target.uri.startswith("mongodb+srv://"):
        try:
            resolve_srv(target.uri, SERVER_TIMEOUT_MS / 1000)
        except InvalidDatabaseUri:
            raise
        except InfrastructureError as exc:
            raise DatabaseUnavailable(str(exc)) from None
    try:
        mongoengine.connect(
            db=target.db_name,
            host=target.uri,
            alias=alias,
            serverSelectionTimeoutMS=SERVER_TIMEOUT_MS,
            connectTimeoutMS=SERVER_TIMEOUT_MS,
            uuidRepresentation="standard",
            tz_aware=True,
        )
    except (PyMongoError, ValueError) as exc:  # checked above: what is left is the server's
        mongoengine.disconnect(alias)
        raise DatabaseUnavailable(
            f"cannot connect to MongoDB at {target.display}: {mask_uri(str(exc))}"
        ) from None
    _ping(target, alias)


def check_reachable(uri: str | None) -> Target:
    """Refuse a bad URI or an unreachable database now, before a long command starts.

    Connects (an embedded store is created if missing, as the command will), pings and
    disconnects, on an alias of its own; raises as :func:`connect` does.
    """
    alias = "aloop-check"
    target = connect(uri, alias=alias)
    disconnect(alias)
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
