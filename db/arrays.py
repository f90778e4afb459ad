"""Exact, compact storage of numpy arrays in documents.

An array is stored as ``{"dtype": "<f8", "shape": [n, 3], "data": Binary}``: raw
little-endian bytes, so a float64 round trip is bit-identical and no numpy scalar ever
reaches BSON. Arrays larger than :data:`INLINE_LIMIT` bytes go to GridFS and the document
keeps ``{"dtype", "shape", "blob": id, "sha256"}`` instead, which keeps every document far
below MongoDB's 16 MiB limit whatever the structure size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bson.binary import Binary
from mongoengine.base import BaseField
from mongoengine.connection import get_db

from db.blobs import get_blob, put_blob

#: Bytes above which an array leaves the document for GridFS (a 40,000-atom force array).
INLINE_LIMIT = 1024 * 1024


def encode_array(value: Any, database: Any = None, inline_limit: int = INLINE_LIMIT) -> dict:
    """The stored form of an array-like (a plain dict, ready for BSON)."""
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError("object arrays cannot be stored exactly")
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    doc: dict[str, Any] = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
    raw = arr.tobytes()
    if len(raw) <= inline_limit:
        doc["data"] = Binary(raw)
        return doc
    database = get_db() if database is None else database
    file_id = put_blob(database, raw, filename="array", metadata={"dtype": doc["dtype"]})
    doc["blob"] = file_id
    return doc


def decode_array(doc: dict, database: Any = None) -> np.ndarray:
    """Inverse of :func:`encode_array`; GridFS-held arrays are read and hash-checked."""
    if "data" in doc:
        raw = bytes(doc["data"])
    else:
        raw = get_blob(get_db() if database is None else database, doc["blob"])
    return np.frombuffer(raw, dtype=np.dtype(doc["dtype"])).reshape(doc["shape"]).copy()


class ArrayField(BaseField):
    """A mongoengine field holding one numpy array (see :func:`encode_array`)."""

    def __init__(self, dtype: str | None = None, ndim: int | None = None, **kwargs: Any) -> None:
        self.dtype = np.dtype(dtype) if dtype else None
        self.ndim = ndim
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict) and "dtype" in value:
            return decode_array(value)
        return value

    def to_mongo(self, value: Any) -> Any:
        if value is None:
            return None
        arr = np.asarray(value, dtype=self.dtype) if self.dtype is not None else value
        return encode_array(arr)

    def validate(self, value: Any) -> None:
        arr = np.asarray(value)
        if arr.dtype == object:
            self.error("expected a numeric array")
        if self.ndim is not None and arr.ndim != self.ndim:
            self.error(f"expected {self.ndim} dimensions, got shape {arr.shape}")
        if self.dtype is not None and not np.can_cast(arr.dtype, self.dtype, "same_kind"):
            self.error(f"cannot store {arr.dtype} as {self.dtype}")
