"""Read models for the dashboard and its JSON API: one function per page, plain data out.

Every number comes from what the loop already stored per iteration (counts, ratios,
histograms, timings, label outcomes, hold-out error, calibration points), so a page costs
a read of the campaign's iteration documents, not a pass over its structures: pages stay
fast on campaigns of any size. The few lists (recent failures, selected structures) are
bounded queries on indexed fields.

The final iteration (the production committee, trained once a stopping rule fired) is
not a loop iteration: the campaign page returns it apart, under ``final``. Every field
added since the first release reads as None (or 0) in documents stored before it.
"""

from __future__ import annotations

from typing import Any

from aloop.records import CampaignRecord, IterationRecord, StageState
from aloop.stats import HoldoutError
from aloop.vocabulary import LabelStatus, Origin, Stage
from db.campaigns import all_campaigns, get_campaign
from db.documents import Label, Structure
from db.iterations import campaign_iterations
from db.lineage import structure_lineage
from db.scan import get_many

#: Rows in the bounded lists of the campaign page.
LIST_LIMIT = 50
#: Per-system exploration fields the dashboard does not draw.
_SYSTEM_HIDDEN = {"md_steps", "committee_calls"}
#: The stage columns of the iterations table: every stage a loop iteration may run.
LOOP_STAGE_COLUMNS = [s.value for s in Stage if s is not Stage.FINAL]


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


def _holdout(err: HoldoutError | None) -> dict | None:
    return err.model_dump() if err is not None else None


def _iteration_row(it: IterationRecord) -> dict:
    s = it.stats
    explore, labelling, err = s.explore, s.labelling, s.committee_error
    final = s.final
    return {
        "index": it.index,
        "is_final": it.is_final,
        "stages": {k.value: _stage(v) for k, v in it.stages.items()},
        "sampled": explore.sampled if explore else (s.seed.seeded if s.seed else None),
        "accurate": explore.accurate if explore else None,
        "candidate": explore.candidate if explore else None,
        "failed": explore.failed if explore else None,
        "accurate_ratio": explore.accurate_ratio if explore else None,
        # Accurate fraction of the planned walker time (the stopping rule's number).
        "time_ratio": explore.time_ratio if explore else None,
        "systems": [sys.model_dump(exclude=_SYSTEM_HIDDEN) for sys in explore.systems]
        if explore
        else [],
        "selected": s.selected,
        "holdout_selected": s.selection.holdout if s.selection else None,
        "labelled": s.labelled,
        "holdout_to_label": labelling.holdout_to_label if labelling else None,
        "holdout_labelled": labelling.holdout_labelled if labelling else None,
        "label_failures": s.label_failures,
        "label_failure_reasons": labelling.label_failure_reasons if labelling else {},
        "dft_wall_s": labelling.dft_wall_s if labelling else None,
        "committee_forces_rmse": s.committee_forces_rmse,
        "committee_energy_rmse_per_atom": err.energy_rmse_per_atom if err and err.n else None,
        "holdout": _holdout(s.holdout_error),
        "calibration": s.calibration.model_dump() if s.calibration else None,
        "final": {"training": final.final.model_dump(), "holdout": _holdout(final.final_holdout)}
        if final
        else None,
        "timings": {k.value: v.model_dump() for k, v in s.timings.items()},
        "wall_s": s.wall_s,
    }


def _latest_holdout(rows: list[dict], final: dict | None) -> dict | None:
    """The newest hold-out error: the final committee's, else the last iteration's."""
    if final is not None and final["final"] and (final["final"]["holdout"] or {}).get("n"):
        return {"iteration": final["index"], "final": True, **final["final"]["holdout"]}
    for r in reversed(rows):
        if (r["holdout"] or {}).get("n"):
            return {"iteration": r["index"], "final": False, **r["holdout"]}
    return None


def _campaign_head(c: CampaignRecord, iterations: list[dict], final: dict | None) -> dict:
    stop = c.config.get("stop", {})
    return {
        "name": c.name,
        "status": c.status.value,
        "status_reason": c.status_reason,
        "current_iteration": c.current_iteration,
        "iterations": len(iterations),
        "dataset_size": sum(r["labelled"] or 0 for r in iterations),
        # Of dataset_size: the hold-out frames, labelled but never trained on.
        "holdout_size": sum(r["holdout_labelled"] or 0 for r in iterations),
        "label_failures": sum(r["label_failures"] or 0 for r in iterations),
        "created_at": _iso(c.created_at),
        "last_activity": _iso(c.updated_at),
        "accurate_ratio_target": stop.get("accurate_ratio"),
        "patience": stop.get("patience"),
        "max_iterations": stop.get("max_iterations"),
        "force_error_target": stop.get("force_error_target"),
        "holdout_min_frames": stop.get("holdout_min_frames"),
        "final_status": final["stages"][Stage.FINAL.value]["status"] if final else None,
        "holdout": _latest_holdout(iterations, final),
    }


def _split(its: list[IterationRecord]) -> tuple[list[dict], dict | None]:
    """The loop iterations' rows, and the final iteration's (None before it began)."""
    rows = [_iteration_row(it) for it in its]
    final = next((r for r in rows if r["is_final"]), None)
    return [r for r in rows if not r["is_final"]], final


def campaigns_overview() -> list[dict]:
    """Every campaign with its status, iterations, dataset size and last activity."""
    out = []
    for c in all_campaigns():
        its = campaign_iterations(c.id)
        head = _campaign_head(c, *_split(its))
        # Stages write iterations, not the campaign: its last activity is the later one.
        times = [c.updated_at, *(it.updated_at for it in its)]
        head["last_activity"] = _iso(max(t for t in times if t is not None))
        out.append(head)
    return out


def campaign_view(name: str) -> dict | None:
    """The campaign page: head, per-iteration rows, the final iteration (None until a
    stopping rule fired), failures, the newest labelled structures."""
    c = get_campaign(name)
    if c is None:
        return None
    rows, final = _split(campaign_iterations(c.id))
    total = 0
    for r in rows:
        total += r["labelled"] or 0
        r["dataset_size"] = total
    return {
        "campaign": _campaign_head(c, rows, final),
        "stages": LOOP_STAGE_COLUMNS,
        "iterations": rows,
        "final": final,
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
            "stress_dev_gpa": (docs[sid].get("uncertainty") or {}).get("stress_dev_gpa"),
            "verdict": docs[sid].get("verdict"),
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
