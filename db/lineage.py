"""A structure's history in one place: where it came from, what the committee thought of
it, how it was labelled, and which models and datasets used it."""

from __future__ import annotations

from typing import Any

from db.documents import Campaign, Dataset, Label, Model, Structure
from db.scan import get_many


def structure_lineage(structure_id: str) -> dict[str, Any] | None:
    """Everything recorded about one structure, as plain data; None if there is none."""
    found = get_many("structures", [structure_id])  # by key: fast on any collection size
    if structure_id not in found:
        return None
    s = Structure._from_son(found[structure_id])
    campaign = Campaign.objects(id=s.campaign.id).only("name").first()
    lineage = s.lineage.to_mongo().to_dict() if s.lineage else {}
    lineage["committee"] = [str(c) for c in lineage.get("committee", [])]
    models = [
        {"id": str(m.id), "iteration": m.iteration, "member": m.member}
        for m in Model.objects(training_set=s.id)
        .only("iteration", "member")
        .order_by("iteration", "member")
    ]
    datasets = [
        {"id": str(d.id), "name": d.name, "created_at": d.created_at}
        for d in Dataset.objects(structure_ids=s.id).only("name", "created_at")
    ]
    return {
        "id": s.id,
        "campaign": campaign.name if campaign else None,
        "system": s.system,
        "formula": _formula(s.numbers),
        "natoms": len(s.numbers),
        "origin": s.origin,
        "iteration": s.iteration,
        "hash": s.hash,
        "charge": s.charge,
        "multiplicity": s.multiplicity,
        "pbc": list(s.pbc),
        "lineage": {k: v for k, v in lineage.items() if v not in (None, [])},
        "uncertainty": s.uncertainty.to_mongo().to_dict() if s.uncertainty else {},
        "verdict": s.verdict,
        "verdict_reason": s.verdict_reason,
        "labels": _labels(s.id),
        "trained_models": models,
        "datasets": datasets,
        "created_at": s.created_at,
    }


def _labels(structure_id: str) -> list[dict[str, Any]]:
    """The structure's labels, oldest first, as plain data."""
    labels = []
    for lab in Label.objects(structure=structure_id).order_by("created_at"):
        labels.append(
            {
                "settings_hash": lab.settings_hash,
                "settings": dict(lab.settings or {}),
                "status": lab.status,
                "energy": lab.energy,
                "max_force": (
                    float((lab.forces**2).sum(axis=1).max() ** 0.5)
                    if lab.forces is not None
                    else None
                ),
                "error": lab.error,
                "scf_attempts": [a.to_mongo().to_dict() for a in lab.scf_attempts],
                "wall_time": lab.wall_time,
                "host": lab.host,
                "threads": lab.threads,
                "iteration": lab.iteration,
                "created_at": lab.created_at,
            }
        )
    return labels


def _formula(numbers: Any) -> str:
    from ase.symbols import Symbols

    return Symbols(numbers).get_chemical_formula()
