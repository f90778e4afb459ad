"""The label aggregate: reference calculations, at most one per structure and settings
hash, and the labelled frames the committee trains on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from mongoengine.connection import get_db

from aloop.records import REF_ENERGY, REF_FORCES, REF_STRESS, LabelRecord
from aloop.vocabulary import LabelStatus, Verdict
from db.arrays import decode_array
from db.documents import Label, SCFAttempt, Structure
from db.isolated_atoms import isolated_atom_ids
from db.structures import load_atoms

#: ``info`` key of a training frame: the settings hash of its label.
LABEL_SETTINGS_HASH = "label_settings_hash"


@dataclass(frozen=True)
class LabelOutcome:
    """How one structure's labelling at one settings hash ended."""

    status: LabelStatus
    wall_time: float
    error: str | None


def record_label(campaign_id: Any, rec: LabelRecord) -> tuple[Any, bool]:
    """Store a label unless one exists for the same structure and settings hash.

    Returns ``(label_id, created)``. Idempotent: recording the same calculation twice
    (a resumed batch, a retried task) keeps the first label untouched, so DFT results
    are never overwritten.
    """
    from mongoengine.errors import NotUniqueError

    same = {"structure": rec.structure_id, "settings_hash": rec.settings_hash}
    existing = Label.objects(**same).only("id").first()
    if existing is not None:
        return existing.id, False
    fields = {f.name: getattr(rec, f.name) for f in dataclass_fields(rec)}
    fields["scf_attempts"] = [SCFAttempt(**a) for a in rec.scf_attempts]
    fields["status"] = LabelStatus(rec.status).value
    label = Label(structure=fields.pop("structure_id"), campaign=campaign_id, **fields)
    try:
        label.save(force_insert=True)
    except NotUniqueError:  # a concurrent writer won: theirs stands
        return Label.objects(**same).only("id").first().id, False
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


def labelled_frames(
    campaign_id: Any,
    settings_hashes: Sequence[str],
    *,
    before_iteration: int | None = None,
    iteration: int | None = None,
    holdout: bool = False,
) -> tuple[list[str], list[Any]]:
    """Successfully labelled structures as ``(ids, Atoms with REF_ keys)``, sorted by id.

    ``before_iteration`` keeps labels made in earlier iterations (a training set);
    ``iteration`` keeps those of one iteration (its newly labelled frames). The hold-out
    frames (verdict ``holdout``) are never in a training set: by default they are left
    out, and ``holdout=True`` returns only them.
    """
    query: dict[str, Any] = {
        "campaign": campaign_id,
        "status": LabelStatus.OK.value,
        "settings_hash": {"$in": list(settings_hashes)},
    }
    if before_iteration is not None:
        query["iteration"] = {"$lt": before_iteration}
    if iteration is not None:
        query["iteration"] = iteration
    held = holdout_ids(campaign_id)
    if holdout:
        query["structure"] = {"$in": held}
    else:
        # Isolated atoms are reference energies (MACE's E0s), not training frames.
        excluded = isolated_atom_ids(campaign_id) + held
        if excluded:
            query["structure"] = {"$nin": excluded}
    db = get_db()
    labels = {
        d["structure"]: d
        for d in Label._get_collection().find(
            query, {"structure": 1, "energy": 1, "forces": 1, "stress": 1, "settings_hash": 1}
        )
    }
    ids = sorted(labels)
    frames = load_atoms(ids)
    for sid, atoms in zip(ids, frames, strict=True):
        d = labels[sid]
        atoms.info[LABEL_SETTINGS_HASH] = d["settings_hash"]
        atoms.info[REF_ENERGY] = float(d["energy"])
        atoms.arrays[REF_FORCES] = decode_array(d["forces"], db)
        if d.get("stress"):
            atoms.info[REF_STRESS] = decode_array(d["stress"], db)
    return ids, frames


def holdout_ids(campaign_id: Any) -> list[str]:
    """Ids of the campaign's hold-out structures (labelled or not)."""
    rows = Structure._get_collection().find(
        {"campaign": campaign_id, "verdict": Verdict.HOLDOUT.value}, {"_id": 1}
    )
    return sorted(d["_id"] for d in rows)


def label_outcomes(ids: Sequence[str], settings_hash: str) -> dict[str, LabelOutcome]:
    """How the labels of these structures at one settings hash ended, by structure id."""
    rows = Label._get_collection().find(
        {"structure": {"$in": list(ids)}, "settings_hash": settings_hash},
        {"structure": 1, "status": 1, "wall_time": 1, "error": 1},
    )
    return {
        d["structure"]: LabelOutcome(
            status=LabelStatus(d["status"]),
            wall_time=d.get("wall_time") or 0.0,
            error=d.get("error"),
        )
        for d in rows
    }


def duplicate_label_count(campaign_id: Any) -> int:
    """Structures with more than one label at the same settings hash (should be 0)."""
    rows = Label._get_collection().aggregate(
        [
            {"$match": {"campaign": campaign_id}},
            {"$group": {"_id": {"s": "$structure", "h": "$settings_hash"}, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ]
    )
    return len(list(rows))


def label_counts(campaign_id: Any) -> dict[LabelStatus, int]:
    """A campaign's labels by status, counted in the database.

    Isolated-atom labels (the E0s) are reference energies, not the campaign's labelled
    structures: they are left out.
    """
    match: dict[str, Any] = {"campaign": campaign_id}
    isolated = isolated_atom_ids(campaign_id)
    if isolated:
        match["structure"] = {"$nin": isolated}
    rows = Label._get_collection().aggregate(
        [{"$match": match}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    )
    return {LabelStatus(r["_id"]): r["n"] for r in rows}


def holdout_label_count(campaign_id: Any) -> int:
    """Successful labels of the campaign's hold-out structures."""
    return Label.objects(
        campaign=campaign_id, structure__in=holdout_ids(campaign_id), status=LabelStatus.OK.value
    ).count()
