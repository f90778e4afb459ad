"""Streaming a whole collection through a simple query, fast on the embedded store.

The embedded store evaluates queries in Python with a per-document cost of tens of
microseconds (copying, index upkeep); a full export reads every label and structure of a
campaign, which that cost makes the bottleneck. On the embedded store this module reads
the collection's SQLite file directly, read-only, and decodes the BSON documents with
pymongo's C decoder: the store's own layout (one ``documents`` table of BSON blobs per
collection file, litemongo's SQLite engine), checked before use, with the ordinary query
as the fallback. Queries are the subset the export uses: equality, ``$in`` and ``$or``,
with dotted paths.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import bson
from mongoengine.connection import get_db

from db import connection

_MISSING = object()


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


def _key_encoder(con: sqlite3.Connection) -> Any:
    """How the file encodes string ids as keys (litemongo's recorded key format)."""
    try:
        row = con.execute("SELECT value FROM info WHERE key = 'key_format'").fetchone()
    except sqlite3.Error:
        return None
    if row is None or row[0] == 1:  # legacy: the id as it is
        return str
    if row[0] == 2:  # typed: strings carry an "s:" prefix
        return lambda key: "s:" + key
    return None


def get_many(
    collection: str, ids: list[str], fast: bool = True, alias: str = "default"
) -> dict[str, dict]:
    """``{id: document}`` for string ids; on the embedded store by primary-key lookups.

    The store's query engine first (re)builds in-memory indexes over the whole collection
    whenever another process has written to it (seconds for 100k structures); a key
    lookup in its SQLite file costs microseconds, whatever the collection's size.
    """
    con = _embedded_file(collection, alias) if fast else None
    encode = _key_encoder(con) if con is not None else None
    if con is None or encode is None:
        if con is not None:
            con.close()
        found = get_db(alias)[collection].find({"_id": {"$in": list(ids)}})
        return {d["_id"]: d for d in found}
    out = {}
    try:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for (blob,) in con.execute(
                f"SELECT doc FROM documents WHERE _id IN ({marks})", [encode(i) for i in chunk]
            ):
                doc = bson.decode(blob)
                out[doc["_id"]] = doc
    finally:
        con.close()
    return out


def _embedded_file(collection: str, alias: str = "default") -> Any:
    target = connection.current_target(alias)
    if target is None or target.kind != "embedded" or target.path is None:
        return None
    path = target.path / target.db_name / collection
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        cols = [r[1] for r in con.execute("PRAGMA table_info(documents)")]
    except sqlite3.Error:
        return None
    if "doc" not in cols:
        con.close()
        return None
    return con


def scan(collection: str, query: dict, fast: bool = True, alias: str = "default") -> Iterator[dict]:
    """Every document of ``collection`` matching ``query``, streamed in natural order."""
    con = _embedded_file(collection, alias) if fast else None
    if con is None:
        yield from get_db(alias)[collection].find(query)
        return
    try:
        for (blob,) in con.execute("SELECT doc FROM documents ORDER BY ROWID"):
            doc = bson.decode(blob)
            if matches(doc, query):
                yield doc
    finally:
        con.close()


def count_by(collection: str, key: str, match: dict | None = None) -> dict[Any, int]:
    """``{value of key: documents}``, grouped in the database on a server and by one
    direct pass on the embedded store, whose aggregation engine copies every document
    (minutes for 100k structures; the direct pass takes about a second)."""
    con = _embedded_file(collection)
    if con is None:
        pipeline: list[dict] = [{"$match": match}] if match else []
        pipeline.append({"$group": {"_id": f"${key}", "n": {"$sum": 1}}})
        return {row["_id"]: row["n"] for row in get_db()[collection].aggregate(pipeline)}
    con.close()
    counts: dict[Any, int] = {}
    for doc in scan(collection, match or {}):
        value = doc.get(key)
        counts[value] = counts.get(value, 0) + 1
    return counts
