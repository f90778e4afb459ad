"""The campaign flow: iteration 0 seeds, then train -> explore -> select -> label, until a
stopping rule holds.

The database is the loop's only memory. Every stage is marked running before it starts
and done after its results are stored, so a run killed at any point is continued by
running the same command again: finished stages are skipped and no structure is labelled
twice at the same settings (see flows/stages.py for how each stage resumes).

Run it with ``aloop run CONFIG`` (local, live progress), call ``campaign_flow(...)``
directly, or deploy it to a work pool (prefect.yaml, flows/serve.py).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from aloop.config import load_config
from aloop.convergence import StopDecision, decide
from aloop.progress import LogReporter, Reporter
from aloop.settings import get_settings, resolve_db_uri
from db import connection
from db import loop as q
from db import repository as repo
from flows import stages
from flows.labelling import PrefectLabeller

if TYPE_CHECKING:
    from aloop.config import CampaignConfig
    from db.documents import Iteration

#: Set by ``aloop run`` for a live terminal display; a deployed run logs instead.
_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    """Show progress through ``reporter`` (None: Prefect's run logger)."""
    global _reporter
    _reporter = reporter


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a stage only when the database connection dropped, never for a bug or data."""
    from pymongo.errors import AutoReconnect, ConnectionFailure

    try:
        exc = state.result(raise_on_failure=False)
    except Exception:
        return False
    return isinstance(exc, (AutoReconnect, ConnectionFailure))


def _stage_task(fn: Any, name: str) -> Any:
    return task(
        fn,
        name=name,
        cache_policy=NO_CACHE,
        retries=1,
        retry_delay_seconds=5,
        retry_condition_fn=_transient,
    )


def _no_training(loop: stages.Loop, iteration: Iteration) -> tuple[dict, float]:
    """Iteration 0 has no committee to train: it labels the seed structures."""
    return {"training": {"skipped": "seed iteration"}}, 0.0


def _all_seeds_selected(loop: stages.Loop, iteration: Iteration) -> tuple[dict, float]:
    n = len(q.structure_ids(loop.campaign, 0, verdicts=["selected"]))
    return {"selected": n}, 0.0


STAGE_TASKS = {
    "seed": _stage_task(stages.seed_stage, "seed"),
    "train": _stage_task(stages.train_stage, "train"),
    "explore": _stage_task(stages.explore_stage, "explore"),
    "select": _stage_task(stages.select_stage, "select"),
    "label": _stage_task(stages.label_stage, "label"),
}
statistics_task = task(stages.committee_error, name="statistics", cache_policy=NO_CACHE)


def _summary(stage: str, s: dict) -> str:
    """One line for the progress display."""
    if stage == "train":
        t = s.get("training", {})
        if "skipped" in t:
            return "nothing to train (seed iteration)"
        return (
            f"{t['structures']} structures, {t['members_trained']} member(s) trained, "
            f"valid force RMSE {t['valid_forces_rmse']:.3f} eV/Å"
        )
    if stage == "explore":
        if "seeded" in s:
            return f"{s['seeded']} seed structures (initial + rattled)"
        parts = [
            f"{x['name']}: {x['sampled']} frames, {x['accurate_ratio']:.0%} accurate, "
            f"{x['candidate']} candidate, {x['failed']} failed"
            for x in s["systems"]
        ]
        return "; ".join(parts)
    if stage == "select":
        return f"{s['selected']} selected" + (
            f", {s['duplicates']} duplicates" if s.get("duplicates") else ""
        )
    return f"{s['labelled']} ok, {s['label_failures']} failed, DFT {s['dft_wall_s']:.1f} s" + (
        f", {s['unlabelled']} left unlabelled" if s.get("unlabelled") else ""
    )


def run_stage(loop: stages.Loop, it: Iteration, stage: str, fn: Any, *extra: Any) -> None:
    """Run one stage unless done: mark it, run its task, store its stats, mark it done."""
    if it.stages[stage].status == "done":
        loop.reporter.stage_skipped(it.index, stage)
        return
    repo.set_stage(it, stage, "running")
    loop.reporter.stage_started(it.index, stage)
    start = time.perf_counter()
    try:
        stats, compute = fn.with_options(task_run_name=f"{fn.name}-it{it.index}")(loop, it, *extra)
    except BaseException as exc:
        # The database may be what failed; the error is raised either way.
        with contextlib.suppress(Exception):
            repo.set_stage(it, stage, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    wall = time.perf_counter() - start
    repo.update_iteration_stats(
        it, {**stats, f"timings.{stage}": {"wall_s": round(wall, 3), "compute_s": compute}}
    )
    repo.set_stage(it, stage, "done")
    loop.reporter.stage_finished(it.index, stage, wall, _summary(stage, stats))


def run_iteration(loop: stages.Loop, index: int, labeller: stages.LabelRunner) -> Iteration:
    """Every unfinished stage of iteration ``index``, then its statistics."""
    it = repo.get_or_create_iteration(loop.campaign, index)
    q.set_current_iteration(loop.campaign, index)
    start = time.perf_counter()
    if index == 0:
        run_stage(loop, it, "train", task(_no_training, name="train", cache_policy=NO_CACHE))
        run_stage(loop, it, "explore", STAGE_TASKS["seed"])
        run_stage(
            loop, it, "select", task(_all_seeds_selected, name="select", cache_policy=NO_CACHE)
        )
    else:
        run_stage(loop, it, "train", STAGE_TASKS["train"])
        run_stage(loop, it, "explore", STAGE_TASKS["explore"])
        run_stage(loop, it, "select", STAGE_TASKS["select"])
    run_stage(loop, it, "label", STAGE_TASKS["label"], labeller)
    if index > 0 and "committee_error" not in (it.stats or {}):
        err = statistics_task.with_options(task_run_name=f"statistics-it{index}")(loop, it)
        repo.update_iteration_stats(it, {"committee_error": err})
    repo.update_iteration_stats(it, {"iteration_wall_s": round(time.perf_counter() - start, 3)})
    return it


def iteration_markdown(cfg: CampaignConfig, stats: dict, decision: StopDecision) -> str:
    """The iteration's statistics as a markdown table (a Prefect artifact)."""
    rows = [
        "| system | sampled | accurate | candidate | failed | accurate ratio |",
        "|---|---|---|---|---|---|",
    ]
    for s in stats.get("systems", []):
        rows.append(
            f"| {s['name']} | {s['sampled']} | {s['accurate']} | {s['candidate']} | "
            f"{s['failed']} | {s['accurate_ratio']:.3f} |"
        )
    err = stats.get("committee_error") or {}
    lines = [
        f"# {cfg.campaign}: iteration {stats['index']}",
        "",
        *rows,
        "",
        f"- selected: {stats.get('selected', 0)}, labelled ok: {stats.get('labelled', 0)}, "
        f"label failures: {stats.get('label_failures', 0)}",
        f"- DFT wall time: {stats.get('dft_wall_s', 0):.1f} s",
    ]
    if err.get("n"):
        lines.append(
            f"- committee error on newly labelled frames: forces RMSE "
            f"{err['forces_rmse']:.4f} eV/Å, energy RMSE {err['energy_rmse_per_atom']:.5f} "
            "eV/atom"
        )
    lines.append(
        f"- decision: {decision.status}: {decision.reason}" if decision.stop else "- continue"
    )
    return "\n".join(lines)


def _publish(cfg: CampaignConfig, stats: dict, decision: StopDecision, reporter: Reporter) -> None:
    from prefect.artifacts import create_markdown_artifact

    slug = re.sub(r"[^a-z0-9-]+", "-", cfg.campaign.lower()).strip("-")
    try:
        create_markdown_artifact(
            key=f"{slug}-iteration-{stats['index']}",
            markdown=iteration_markdown(cfg, stats, decision),
            description=f"aloop campaign {cfg.campaign}, iteration {stats['index']}",
        )
    except Exception as exc:  # the UI's copy is a convenience; the database has the data
        reporter.message(f"  (no Prefect artifact: {exc})")


def _exploring_history(campaign: Any) -> list[dict]:
    """Statistics of exploring iterations whose labelling finished, in order."""
    return [
        s
        for s in q.iteration_stats(campaign)
        if s["index"] >= 1 and s["stage_states"].get("label") == "done"
    ]


def run_campaign(
    cfg: CampaignConfig, base_dir: Path, reporter: Reporter, allow_config_change: bool = False
) -> dict:
    """The loop itself, on an open database connection (the flow's body)."""
    campaign, created = repo.get_or_create_campaign(
        cfg.campaign, cfg.model_dump(mode="json"), cfg.result_hash(), allow_config_change
    )
    if not created and campaign.status in ("converged", "stopped"):
        decision = decide(_exploring_history(campaign), cfg.stop)
        # Finished as the rules say: nothing to do. (A campaign interrupted after its
        # last labels but before its status was written goes on, and is finished below.)
        if decision.stop and (campaign.status, campaign.status_reason) == (
            decision.status,
            decision.reason,
        ):
            reporter.message(
                f"campaign {cfg.campaign} is already {campaign.status}: {campaign.status_reason}"
            )
            return _result(campaign)
    if not created:
        reporter.message(
            f"resuming campaign {cfg.campaign} at iteration {campaign.current_iteration}"
        )
    repo.set_campaign_status(campaign, "running", "")
    workdir = get_settings().data_dir / "work" / cfg.campaign
    loop = stages.Loop(cfg, campaign, base_dir, workdir, reporter)
    index = campaign.current_iteration
    try:
        with PrefectLabeller(cfg.execution) as labeller:
            while True:
                run_iteration(loop, index, labeller)
                if index >= 1:
                    history = _exploring_history(campaign)
                    decision = decide(history, cfg.stop)
                    _publish(cfg, history[-1], decision, reporter)
                    if decision.stop:
                        repo.set_campaign_status(campaign, decision.status, decision.reason)
                        break
                index += 1
    except KeyboardInterrupt:
        _mark(campaign, "stopped", "interrupted; run the same command again to resume")
        raise
    except stages.CampaignError as exc:
        _mark(campaign, "failed", str(exc))
        raise
    except Exception as exc:
        _mark(campaign, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    return _result(campaign)


def _mark(campaign: Any, status: str, reason: str) -> None:
    # The database itself may be down: the caller reports the error.
    with contextlib.suppress(Exception):
        repo.set_campaign_status(campaign, status, reason)


def _result(campaign: Any) -> dict:
    campaign.reload()
    labels = repo.label_summary(campaign)
    return {
        "campaign": campaign.name,
        "status": campaign.status,
        "reason": campaign.status_reason,
        "iterations": campaign.current_iteration + 1,
        "labels_ok": int(sum(v.get("ok", 0) for v in labels.values())),
        "labels_failed": int(
            sum(v.get("failed", 0) + v.get("rejected", 0) for v in labels.values())
        ),
    }


@flow(name="aloop-campaign", log_prints=True)
def campaign_flow(
    config_path: str, db_uri: str | None = None, allow_config_change: bool = False
) -> dict:
    """Run (or resume) the campaign described by ``config_path`` to its stopping rule.

    Parameters
    ----------
    config_path
        Campaign YAML file.
    db_uri
        Database URI; default ALOOP_DB_URI, then the file's ``database.uri``, then the
        embedded store in the data directory.
    allow_config_change
        Continue a stored campaign whose results-relevant settings differ, recording the
        change (otherwise refused).

    Returns
    -------
    dict
        Campaign name, final status and reason, iterations, label counts, database.
    """
    cfg = load_config(config_path)
    reporter = _reporter or LogReporter(get_run_logger())
    target = connection.connect(db_uri or resolve_db_uri(cfg.database.uri))
    reporter.message(f"campaign {cfg.campaign}: database {target.display}")
    try:
        result = run_campaign(
            cfg, Path(config_path).resolve().parent, reporter, allow_config_change
        )
    finally:
        connection.disconnect()
    return {**result, "database": target.display}
