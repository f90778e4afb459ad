"""Repository functions: the only way the loop reads and writes documents.

They take and return plain data (ASE Atoms, dicts, numpy arrays, ids) so that callers
never handle mongoengine objects, and they push counting and grouping into the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np
from bson import ObjectId
from mongoengine.connection import get_db

from aloop.records import LabelRecord, StructureRecord
from aloop.versions import code_versions
from db.arrays import decode_array, encode_array
from db.blobs import get_blob, put_blob
from db.documents import (
    ORIGINS,
    STAGES,
    VERDICTS,
    Campaign,
    Iteration,
    Label,
    Model,
    SCFAttempt,
    StageState,
    Structure,
    structure_id,
    utcnow,
)

#: Documents per insert_many call: bounded memory, few round trips.
INSERT_BATCH = 1000
#: Ids per ``$in`` lookup (see insert_structures).
LOOKUP = 100


class ConfigChangeRefused(RuntimeError):
    """A stored campaign's results-relevant config differs from the one given."""


class StageTransitionError(RuntimeError):
    """A stage was asked to move in a way its current state forbids."""


# --------------------------------------------------------------------------- campaigns


def get_or_create_campaign(
    name: str, config: dict, config_hash: str, allow_change: bool = False
) -> tuple[Campaign, bool]:
    """The campaign called ``name``, created if absent; returns ``(campaign, created)``.

    An existing campaign whose stored ``config_hash`` differs is refused unless
    ``allow_change``; an allowed change is appended to ``config_changes`` with both hashes.
    """
    existing = Campaign.objects(name=name).first()
    if existing is None:
        from mongoengine.errors import NotUniqueError

        campaign = Campaign(
            name=name, config=config, config_hash=config_hash, code_versions=code_versions()
        )
        try:
            campaign.save()
        except NotUniqueError:  # another process created it between find and save
            return get_or_create_campaign(name, config, config_hash, allow_change)
        return campaign, True
    if existing.config_hash != config_hash:
        if not allow_change:
            raise ConfigChangeRefused(
                f"campaign {name!r} was created with a different configuration "
                f"(stored {existing.config_hash[:12]}, given {config_hash[:12]}); "
                "results would mix settings. Use a new campaign name, or pass "
                "--allow-config-change to record the change and continue."
            )
        existing.config_changes.append(
            {
                "at": utcnow(),
                "from_hash": existing.config_hash,
                "to_hash": config_hash,
                "previous_config": existing.config,
            }
        )
        existing.config = config
        existing.config_hash = config_hash
        existing.save()
    return existing, False


def set_campaign_status(campaign: Campaign, status: str, reason: str = "") -> None:
    """Record the campaign's status and the reason for it."""
    Campaign.objects(id=campaign.id).update_one(
        set__status=status, set__status_reason=reason, set__updated_at=utcnow()
    )
    campaign.reload()


def list_campaigns() -> list[dict]:
    """Every campaign with its structure and label counts, newest first."""
    structures = _count_by("structures", "campaign")
    labels = _count_by("labels", "campaign", {"status": "ok"})
    out = []
    for c in Campaign.objects.order_by("-created_at").only(
        "name", "status", "status_reason", "current_iteration", "created_at", "updated_at"
    ):
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "status_reason": c.status_reason,
                "current_iteration": c.current_iteration,
                "structures": structures.get(c.id, 0),
                "labels_ok": labels.get(c.id, 0),
                "created_at": c.created_at,
                "updated_at": c.updated_at,
            }
        )
    return out


def campaign_iterations(name: str) -> tuple[dict, list[dict]] | None:
    """A campaign's summary and its iterations (stage states, stats), or None if absent."""
    c = Campaign.objects(name=name).only("name", "status", "status_reason").first()
    if c is None:
        return None
    rows = [
        {
            "index": it.index,
            "stages": {k: v.status for k, v in it.stages.items()},
            "stats": it.stats,
        }
        for it in Iteration.objects(campaign=c.id).order_by("index")
    ]
    return {"name": c.name, "status": c.status, "status_reason": c.status_reason}, rows


def _count_by(collection: str, key: str, match: dict | None = None) -> dict:
    from db.scan import count_by

    return count_by(collection, key, match)


# -------------------------------------------------------------------------- structures


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


def _structure_doc(campaign_id: ObjectId, rec: StructureRecord, digest: str) -> dict:
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
    if rec.origin not in ORIGINS:
        raise ValueError(f"origin {rec.origin!r} is not one of {', '.join(ORIGINS)}")
    if rec.verdict is not None and rec.verdict not in VERDICTS:
        raise ValueError(f"verdict {rec.verdict!r} is not one of {', '.join(VERDICTS)}")
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
        "origin": rec.origin,
        "iteration": int(rec.iteration),
        "lineage": {k: v for k, v in rec.lineage.items() if v is not None},
    }
    if rec.uncertainty:
        doc["uncertainty"] = {k: float(v) for k, v in rec.uncertainty.items() if v is not None}
    if rec.verdict is not None:
        doc["verdict"] = rec.verdict
        if rec.verdict_reason:
            doc["verdict_reason"] = rec.verdict_reason
    if rec.tags:
        doc["tags"] = list(rec.tags)
    return doc


def insert_structures(
    campaign: Campaign, records: Iterable[StructureRecord], batch_size: int = INSERT_BATCH
) -> InsertResult:
    """Store structures, de-duplicated by content hash within the campaign.

    A record whose hash is already stored (or repeated within ``records``) is not
    written again; the existing id is returned. Work goes in batches of ``batch_size``
    with one lookup and one ``insert_many`` each.
    """
    from pymongo.errors import BulkWriteError

    ids: list[str] = []
    new: list[bool] = []
    coll = Structure._get_collection()
    batch: list[StructureRecord] = []

    def flush() -> None:
        batch_ids = [structure_id(campaign.id, r.hash) for r in batch]
        # Looked up LOOKUP ids at a time: the embedded store checks ``$in`` against the
        # whole list for every candidate, a cost that grows with the square of its length.
        known = {
            d["_id"]
            for i in range(0, len(batch_ids), LOOKUP)
            for d in coll.find({"_id": {"$in": batch_ids[i : i + LOOKUP]}}, {"_id": 1})
        }
        docs = []
        for rec, sid in zip(batch, batch_ids, strict=True):
            ids.append(sid)
            new.append(sid not in known)
            if sid not in known:
                docs.append(_structure_doc(campaign.id, rec, rec.hash))
                known.add(sid)
        if docs:
            try:
                coll.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                # Another writer stored some of these first: same ids, their lineage stands.
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                lost = {e["op"]["_id"] for e in errors}
                for i in range(len(ids) - len(batch), len(ids)):
                    if ids[i] in lost:
                        new[i] = False
        batch.clear()

    for rec in records:
        batch.append(rec)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return InsertResult(ids, new)


def load_atoms(structure_ids: Sequence[str]) -> list[Any]:
    """ASE Atoms for the ids (same order), with system, origin and id in ``info``."""
    from ase import Atoms

    db = get_db()
    found = {
        d["_id"]: d
        for d in Structure._get_collection().find(
            {"_id": {"$in": list(structure_ids)}},
            {
                "numbers": 1,
                "positions": 1,
                "cell": 1,
                "pbc": 1,
                "charge": 1,
                "multiplicity": 1,
                "system": 1,
                "origin": 1,
                "iteration": 1,
            },
        )
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


def iter_structures(campaign: Campaign, **filters: Any) -> Iterator[dict]:
    """Stream a campaign's structures as raw documents with their arrays decoded.

    On a server the cursor streams in batches, so memory stays bounded.
    """
    db = get_db()
    cursor = Structure._get_collection().find({"campaign": campaign.id, **filters})
    for d in cursor:
        for key in ("numbers", "positions", "cell"):
            d[key] = decode_array(d[key], db)
        yield d


def set_verdicts(updates: Iterable[tuple[str, str, str | None]]) -> int:
    """Set ``(structure_id, verdict, reason)`` in one bulk write; returns the count changed."""
    from pymongo import UpdateOne

    ops = [
        UpdateOne({"_id": sid}, {"$set": {"verdict": v, "verdict_reason": why}})
        for sid, v, why in updates
    ]
    if not ops:
        return 0
    return Structure._get_collection().bulk_write(ops, ordered=False).modified_count


# ------------------------------------------------------------------------------ labels


def record_label(campaign: Campaign, rec: LabelRecord) -> tuple[ObjectId, bool]:
    """Store a label unless one exists for the same structure and settings hash.

    Returns ``(label_id, created)``. Idempotent: recording the same calculation twice
    (a resumed batch, a retried task) keeps the first label untouched, so DFT results
    are never overwritten.
    """
    from mongoengine.errors import NotUniqueError

    existing = (
        Label.objects(structure=rec.structure_id, settings_hash=rec.settings_hash)
        .only("id")
        .first()
    )
    if existing is not None:
        return existing.id, False
    fields = {f.name: getattr(rec, f.name) for f in dataclass_fields(rec)}
    fields["scf_attempts"] = [SCFAttempt(**a) for a in rec.scf_attempts]
    label = Label(structure=fields.pop("structure_id"), campaign=campaign.id, **fields)
    try:
        label.save(force_insert=True)
    except NotUniqueError:  # a concurrent writer won: theirs stands
        winner = Label.objects(structure=rec.structure_id, settings_hash=rec.settings_hash)
        return winner.only("id").first().id, False
    return label.id, True


def labelled_ids(structure_ids: Sequence[str], settings_hash: str) -> set[str]:
    """Which of these structures already have a label (any status) at this settings hash."""
    coll = Label._get_collection()
    return {
        d["structure"]
        for d in coll.find(
            {"structure": {"$in": list(structure_ids)}, "settings_hash": settings_hash},
            {"structure": 1},
        )
    }


# ------------------------------------------------------------------------------ models


def store_model(
    campaign: Campaign,
    *,
    iteration: int,
    member: int,
    seed: int,
    weights: bytes,
    hyperparameters: dict,
    training_set: Sequence[str] = (),
    validation_set: Sequence[str] = (),
    parent: ObjectId | None = None,
    metrics: dict | None = None,
    device: str = "cpu",
    wall_time: float | None = None,
) -> Model:
    """Store a committee member: weights into GridFS, provenance into a Model document."""
    import hashlib

    file_id = put_blob(
        get_db(),
        weights,
        filename=f"{campaign.name}-it{iteration}-m{member}.model",
        metadata={"campaign": campaign.id, "iteration": iteration, "member": member},
    )
    model = Model(
        campaign=campaign.id,
        iteration=iteration,
        member=member,
        seed=seed,
        hyperparameters=hyperparameters,
        parent=parent,
        training_set=list(training_set),
        validation_set=list(validation_set),
        metrics=metrics or {},
        weights_file=file_id,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        weights_bytes=len(weights),
        device=device,
        wall_time=wall_time,
        code_versions=code_versions(),
    )
    model.save(force_insert=True)
    return model


def load_model_weights(model_id: ObjectId) -> bytes:
    """The member's weights, verified against the sha256 on its Model document.

    Raises
    ------
    db.blobs.BlobIntegrityError
        The stored bytes do not hash to the recorded sha256 (never hand them to torch).
    """
    model = Model.objects.only("weights_file", "weights_sha256").get(id=model_id)
    return get_blob(get_db(), model.weights_file, expected_sha256=model.weights_sha256)


# -------------------------------------------------------------------------- iterations


def get_or_create_iteration(campaign: Campaign, index: int) -> Iteration:
    """The iteration document, created with every stage pending if absent."""
    Iteration.objects(campaign=campaign.id, index=index).update_one(
        upsert=True,
        set_on_insert__stages={s: StageState().to_mongo() for s in STAGES},
        set_on_insert__created_at=utcnow(),
        set_on_insert__updated_at=utcnow(),
    )
    return Iteration.objects.get(campaign=campaign.id, index=index)


#: Allowed stage moves: from -> to. A failed stage may be re-run; a done one is final.
_TRANSITIONS = {
    "running": ("pending", "failed", "running"),
    "done": ("running",),
    "failed": ("running",),
}


def set_stage(iteration: Iteration, stage: str, status: str, error: str | None = None) -> None:
    """Move ``stage`` of ``iteration`` to ``status`` atomically.

    ``running`` may follow pending, failed, or running (a crashed run being resumed);
    ``done`` and ``failed`` only follow ``running``. The check and the write are one
    conditional update, so two processes cannot both start or finish a stage.

    Raises
    ------
    StageTransitionError
        The stage is not in a state the move allows.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    if status not in _TRANSITIONS:
        raise ValueError(f"cannot move a stage to {status!r}")
    now = utcnow()
    update: dict[str, Any] = {f"stages.{stage}.status": status, "updated_at": now}
    inc: dict[str, int] = {}
    if status == "running":
        update[f"stages.{stage}.started_at"] = now
        update[f"stages.{stage}.error"] = None
        inc[f"stages.{stage}.attempts"] = 1
    else:
        update[f"stages.{stage}.ended_at"] = now
        update[f"stages.{stage}.error"] = error
    change: dict[str, Any] = {"$set": update}
    if inc:
        change["$inc"] = inc
    res = Iteration._get_collection().update_one(
        {"_id": iteration.id, f"stages.{stage}.status": {"$in": list(_TRANSITIONS[status])}},
        change,
    )
    if res.matched_count != 1:
        current = Iteration.objects.get(id=iteration.id).stages[stage].status
        raise StageTransitionError(
            f"iteration {iteration.index}: stage {stage!r} is {current!r}, cannot become {status!r}"
        )
    iteration.reload()


def update_iteration_stats(iteration: Iteration, stats: dict) -> None:
    """Merge ``stats`` into the iteration's statistics."""
    Iteration._get_collection().update_one(
        {"_id": iteration.id},
        {"$set": {**{f"stats.{k}": v for k, v in stats.items()}, "updated_at": utcnow()}},
    )
    iteration.reload()


# -------------------------------------------------------------------------- statistics


def verdict_counts(campaign: Campaign, iteration: int) -> dict[str, dict[str, int]]:
    """``{system: {verdict: count}}`` of an iteration's frames, counted in the database."""
    rows = Structure._get_collection().aggregate(
        [
            {"$match": {"campaign": campaign.id, "iteration": iteration, "origin": "md"}},
            {"$group": {"_id": {"s": "$system", "v": "$verdict"}, "n": {"$sum": 1}}},
        ]
    )
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        out.setdefault(row["_id"]["s"], {})[row["_id"]["v"]] = row["n"]
    return out


def deviation_histogram(
    campaign: Campaign, iteration: int, system: str, edges: Sequence[float]
) -> list[int]:
    """Counts of max force deviation per bin ``[edges[i], edges[i+1])``, plus an overflow
    bin for values at or above the last edge, binned in the database with ``$bucket``."""
    edges = [float(e) for e in edges]
    rows = Structure._get_collection().aggregate(
        [
            {
                "$match": {
                    "campaign": campaign.id,
                    "iteration": iteration,
                    "system": system,
                    "uncertainty.force_dev_max": {"$gte": edges[0]},
                }
            },
            {
                "$bucket": {
                    "groupBy": "$uncertainty.force_dev_max",
                    "boundaries": edges,
                    "default": "overflow",
                    "output": {"n": {"$sum": 1}},
                }
            },
        ]
    )
    counts = dict.fromkeys([*edges[:-1], "overflow"], 0)
    for row in rows:
        counts[row["_id"]] = row["n"]
    return list(counts.values())


def label_summary(campaign: Campaign) -> dict[str, dict[str, float]]:
    """Per iteration: labels ok / failed / rejected and DFT wall time, from the database."""
    rows = Label._get_collection().aggregate(
        [
            {"$match": {"campaign": campaign.id}},
            {
                "$group": {
                    "_id": {"it": "$iteration", "st": "$status"},
                    "n": {"$sum": 1},
                    "wall": {"$sum": "$wall_time"},
                }
            },
        ]
    )
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        it = out.setdefault(str(row["_id"]["it"]), {"wall_time": 0.0})
        it[row["_id"]["st"]] = row["n"]
        it["wall_time"] += row["wall"] or 0.0
    return out
