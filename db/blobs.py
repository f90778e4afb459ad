"""Large binary objects (model weights, big arrays) in GridFS layout, checked by sha256.

The files follow the GridFS specification (``fs.files`` / ``fs.chunks``, 255 KiB chunks),
so ``mongofiles`` and pymongo's ``GridFSBucket`` read them on a real server. They are
written with plain collection operations rather than pymongo's ``gridfs`` module because
the embedded and in-memory stores are pymongo-compatible clients, not pymongo itself, and
one code path for every backend is what the tests can vouch for.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.binary import Binary

CHUNK_SIZE = 255 * 1024
FILES = "fs.files"
CHUNKS = "fs.chunks"


class BlobIntegrityError(RuntimeError):
    """A stored blob is missing, truncated, or its sha256 differs from the one expected."""


def put_blob(database: Any, data: bytes, filename: str, metadata: dict | None = None) -> ObjectId:
    """Store ``data`` and return its file id; its sha256 goes into the file's metadata.

    Chunks are written before the files document, so a crash mid-write leaves only
    orphan chunks, never a files entry that points at missing data.
    """
    file_id = ObjectId()
    sha = hashlib.sha256(data).hexdigest()
    chunks = [
        {"files_id": file_id, "n": i, "data": Binary(data[off : off + CHUNK_SIZE])}
        for i, off in enumerate(range(0, len(data), CHUNK_SIZE))
    ]
    if chunks:
        database[CHUNKS].insert_many(chunks)
    database[FILES].insert_one(
        {
            "_id": file_id,
            "length": len(data),
            "chunkSize": CHUNK_SIZE,
            "uploadDate": datetime.now(UTC),
            "filename": filename,
            "metadata": {**(metadata or {}), "sha256": sha},
        }
    )
    return file_id


def blob_info(database: Any, file_id: ObjectId) -> dict:
    """The files document of a blob; raises :class:`BlobIntegrityError` when absent."""
    info = database[FILES].find_one({"_id": file_id})
    if info is None:
        raise BlobIntegrityError(f"blob {file_id} does not exist")
    return info


def get_blob(database: Any, file_id: ObjectId, expected_sha256: str | None = None) -> bytes:
    """Read a blob back, verifying its length and sha256.

    ``expected_sha256`` is the hash the caller trusts (e.g. the one on a Model document);
    without it the hash recorded at write time is used.

    Raises
    ------
    BlobIntegrityError
        The blob is missing, incomplete, or its content does not hash as expected.
    """
    info = blob_info(database, file_id)
    parts = database[CHUNKS].find({"files_id": file_id}).sort("n", 1)
    data = b"".join(bytes(p["data"]) for p in parts)
    if len(data) != info["length"]:
        raise BlobIntegrityError(
            f"blob {file_id} is truncated: {len(data)} of {info['length']} bytes"
        )
    want = expected_sha256 or info.get("metadata", {}).get("sha256")
    got = hashlib.sha256(data).hexdigest()
    if want is not None and got != want:
        raise BlobIntegrityError(f"blob {file_id} sha256 is {got}, expected {want}")
    return data


def delete_blob(database: Any, file_id: ObjectId) -> None:
    """Remove a blob: files entry first, so no reader sees a half-deleted file."""
    database[FILES].delete_one({"_id": file_id})
    database[CHUNKS].delete_many({"files_id": file_id})
