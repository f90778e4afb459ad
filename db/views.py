"""Read models for the dashboard and its JSON API: one function per page, plain data out.

Every number comes from what the loop already stored per iteration (counts, ratios,
histograms, timings, label outcomes), so a page costs a read of the campaign's iteration
documents, not a pass over its structures: pages stay fast on campaigns of any size. The
few lists (recent failures, selected structures) are bounded queries on indexed fields.
"""

from __future__ import annotations

from typing import Any

from db.documents import Campaign, Iteration, Label, Structure
from db.lineage import structure_lineage
from db.scan import get_many

STAGES = ("train", "explore", "select", "label")
#: Rows in the bounded lists of the campaign page.
LIST_LIMIT = 50


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _stage(state: Any) -> dict:
    seconds = None
    if state.started_at and state.ended_at:
        seconds = round((state.ended_at - state.started_at).total_seconds(), 3)
    return {
        "status": state.status,
        "started_at": _iso(state.started_at),
        "ended_at": _iso(state.ended_at),
        "seconds": seconds,
        "error": state.error,
    }


def _iteration_row(it: Any) -> dict:
    s = it.stats or {}
    err = s.get("committee_error") or {}
    return {
        "index": it.index,
        "stages": {k: _stage(it.stages[k]) for k in STAGES if k in it.stages},
        "sampled": s.get("sampled", s.get("seeded")),
        "accurate": s.get("accurate"),
        "candidate": s.get("candidate"),
        "failed": s.get("failed"),
        "accurate_ratio": s.get("accurate_ratio"),
        "systems": [
            {
                k: sys.get(k)
                for k in (
                    "name",
                    "sampled",
                    "accurate",
                    "candidate",
                    "failed",
                    "accurate_ratio",
                    "candidate_ratio",
                    "failed_ratio",
                    "trust_lo",
                    "trust_hi",
                    "histogram",
                    "walker_stops",
                )
            }
            for sys in s.get("systems", [])
        ],
        "selected": s.get("selected"),
        "labelled": s.get("labelled"),
        "label_failures": s.get("label_failures"),
        "label_failure_reasons": s.get("label_failure_reasons") or {},
        "dft_wall_s": s.get("dft_wall_s"),
        "committee_forces_rmse": err.get("forces_rmse") if err.get("n") else None,
        "committee_energy_rmse_per_atom": err.get("energy_rmse_per_atom") if err.get("n") else None,
        "timings": s.get("timings") or {},
        "wall_s": s.get("iteration_wall_s"),
    }


def _campaign_head(c: Any, iterations: list[dict]) -> dict:
    size = sum(r["labelled"] or 0 for r in iterations)
    stop = (c.config or {}).get("stop", {})
    return {
        "name": c.name,
        "status": c.status,
        "status_reason": c.status_reason,
        "current_iteration": c.current_iteration,
        "iterations": len(iterations),
        "dataset_size": size,
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
    for c in Campaign.objects.order_by("-updated_at").only(
        "name",
        "status",
        "status_reason",
        "current_iteration",
        "created_at",
        "updated_at",
        "config.stop",
    ):
        its = list(Iteration.objects(campaign=c.id).only("index", "stages", "stats", "updated_at"))
        head = _campaign_head(c, [_iteration_row(it) for it in its])
        # Stages write iterations, not the campaign: its last activity is the later one.
        times = [c.updated_at, *(it.updated_at for it in its)]
        head["last_activity"] = _iso(max(t for t in times if t is not None))
        out.append(head)
    return out


def campaign_view(name: str) -> dict | None:
    """The campaign page: head, per-iteration rows, failures, newest selected structures."""
    c = Campaign.objects(name=name).first()
    if c is None:
        return None
    rows = [_iteration_row(it) for it in Iteration.objects(campaign=c.id).order_by("index")]
    total = 0
    for r in rows:
        total += r["labelled"] or 0
        r["dataset_size"] = total
    failures = [
        {
            "structure_id": lab["structure"],
            "iteration": lab.get("iteration"),
            "status": lab["status"],
            "reason": (lab.get("error") or "")[:300],
        }
        for lab in Label._get_collection()
        .find(
            {"campaign": c.id, "status": {"$in": ["failed", "rejected"]}},
            {"structure": 1, "iteration": 1, "status": 1, "error": 1},
        )
        .sort("created_at", -1)
        .limit(LIST_LIMIT)
    ]
    # The latest iteration's labelled structures, found through the labels (a campaign
    # labels far fewer structures than it samples) and fetched by key.
    last = rows[-1]["index"] if rows else 0
    labelled = [
        lab["structure"]
        for lab in Label._get_collection()
        .find({"campaign": c.id, "iteration": last}, {"structure": 1})
        .limit(LIST_LIMIT)
    ]
    docs = get_many("structures", labelled)
    selected = [
        {
            "structure_id": sid,
            "system": docs[sid]["system"],
            "iteration": docs[sid].get("iteration"),
            "force_dev_max": (docs[sid].get("uncertainty") or {}).get("force_dev_max"),
        }
        for sid in labelled
        if sid in docs
    ]
    return {
        "campaign": _campaign_head(c, rows),
        "iterations": rows,
        "label_failures": failures,
        "selected": selected,
    }


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
