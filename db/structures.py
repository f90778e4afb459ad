"""The structure aggregate: storing geometries de-duplicated by content hash, reading
them back as ASE Atoms, and their selection verdicts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mongoengine.connection import get_db

from aloop.records import StructureRecord
from aloop.vocabulary import Origin, Verdict
from db.arrays import decode_array, encode_array
from db.documents import Label, Structure, structure_id, utcnow

#: Documents per insert_many call: bounded memory, few round trips.
INSERT_BATCH = 1000
#: Ids per ``$in`` lookup (see insert_structures).
LOOKUP = 100


@dataclass
class InsertResult:
    """Ids in input order; ``new[i]`` tells whether record i was inserted or existed."""

    ids: list[str]
    new: list[bool]

    @property
    def inserted(self) -> int:
        """How many records were new."""
        return sum(self.new)

    @property
    def duplicates(self) -> int:
        """How many records matched a structure already stored (or one earlier in the call)."""
        return len(self.new) - self.inserted


@dataclass(frozen=True)
class FrameInfo:
    """What selection needs to know of a stored frame besides its geometry."""

    hash: str
    system: str
    force_dev_max: float
    #: GPa; None for a frame without a stress deviation (molecules, older documents).
    stress_dev_gpa: float | None = None


def _structure_doc(campaign_id: Any, rec: StructureRecord, digest: str) -> dict:
    """The raw BSON form of a structure.

    Built directly rather than through ``Structure(...).to_mongo()``: that costs ~0.5 ms
    per document, half of the embedded store's insert budget. The checks below are the
    Document's own rules; ``tests/db`` asserts the two forms agree.
    """
    n = len(rec.numbers)
    positions = np.asarray(rec.positions, dtype=np.float64)
    cell = np.asarray(rec.cell, dtype=np.float64)
    if positions.shape != (n, 3) or cell.shape != (3, 3) or len(rec.pbc) != 3:
        raise ValueError(
            f"inconsistent structure: {n} numbers, positions {positions.shape}, "
            f"cell {cell.shape}, pbc {list(rec.pbc)}"
        )
    if rec.origin not in set(Origin):
        raise ValueError(f"origin {rec.origin!r} is not one of {', '.join(Origin)}")
    if rec.verdict is not None and rec.verdict not in set(Verdict):
        raise ValueError(f"verdict {rec.verdict!r} is not one of {', '.join(Verdict)}")
    if rec.multiplicity < 1:
        raise ValueError(f"multiplicity must be >= 1, got {rec.multiplicity}")
    now = utcnow()
    doc: dict[str, Any] = {
        "_id": structure_id(campaign_id, digest),
        "created_at": now,
        "updated_at": now,
        "campaign": campaign_id,
        "hash": digest,
        "numbers": encode_array(np.asarray(rec.numbers, dtype=np.int64)),
        "positions": encode_array(positions),
        "cell": encode_array(cell),
        "pbc": [bool(p) for p in rec.pbc],
        "charge": int(rec.charge),
        "multiplicity": int(rec.multiplicity),
        "system": rec.system,
        "origin": Origin(rec.origin).value,
        "iteration": int(rec.iteration),
        "lineage": {k: v for k, v in rec.lineage.items() if v is not None},
    }
    if rec.uncertainty:
        doc["uncertainty"] = {k: float(v) for k, v in rec.uncertainty.items() if v is not None}
    if rec.verdict is not None:
        doc["verdict"] = Verdict(rec.verdict).value
        if rec.verdict_reason:
            doc["verdict_reason"] = rec.verdict_reason
    if rec.tags:
        doc["tags"] = list(rec.tags)
    return doc


def insert_structures(
    campaign_id: Any, records: Iterable[StructureRecord], batch_size: int = INSERT_BATCH
) -> InsertResult:
    """Store structures, de-duplicated by content hash within the campaign.

    A record whose hash is already stored (or repeated within ``records``) is not
    written again; the existing id is returned. Work goes in batches of ``batch_size``
    with one lookup and one ``insert_many`` each.
    """
    result = InsertResult([], [])
    batch: list[StructureRecord] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= batch_size:
            _insert_batch(campaign_id, batch, result)
            batch = []
    if batch:
        _insert_batch(campaign_id, batch, result)
    return result


def _insert_batch(campaign_id: Any, batch: list[StructureRecord], result: InsertResult) -> None:
    from pymongo.errors import BulkWriteError

    coll = Structure._get_collection()
    batch_ids = [structure_id(campaign_id, r.hash) for r in batch]
    # Looked up LOOKUP ids at a time: the embedded store checks ``$in`` against the
    # whole list for every candidate, a cost that grows with the square of its length.
    known = {
        d["_id"]
        for i in range(0, len(batch_ids), LOOKUP)
        for d in coll.find({"_id": {"$in": batch_ids[i : i + LOOKUP]}}, {"_id": 1})
    }
    start = len(result.ids)
    docs = []
    for rec, sid in zip(batch, batch_ids, strict=True):
        result.ids.append(sid)
        result.new.append(sid not in known)
        if sid not in known:
            docs.append(_structure_doc(campaign_id, rec, rec.hash))
            known.add(sid)
    if not docs:
        return
    try:
        coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        # Another writer stored some of these first: same ids, their lineage stands.
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        lost = {e["op"]["_id"] for e in errors}
        for i in range(start, len(result.ids)):
            if result.ids[i] in lost:
                result.new[i] = False


#: What :func:`load_atoms` reads of a structure document.
_ATOMS_FIELDS = (
    "numbers", "positions", "cell", "pbc", "charge", "multiplicity", "system", "origin",
    "iteration",
)  # fmt: skip


def load_atoms(structure_ids: Sequence[str]) -> list[Any]:
    """ASE Atoms for the ids (same order), with system, origin and id in ``info``."""
    from ase import Atoms

    db = get_db()
    projection = dict.fromkeys(_ATOMS_FIELDS, 1)
    found = {
        d["_id"]: d
        for d in Structure._get_collection().find({"_id": {"$in": list(structure_ids)}}, projection)
    }
    missing = [str(i) for i in structure_ids if i not in found]
    if missing:
        raise KeyError(f"structures not found: {', '.join(missing[:5])}")
    out = []
    for sid in structure_ids:
        d = found[sid]
        atoms = Atoms(
            numbers=decode_array(d["numbers"], db),
            positions=decode_array(d["positions"], db),
            cell=decode_array(d["cell"], db),
            pbc=d["pbc"],
        )
        atoms.info.update(
            structure_id=str(sid),
            system=d["system"],
            origin=d["origin"],
            iteration=d["iteration"],
            charge=d.get("charge", 0),
            multiplicity=d.get("multiplicity", 1),
        )
        out.append(atoms)
    return out


def iter_structures(campaign_id: Any, **filters: Any) -> Iterator[dict]:
    """Stream a campaign's structures as raw documents with their arrays decoded.

    On a server the cursor streams in batches, so memory stays bounded.
    """
    db = get_db()
    cursor = Structure._get_collection().find({"campaign": campaign_id, **filters})
    for d in cursor:
        for key in ("numbers", "positions", "cell"):
            d[key] = decode_array(d[key], db)
        yield d


def structure_ids(
    campaign_id: Any,
    iteration: int,
    *,
    verdicts: Sequence[Verdict] | None = None,
    origins: Sequence[Origin] | None = None,
    system: str | None = None,
) -> list[str]:
    """Ids of an iteration's structures (sorted, so every run sees the same order)."""
    query: dict[str, Any] = {"campaign": campaign_id, "iteration": iteration}
    if verdicts is not None:
        query["verdict"] = {"$in": [Verdict(v).value for v in verdicts]}
    if origins is not None:
        query["origin"] = {"$in": [Origin(o).value for o in origins]}
    if system is not None:
        query["system"] = system
    return sorted(d["_id"] for d in Structure._get_collection().find(query, {"_id": 1}))


def frame_info(ids: Sequence[str]) -> dict[str, FrameInfo]:
    """Hash, system, max force and stress deviation of stored frames, by id."""
    rows = Structure._get_collection().find(
        {"_id": {"$in": list(ids)}}, {"hash": 1, "system": 1, "uncertainty": 1}
    )
    return {
        d["_id"]: FrameInfo(
            hash=d["hash"],
            system=d["system"],
            force_dev_max=(d.get("uncertainty") or {}).get("force_dev_max", float("nan")),
            stress_dev_gpa=(d.get("uncertainty") or {}).get("stress_dev_gpa"),
        )
        for d in rows
    }


def set_verdicts(updates: Iterable[tuple[str, Verdict, str | None]]) -> int:
    """Set ``(structure_id, verdict, reason)`` in one bulk write; returns the count changed."""
    from pymongo import UpdateOne

    ops = [
        UpdateOne({"_id": sid}, {"$set": {"verdict": Verdict(v).value, "verdict_reason": why}})
        for sid, v, why in updates
    ]
    if not ops:
        return 0
    return Structure._get_collection().bulk_write(ops, ordered=False).modified_count


def delete_unlabelled_frames(campaign_id: Any, iteration: int) -> int:
    """Remove an iteration's MD frames before its exploration is redone from the start.

    Only frames no label refers to are removed (labelling follows exploration, so after a
    crash in exploration there are none); returns how many were removed.
    """
    ids = structure_ids(campaign_id, iteration, origins=[Origin.MD])
    if not ids:
        return 0
    labelled = {
        d["structure"]
        for d in Label._get_collection().find({"structure": {"$in": ids}}, {"structure": 1})
    }
    doomed = [i for i in ids if i not in labelled]
    if doomed:
        Structure._get_collection().delete_many({"_id": {"$in": doomed}})
    return len(doomed)
