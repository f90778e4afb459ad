"""Streaming a whole collection through a simple query, fast on the embedded store.

The embedded store evaluates queries in Python with a per-document cost of tens of
microseconds (copying, index upkeep); a full export reads every label and structure of a
campaign, which that cost makes the bottleneck. On the embedded store this module reads
the collection's SQLite file directly, read-only, and decodes the BSON documents with
pymongo's C decoder. Queries are the subset the export uses: equality, ``$in`` and
``$or``, with dotted paths.

That direct read depends on litemongo's private on-disk layout (one ``documents`` table
of BSON blobs per collection file, an ``info`` table recording how ids are encoded as
keys), so one object, :class:`ScanBackend`, decides per connection whether it applies:
the store must be the embedded one, the installed litemongo must be a version whose
layout this module was written against (:data:`LITEMONGO_UNDERSTOOD`), and each file
must show that layout. Otherwise it reads through the driver, which gives the same
documents more slowly; on the embedded store it says so once per process
(:class:`ScanFallbackWarning`), because a silent fallback would turn a two-second
``aloop status`` into minutes with no hint why.
"""

from __future__ import annotations

import importlib.metadata
import re
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import bson
from mongoengine.connection import get_db

from db import connection

#: litemongo releases whose SQLite layout the direct read understands, as
#: ``(lowest, first not understood)``: 0.2.0 introduced the recorded key format; a new
#: minor release may change the layout, so it is read through the driver until checked.
LITEMONGO_UNDERSTOOD: tuple[tuple[int, int, int], tuple[int, int, int]] = ((0, 2, 0), (0, 3, 0))

#: The tables and columns of a litemongo 0.2 collection file that the direct read uses.
EXPECTED_LAYOUT: dict[str, frozenset[str]] = {
    "documents": frozenset({"_id", "doc"}),
    "info": frozenset({"key", "value"}),
}

#: How litemongo encodes string ids as SQLite keys, by the ``key_format`` it records:
#: 1 (legacy) keeps the id as it is, 2 (typed) prefixes strings with ``s:``.
_KEY_ENCODERS: dict[int, Callable[[str], str]] = {1: str, 2: lambda key: "s:" + key}

#: Ids per ``IN (...)`` lookup, below SQLite's parameter limit (litemongo uses the same).
_CHUNK = 500

_MISSING = object()


class ScanFallbackWarning(RuntimeWarning):
    """The embedded store is read through its (slower) query engine instead of directly."""


#: Reasons already warned about in this process ("version", "layout"): once each, since a
#: warning per call would flood a dashboard that looks structures up on every request.
_warned: set[str] = set()


def _warn_once(reason: str, message: str) -> None:
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(message, ScanFallbackWarning, stacklevel=2)


def installed_litemongo_version() -> str | None:
    """The installed litemongo's version string, None when it is not installed."""
    try:
        return importlib.metadata.version("litemongo")
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a version string; a missing patch counts as 0."""
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if found is None:
        return None
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def _range_text() -> str:
    low, high = (".".join(map(str, r)) for r in LITEMONGO_UNDERSTOOD)
    return f">={low},<{high}"


def version_understood(version: str | None) -> bool:
    """Whether ``version`` of litemongo lies in :data:`LITEMONGO_UNDERSTOOD`."""
    release = _release(version) if version else None
    low, high = LITEMONGO_UNDERSTOOD
    return release is not None and low <= release < high


def _get(doc: dict, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _field_matches(value: Any, condition: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if isinstance(condition, dict) and "$in" in condition:
        wanted = condition["$in"]
        return any(v in wanted for v in values)
    return any(v == condition for v in values)


def matches(doc: dict, query: dict) -> bool:
    """Whether ``doc`` satisfies ``query`` (equality, ``$in``, ``$or``; dotted paths)."""
    for key, condition in query.items():
        if key == "$or":
            if not any(matches(doc, sub) for sub in condition):
                return False
            continue
        value = _get(doc, key)
        if value is _MISSING or not _field_matches(value, condition):
            return False
    return True


@dataclass
class _DirectFile:
    """One collection file opened read-only, with how its ids are encoded as keys."""

    con: sqlite3.Connection
    encode: Callable[[str], str]


def _read_all(direct: _DirectFile, query: dict) -> Iterator[dict]:
    """The file's documents matching ``query`` in insertion order; closes the file."""
    try:
        for (blob,) in direct.con.execute("SELECT doc FROM documents ORDER BY ROWID"):
            doc = bson.decode(blob)
            if matches(doc, query):
                yield doc
    finally:
        direct.con.close()


class _LayoutError(Exception):
    """A collection file differs from the layout the direct read understands."""


def _key_encoder(con: sqlite3.Connection) -> Callable[[str], str]:
    """How an open collection file encodes string ids, after checking its layout.

    Raises
    ------
    _LayoutError
        Naming the first difference from :data:`EXPECTED_LAYOUT` or the key formats known.
    """
    for table, wanted in EXPECTED_LAYOUT.items():
        columns = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        if not wanted <= columns:
            raise _LayoutError(
                f"its table {table!r} has columns {sorted(columns)}, expected {sorted(wanted)}"
            )
    row = con.execute("SELECT value FROM info WHERE key = 'key_format'").fetchone()
    # No recorded format: litemongo 0.2 treats such a file as legacy when it holds data
    # (and records the format on opening it), and an empty one has nothing to look up.
    key_format = 1 if row is None else row[0]
    if key_format not in _KEY_ENCODERS:
        raise _LayoutError(f"it records an unknown key_format {key_format!r}")
    return _KEY_ENCODERS[key_format]


class ScanBackend:
    """How this module reads the collections of one connection (one mongoengine alias).

    ``direct`` tells whether the connection is the embedded store under a litemongo
    version in :data:`LITEMONGO_UNDERSTOOD`; it is decided once, when the backend is
    made (see :func:`backend`). Even then each collection file's layout is checked
    when it is opened, since files appear and change while the connection lives.

    Parameters
    ----------
    alias
        The mongoengine alias the backend reads through.
    target
        Where that alias is connected; None reads through the driver.
    """

    def __init__(self, alias: str, target: connection.Target | None) -> None:
        self.alias = alias
        self.target = target
        self.direct = False
        if target is None or target.kind != "embedded" or target.path is None:
            return  # a server or the in-memory store: the driver is the normal path
        found = installed_litemongo_version()
        if not version_understood(found):
            _warn_once(
                "version",
                f"db.scan reads the embedded store's files directly only for litemongo "
                f"{_range_text()}, but litemongo {found or '(not installed)'} is installed; "
                "reading through its query engine instead (same results, much slower on "
                "large campaigns)",
            )
            return
        self.direct = True

    def _open(self, collection: str) -> _DirectFile | None:
        """The collection's file opened read-only, or None to read through the driver."""
        if not self.direct:
            return None
        assert self.target is not None and self.target.path is not None
        path = self.target.path / self.target.db_name / collection
        if not path.is_file():
            return None  # not created yet: the driver answers "nothing" just as well
        con = None
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            return _DirectFile(con, _key_encoder(con))
        except _LayoutError as exc:
            problem = str(exc)
        except sqlite3.Error as exc:
            problem = f"it cannot be read as SQLite ({exc})"
        if con is not None:
            con.close()
        _warn_once(
            "layout",
            f"db.scan reads the embedded store's files directly, but {path} does not have "
            f"the layout of litemongo {_range_text()} ({problem}); reading through the "
            "store's query engine instead (same results, much slower on large campaigns)",
        )
        return None

    def scan(self, collection: str, query: dict, fast: bool = True) -> Iterator[dict]:
        """Every document of ``collection`` matching ``query``, in natural order."""
        direct = self._open(collection) if fast else None
        if direct is None:
            yield from get_db(self.alias)[collection].find(query)
            return
        # A generator, as before, so nothing is opened until the caller starts reading.
        yield from _read_all(direct, query)

    def get_many(self, collection: str, ids: list[str], fast: bool = True) -> dict[str, dict]:
        """``{id: document}`` for the string ``ids`` found; missing ids are left out."""
        direct = self._open(collection) if fast else None
        if direct is None:
            found = get_db(self.alias)[collection].find({"_id": {"$in": list(ids)}})
            return {d["_id"]: d for d in found}
        out = {}
        try:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for (blob,) in direct.con.execute(
                    f"SELECT doc FROM documents WHERE _id IN ({marks})",
                    [direct.encode(i) for i in chunk],
                ):
                    doc = bson.decode(blob)
                    out[doc["_id"]] = doc
        finally:
            direct.con.close()
        return out

    def count_by(
        self, collection: str, key: str, match: dict | None = None, fast: bool = True
    ) -> dict[Any, int]:
        """``{value of key: documents}`` over the documents matching ``match``."""
        direct = self._open(collection) if fast else None
        if direct is None:
            pipeline: list[dict] = [{"$match": match}] if match else []
            pipeline.append({"$group": {"_id": f"${key}", "n": {"$sum": 1}}})
            rows = get_db(self.alias)[collection].aggregate(pipeline)
            return {row["_id"]: row["n"] for row in rows}
        counts: dict[Any, int] = {}
        for doc in _read_all(direct, match or {}):
            value = _get(doc, key)
            # $group puts documents without the key under None, as this does.
            value = None if value is _MISSING else value
            counts[value] = counts.get(value, 0) + 1
        return counts


#: The backend of each alias, made on first use after each connect.
_backends: dict[str, ScanBackend] = {}


def backend(alias: str = "default") -> ScanBackend:
    """The :class:`ScanBackend` of ``alias``'s current connection.

    A reconnect gives the alias a new target object, which makes a new backend, so the
    decision is taken once per connection, not once per process.
    """
    target = connection.current_target(alias)
    current = _backends.get(alias)
    if current is None or current.target is not target:
        current = _backends[alias] = ScanBackend(alias, target)
    return current


# The module-level functions callers import (export, copy, lineage, views, repository).


def scan(collection: str, query: dict, fast: bool = True, alias: str = "default") -> Iterator[dict]:
    """Every document of ``collection`` matching ``query``, streamed in natural order."""
    return backend(alias).scan(collection, query, fast)


def get_many(
    collection: str, ids: list[str], fast: bool = True, alias: str = "default"
) -> dict[str, dict]:
    """``{id: document}`` for string ids; on the embedded store by primary-key lookups.

    The store's query engine first (re)builds in-memory indexes over the whole collection
    whenever another process has written to it (seconds for 100k structures); a key
    lookup in its SQLite file costs microseconds, whatever the collection's size.
    """
    return backend(alias).get_many(collection, ids, fast)


def count_by(collection: str, key: str, match: dict | None = None) -> dict[Any, int]:
    """``{value of key: documents}``, grouped in the database on a server and by one
    direct pass on the embedded store, whose aggregation engine copies every document
    (minutes for 100k structures; the direct pass takes about a second)."""
    return backend().count_by(collection, key, match)
