"""The iteration aggregate: stage states, statistics and the committees involved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aloop.errors import InfrastructureError
from aloop.records import IterationRecord, StageState
from aloop.stats import IterationStats, StageStats
from aloop.vocabulary import Stage, StageStatus, stages_of
from db.documents import Iteration, utcnow
from db.documents import StageState as StageDoc


class StageTransitionError(InfrastructureError):
    """A stage was asked to move in a way its current state forbids."""


def _stage_state(raw: dict) -> StageState:
    return StageState(
        status=StageStatus(raw.get("status", StageStatus.PENDING)),
        started_at=raw.get("started_at"),
        ended_at=raw.get("ended_at"),
        error=raw.get("error"),
        attempts=raw.get("attempts") or 0,
    )


def _record(doc: dict) -> IterationRecord:
    """An iteration from its raw document."""
    index = doc["index"]
    stages = {Stage(k): _stage_state(v) for k, v in (doc.get("stages") or {}).items()}
    if index == 0 and Stage.SEED not in stages and Stage.EXPLORE in stages:
        # Stored before the seed had a stage of its own: it ran in the explore slot.
        stages[Stage.SEED] = stages[Stage.EXPLORE]
    return IterationRecord(
        id=doc["_id"],
        index=index,
        stages=stages,
        stats=IterationStats.from_doc(doc.get("stats"), index),
        explore_committee=list(doc.get("explore_committee") or []),
        trained_committee=list(doc.get("trained_committee") or []),
        updated_at=doc.get("updated_at"),
    )


def get_or_create_iteration(
    campaign_id: Any, index: int, stages: Sequence[Stage] | None = None
) -> IterationRecord:
    """The iteration, created with every one of its stages pending if absent.

    ``stages`` default to those of a loop iteration of that index (``stages_of``); the
    final iteration passes ``FINAL_STAGES``.

    An iteration 0 stored before the seed had a stage of its own gets one, in the state
    its explore slot recorded, so it resumes where it stopped.
    """
    coll = Iteration._get_collection()
    now = utcnow()
    pending = stages or stages_of(index)
    coll.update_one(
        {"campaign": campaign_id, "index": index},
        {
            "$setOnInsert": {
                "stages": {s.value: StageDoc().to_mongo().to_dict() for s in pending},
                "created_at": now,
                "updated_at": now,
            }
        },
        upsert=True,
    )
    doc = coll.find_one({"campaign": campaign_id, "index": index})
    stored = doc.get("stages") or {}
    if index == 0 and Stage.SEED not in stored and Stage.EXPLORE in stored:
        coll.update_one(
            {"_id": doc["_id"], f"stages.{Stage.SEED}": {"$exists": False}},
            {"$set": {f"stages.{Stage.SEED}": stored[Stage.EXPLORE]}},
        )
        doc = coll.find_one({"_id": doc["_id"]})
    return _record(doc)


def final_iteration(campaign_id: Any) -> IterationRecord | None:
    """The campaign's final iteration (its production committee), or None if not begun."""
    doc = Iteration._get_collection().find_one(
        {"campaign": campaign_id, f"stages.{Stage.FINAL}": {"$exists": True}}
    )
    return _record(doc) if doc is not None else None


def find_iteration(campaign_id: Any, index: int) -> IterationRecord | None:
    """Iteration ``index`` of a campaign, or None if it was never started."""
    doc = Iteration._get_collection().find_one({"campaign": campaign_id, "index": index})
    return _record(doc) if doc is not None else None


def campaign_iterations(campaign_id: Any) -> list[IterationRecord]:
    """Every iteration of a campaign, by index."""
    rows = Iteration._get_collection().find({"campaign": campaign_id}).sort("index", 1)
    return [_record(d) for d in rows]


#: Allowed stage moves: to -> from. A failed stage may be re-run; a done one is final.
_TRANSITIONS = {
    StageStatus.RUNNING: (StageStatus.PENDING, StageStatus.FAILED, StageStatus.RUNNING),
    StageStatus.DONE: (StageStatus.RUNNING,),
    StageStatus.FAILED: (StageStatus.RUNNING,),
}


def set_stage(
    iteration: IterationRecord, stage: Stage, status: StageStatus, error: str | None = None
) -> None:
    """Move ``stage`` of ``iteration`` to ``status`` atomically.

    ``running`` may follow pending, failed, or running (a crashed run being resumed);
    ``done`` and ``failed`` only follow ``running``. The check and the write are one
    conditional update, so two processes cannot both start or finish a stage.

    Raises
    ------
    StageTransitionError
        The stage is not in a state the move allows.
    """
    stage, status = Stage(stage), StageStatus(status)
    if status not in _TRANSITIONS:
        raise ValueError(f"cannot move a stage to {status!r}")
    now = utcnow()
    key = f"stages.{stage}"
    update: dict[str, Any] = {f"{key}.status": status.value, "updated_at": now}
    change: dict[str, Any] = {"$set": update}
    if status is StageStatus.RUNNING:
        update[f"{key}.started_at"] = now
        update[f"{key}.error"] = None
        change["$inc"] = {f"{key}.attempts": 1}
    else:
        update[f"{key}.ended_at"] = now
        update[f"{key}.error"] = error
    coll = Iteration._get_collection()
    allowed = [s.value for s in _TRANSITIONS[status]]
    res = coll.update_one({"_id": iteration.id, f"{key}.status": {"$in": allowed}}, change)
    if res.matched_count != 1:
        current = _record(coll.find_one({"_id": iteration.id})).stage_status(stage)
        raise StageTransitionError(
            f"iteration {iteration.index}: stage {stage.value!r} is "
            f"{current.value if current else 'absent'!r}, cannot become {status.value!r}"
        )


def set_stages(iteration_id: Any, stages: Sequence[Stage]) -> None:
    """Give an iteration a new set of pending stages, for when the stopping rules changed
    their verdict on it: an exploring iteration becomes the final one (the rules now stop
    before it) or the final one becomes an exploring one (the cap was raised). The
    members it trained stay stored and the train (or final) stage finds them; the final
    statistics (its committee, hold-out error, timing and the decision it acted on) go,
    since they describe a committee that is no longer final."""
    pending = {"stages": {s.value: StageDoc().to_mongo().to_dict() for s in stages}}
    final_keys = (Stage.FINAL, "final_holdout", f"timings.{Stage.FINAL}", "stop_decision")
    Iteration._get_collection().update_one(
        {"_id": iteration_id},
        {
            "$set": {**pending, "updated_at": utcnow()},
            "$unset": {f"stats.{key}": "" for key in final_keys},
        },
    )


def merge_stats(iteration_id: Any, stats: StageStats | dict[str, Any]) -> None:
    """Merge a stage's statistics (or raw top-level keys) into the iteration's."""
    doc = stats.to_doc() if isinstance(stats, StageStats) else stats
    Iteration._get_collection().update_one(
        {"_id": iteration_id},
        {"$set": {**{f"stats.{k}": v for k, v in doc.items()}, "updated_at": utcnow()}},
    )


def set_committees(
    iteration_id: Any, *, trained: Sequence[Any] | None = None, explored: Sequence[Any] = ()
) -> None:
    """Record the committee trained in and the one exploring an iteration."""
    update: dict[str, Any] = {"updated_at": utcnow()}
    if trained is not None:
        update["trained_committee"] = list(trained)
    if explored:
        update["explore_committee"] = list(explored)
    Iteration._get_collection().update_one({"_id": iteration_id}, {"$set": update})
