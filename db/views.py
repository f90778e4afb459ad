"""Read models for the dashboard and its JSON API: one function per page, plain data out.

Every number comes from what the loop already stored per iteration (counts, ratios,
histograms, timings, label outcomes), so a page costs a read of the campaign's iteration
documents, not a pass over its structures: pages stay fast on campaigns of any size. The
few lists (recent failures, selected structures) are bounded queries on indexed fields.
"""

from __future__ import annotations

from typing import Any

from aloop.records import CampaignRecord, IterationRecord, StageState
from aloop.vocabulary import LabelStatus, Origin, Stage
from db.campaigns import all_campaigns, get_campaign
from db.documents import Label, Structure
from db.iterations import campaign_iterations
from db.lineage import structure_lineage
from db.scan import get_many

#: Rows in the bounded lists of the campaign page.
LIST_LIMIT = 50
#: Per-system exploration fields the dashboard does not draw.
_SYSTEM_HIDDEN = {"walkers", "md_steps", "committee_calls"}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _stage(state: StageState) -> dict:
    seconds = state.seconds
    return {
        "status": state.status.value,
        "started_at": _iso(state.started_at),
        "ended_at": _iso(state.ended_at),
        "seconds": None if seconds is None else round(seconds, 3),
        "error": state.error,
    }


def _iteration_row(it: IterationRecord) -> dict:
    s = it.stats
    explore, labelling, err = s.explore, s.labelling, s.committee_error
    return {
        "index": it.index,
        "stages": {k.value: _stage(v) for k, v in it.stages.items()},
        "sampled": explore.sampled if explore else (s.seed.seeded if s.seed else None),
        "accurate": explore.accurate if explore else None,
        "candidate": explore.candidate if explore else None,
        "failed": explore.failed if explore else None,
        "accurate_ratio": explore.accurate_ratio if explore else None,
        "systems": [sys.model_dump(exclude=_SYSTEM_HIDDEN) for sys in explore.systems]
        if explore
        else [],
        "selected": s.selected,
        "labelled": s.labelled,
        "label_failures": s.label_failures,
        "label_failure_reasons": labelling.label_failure_reasons if labelling else {},
        "dft_wall_s": labelling.dft_wall_s if labelling else None,
        "committee_forces_rmse": s.committee_forces_rmse,
        "committee_energy_rmse_per_atom": err.energy_rmse_per_atom if err and err.n else None,
        "timings": {k.value: v.model_dump() for k, v in s.timings.items()},
        "wall_s": s.wall_s,
    }


def _campaign_head(c: CampaignRecord, iterations: list[dict]) -> dict:
    stop = c.config.get("stop", {})
    return {
        "name": c.name,
        "status": c.status.value,
        "status_reason": c.status_reason,
        "current_iteration": c.current_iteration,
        "iterations": len(iterations),
        "dataset_size": sum(r["labelled"] or 0 for r in iterations),
        "label_failures": sum(r["label_failures"] or 0 for r in iterations),
        "created_at": _iso(c.created_at),
        "last_activity": _iso(c.updated_at),
        "accurate_ratio_target": stop.get("accurate_ratio"),
        "patience": stop.get("patience"),
        "max_iterations": stop.get("max_iterations"),
        "force_error_target": stop.get("force_error_target"),
    }


def campaigns_overview() -> list[dict]:
    """Every campaign with its status, iterations, dataset size and last activity."""
    out = []
    for c in all_campaigns():
        its = campaign_iterations(c.id)
        head = _campaign_head(c, [_iteration_row(it) for it in its])
        # Stages write iterations, not the campaign: its last activity is the later one.
        times = [c.updated_at, *(it.updated_at for it in its)]
        head["last_activity"] = _iso(max(t for t in times if t is not None))
        out.append(head)
    return out


def campaign_view(name: str) -> dict | None:
    """The campaign page: head, per-iteration rows, failures, newest selected structures."""
    c = get_campaign(name)
    if c is None:
        return None
    rows = [_iteration_row(it) for it in campaign_iterations(c.id)]
    total = 0
    for r in rows:
        total += r["labelled"] or 0
        r["dataset_size"] = total
    return {
        "campaign": _campaign_head(c, rows),
        "stages": [s.value for s in Stage],
        "iterations": rows,
        "label_failures": _recent_failures(c.id),
        "selected": _latest_labelled(c.id, rows[-1]["index"] if rows else 0),
    }


def _recent_failures(campaign_id: Any) -> list[dict]:
    bad = [LabelStatus.FAILED.value, LabelStatus.REJECTED.value]
    found = (
        Label._get_collection()
        .find(
            {"campaign": campaign_id, "status": {"$in": bad}},
            {"structure": 1, "iteration": 1, "status": 1, "error": 1},
        )
        .sort("created_at", -1)
        .limit(LIST_LIMIT)
    )
    return [
        {
            "structure_id": lab["structure"],
            "iteration": lab.get("iteration"),
            "status": lab["status"],
            "reason": (lab.get("error") or "")[:300],
        }
        for lab in found
    ]


def _latest_labelled(campaign_id: Any, last: int) -> list[dict]:
    # Found through the labels (a campaign labels far fewer structures than it samples)
    # and fetched by key.
    labelled = [
        lab["structure"]
        for lab in Label._get_collection()
        .find({"campaign": campaign_id, "iteration": last}, {"structure": 1})
        .limit(LIST_LIMIT)
    ]
    docs = get_many("structures", labelled)
    return [
        {
            "structure_id": sid,
            "system": docs[sid]["system"],
            "iteration": docs[sid].get("iteration"),
            "force_dev_max": (docs[sid].get("uncertainty") or {}).get("force_dev_max"),
        }
        for sid in labelled
        # Isolated atoms (the E0s) are labelled too, but were never selected.
        if sid in docs and docs[sid].get("origin") != Origin.ISOLATED_ATOM
    ]


def structure_view(structure_id: str) -> dict | None:
    """The structure page: lineage (as ``aloop show``) plus the geometry to draw."""
    info = structure_lineage(structure_id)
    if info is None:
        return None
    s = Structure._from_son(get_many("structures", [structure_id])[structure_id])
    info["geometry"] = {
        "numbers": s.numbers.tolist(),
        "positions": s.positions.tolist(),
        "cell": s.cell.tolist(),
        "pbc": list(s.pbc),
    }
    return _jsonable(info)


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO strings and ObjectIds as strings, recursively."""
    from datetime import datetime

    from bson import ObjectId

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ObjectId):
        return str(value)
    return value
