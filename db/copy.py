"""Copying campaigns between databases (e.g. from the embedded store to a MongoDB server):
every document of the campaign and every GridFS file it refers to, then a check that the
target holds the same counts and the same file hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mongoengine.connection import get_db
from pymongo.errors import BulkWriteError

from aloop.errors import UserError
from db.blobs import CHUNKS, FILES, get_blob
from db.campaigns import LEASE_FIELDS
from db.scan import scan

#: Collections that hold a campaign's documents, in the order they are copied.
COLLECTIONS = ("campaigns", "iterations", "structures", "labels", "models", "datasets")
#: Array fields that may point at a GridFS file instead of holding their bytes.
ARRAY_FIELDS = ("numbers", "positions", "cell", "forces", "stress")
BATCH = 500


class CopyRefused(UserError):
    """The copy would overwrite or mix up data in the target."""


@dataclass
class CopyReport:
    """Per collection: documents in the source, newly written, and now in the target."""

    campaigns: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    files: int = 0
    files_verified: int = 0

    @property
    def consistent(self) -> bool:
        """Every source document and file is in the target."""
        return all(c["target"] == c["source"] for c in self.counts.values())


def _blob_refs(collection: str, doc: dict) -> Iterable[Any]:
    if collection == "models" and doc.get("weights_file") is not None:
        yield doc["weights_file"]
    for key in ARRAY_FIELDS:
        value = doc.get(key)
        if isinstance(value, dict) and value.get("blob") is not None:
            yield value["blob"]


def _insert(dst: Any, collection: str, docs: list[dict]) -> int:
    """Insert, keeping what the target already has (a repeated copy adds nothing)."""
    if not docs:
        return 0
    try:
        return len(dst[collection].insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        return exc.details.get("nInserted", len(docs) - len(errors))


def _insert_with_files(
    src: Any, dst: Any, collection: str, docs: list[dict], copied: set[Any]
) -> int:
    """Insert documents after the GridFS files they refer to, chunks before files entries
    (as put_blob writes them): an interrupted copy never leaves a reference to missing
    data."""
    for doc in docs:
        for file_id in _blob_refs(collection, doc):
            if file_id in copied:
                continue
            _insert(dst, CHUNKS, list(src[CHUNKS].find({"files_id": file_id})))
            _insert(dst, FILES, list(src[FILES].find({"_id": file_id})))
            copied.add(file_id)
    return _insert(dst, collection, docs)


def copy_campaigns(
    names: list[str] | None,
    src_alias: str,
    dst_alias: str,
    on_progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy the named campaigns (all when None) from one connection alias to another."""
    src, dst = get_db(src_alias), get_db(dst_alias)
    query = {"name": {"$in": names}} if names else {}
    campaigns = list(src["campaigns"].find(query))
    missing = sorted(set(names or ()) - {c["name"] for c in campaigns})
    if missing:
        raise CopyRefused(f"no campaign named {', '.join(map(repr, missing))} in the source")
    for c in campaigns:
        other = dst["campaigns"].find_one({"name": c["name"]})
        if other is not None and other["_id"] != c["_id"]:
            raise CopyRefused(
                f"the target already has a different campaign named {c['name']!r}; "
                "rename one of them first"
            )
    ids = [c["_id"] for c in campaigns]
    report = CopyReport(campaigns=[c["name"] for c in campaigns])
    blobs: set[Any] = set()
    for collection in COLLECTIONS:
        match = {"_id": {"$in": ids}} if collection == "campaigns" else {"campaign": {"$in": ids}}
        if len(ids) == 1:
            match = {"_id": ids[0]} if collection == "campaigns" else {"campaign": ids[0]}
        seen = written = 0
        batch: list[dict] = []
        for doc in scan(collection, match, alias=src_alias):
            if collection == "campaigns":  # a run's hold stays with the source
                for key in LEASE_FIELDS:
                    doc.pop(key, None)
            batch.append(doc)
            seen += 1
            if len(batch) >= BATCH:
                written += _insert_with_files(src, dst, collection, batch, blobs)
                batch = []
                if on_progress is not None:
                    on_progress(collection, seen)
        written += _insert_with_files(src, dst, collection, batch, blobs)
        target = dst[collection].count_documents(match)
        report.counts[collection] = {"source": seen, "written": written, "target": target}
    report.files = len(blobs)
    for file_id in blobs:
        want = hashlib.sha256(get_blob(src, file_id)).hexdigest()
        if hashlib.sha256(get_blob(dst, file_id)).hexdigest() == want:
            report.files_verified += 1
    return report
