"""Queries of the campaign loop: what an iteration needs to read, and its bookkeeping.

Each function is a small read or write the flow makes between stages; the database is
the loop's only memory, so a resumed run sees exactly what the killed one left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mongoengine.connection import get_db

from aloop.records import REF_ENERGY, REF_FORCES, REF_STRESS
from db.arrays import decode_array
from db.documents import Campaign, Iteration, Label, Model, Structure, utcnow
from db.repository import load_atoms


def set_current_iteration(campaign: Campaign, index: int) -> None:
    """Record the iteration the campaign is working on."""
    Campaign.objects(id=campaign.id).update_one(
        set__current_iteration=index, set__updated_at=utcnow()
    )
    campaign.reload()


def structure_ids(
    campaign: Campaign,
    iteration: int,
    *,
    verdicts: Sequence[str] | None = None,
    origins: Sequence[str] | None = None,
    system: str | None = None,
) -> list[str]:
    """Ids of an iteration's structures (sorted, so every run sees the same order)."""
    query: dict[str, Any] = {"campaign": campaign.id, "iteration": iteration}
    if verdicts is not None:
        query["verdict"] = {"$in": list(verdicts)}
    if origins is not None:
        query["origin"] = {"$in": list(origins)}
    if system is not None:
        query["system"] = system
    return sorted(d["_id"] for d in Structure._get_collection().find(query, {"_id": 1}))


def frame_uncertainty(ids: Sequence[str]) -> dict[str, dict]:
    """``{id: {hash, system, force_dev_max}}`` for stored frames."""
    rows = Structure._get_collection().find(
        {"_id": {"$in": list(ids)}}, {"hash": 1, "system": 1, "uncertainty": 1}
    )
    return {
        d["_id"]: {
            "hash": d["hash"],
            "system": d["system"],
            "force_dev_max": (d.get("uncertainty") or {}).get("force_dev_max", float("nan")),
        }
        for d in rows
    }


def delete_unlabelled_frames(campaign: Campaign, iteration: int) -> int:
    """Remove an iteration's MD frames before its exploration is redone from the start.

    Only frames no label refers to are removed (labelling follows exploration, so after a
    crash in exploration there are none); returns how many were removed.
    """
    ids = structure_ids(campaign, iteration, origins=["md"])
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


def labelled_frames(
    campaign: Campaign,
    settings_hashes: Sequence[str],
    *,
    before_iteration: int | None = None,
    iteration: int | None = None,
) -> tuple[list[str], list[Any]]:
    """Successfully labelled structures as ``(ids, Atoms with REF_ keys)``, sorted by id.

    ``before_iteration`` keeps labels made in earlier iterations (a training set);
    ``iteration`` keeps those of one iteration (its newly labelled frames).
    """
    query: dict[str, Any] = {
        "campaign": campaign.id,
        "status": "ok",
        "settings_hash": {"$in": list(settings_hashes)},
    }
    if before_iteration is not None:
        query["iteration"] = {"$lt": before_iteration}
    if iteration is not None:
        query["iteration"] = iteration
    db = get_db()
    labels = {
        d["structure"]: d
        for d in Label._get_collection().find(
            query, {"structure": 1, "energy": 1, "forces": 1, "stress": 1}
        )
    }
    ids = sorted(labels)
    frames = load_atoms(ids)
    for sid, atoms in zip(ids, frames, strict=True):
        d = labels[sid]
        atoms.info[REF_ENERGY] = float(d["energy"])
        atoms.arrays[REF_FORCES] = decode_array(d["forces"], db)
        if d.get("stress"):
            atoms.info[REF_STRESS] = decode_array(d["stress"], db)
    return ids, frames


def committee_models(campaign: Campaign, iteration: int) -> list[dict]:
    """The members trained in an iteration, by member index: id, member, seed, sha256 and
    validation metrics."""
    return [
        {
            "id": m.id,
            "member": m.member,
            "seed": m.seed,
            "sha256": m.weights_sha256,
            "valid": (m.metrics or {}).get("valid", {}),
        }
        for m in Model.objects(campaign=campaign.id, iteration=iteration)
        .only("id", "member", "seed", "weights_sha256", "metrics")
        .order_by("member")
    ]


def set_iteration_committees(
    iteration: Iteration, *, trained: Sequence[Any] | None = None, explored: Sequence[Any] = ()
) -> None:
    """Record the committee trained in and the one exploring an iteration."""
    update: dict[str, Any] = {"updated_at": utcnow()}
    if trained is not None:
        update["trained_committee"] = list(trained)
    if explored:
        update["explore_committee"] = list(explored)
    Iteration._get_collection().update_one({"_id": iteration.id}, {"$set": update})
    iteration.reload()


def iteration_stats(campaign: Campaign) -> list[dict]:
    """Statistics of every iteration, by index, with its index and stage states."""
    return [
        {
            "index": it.index,
            "stage_states": {k: v.status for k, v in it.stages.items()},
            **(it.stats or {}),
        }
        for it in Iteration.objects(campaign=campaign.id)
        .only("index", "stats", "stages")
        .order_by("index")
    ]


def label_outcomes(ids: Sequence[str], settings_hash: str) -> dict[str, dict]:
    """``{structure id: {status, wall_time, error}}`` of the labels at one settings hash."""
    rows = Label._get_collection().find(
        {"structure": {"$in": list(ids)}, "settings_hash": settings_hash},
        {"structure": 1, "status": 1, "wall_time": 1, "error": 1},
    )
    return {
        d["structure"]: {
            "status": d["status"],
            "wall_time": d.get("wall_time") or 0.0,
            "error": d.get("error"),
        }
        for d in rows
    }


def duplicate_label_count(campaign: Campaign) -> int:
    """Structures with more than one label at the same settings hash (should be 0)."""
    rows = Label._get_collection().aggregate(
        [
            {"$match": {"campaign": campaign.id}},
            {"$group": {"_id": {"s": "$structure", "h": "$settings_hash"}, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ]
    )
    return len(list(rows))
