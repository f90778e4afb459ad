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
import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from aloop.config import load_config
from aloop.convergence import StopDecision, dead_end, decide
from aloop.models.foundation import foundation_problems
from aloop.progress import LogReporter, Reporter
from aloop.records import CampaignOutcome, CampaignRecord, IterationRecord
from aloop.settings import get_settings, resolve_db_uri
from aloop.stats import StopRecord
from aloop.vocabulary import (
    FINAL_STAGES,
    CampaignStatus,
    LabelStatus,
    Stage,
    StageStatus,
    stages_of,
)
from db import campaigns, connection, iterations, labels
from dft.names import dft_name_problems
from flows import stages
from flows.artifacts import publish_iteration
from flows.context import CampaignError, LabelRunner, Loop
from flows.labelling import PrefectLabeller
from flows.lease import LeaseLost, RunLease
from flows.relabel import relabel_stale

if TYPE_CHECKING:
    from aloop.config import CampaignConfig

#: Set by ``aloop run`` for a live terminal display; a deployed run logs instead.
_reporter: Reporter | None = None

#: What stops a run from outside: Ctrl-C, and SIGTERM as Prefect's engine raises it.
#: Neither is a failure: the stage in flight stays ``running`` (resumed like a crash) and
#: the campaign ``stopped``, so the same command continues it.
INTERRUPTIONS: tuple[type[BaseException], ...] = (KeyboardInterrupt, TerminationSignal)

INTERRUPTED_REASON = "interrupted; run the same command again to resume"

#: Why the run gave up although nothing failed: leave the stage as it is.
_NOT_FAILURES: tuple[type[BaseException], ...] = (*INTERRUPTIONS, LeaseLost)


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


def _stage_task(fn: Any, stage: Stage) -> Any:
    return task(
        fn,
        name=stage.value,
        cache_policy=NO_CACHE,
        retries=1,
        retry_delay_seconds=5,
        retry_condition_fn=_transient,
    )


STAGE_TASKS = {
    Stage.SEED: _stage_task(stages.seed_stage, Stage.SEED),
    Stage.TRAIN: _stage_task(stages.train_stage, Stage.TRAIN),
    Stage.EXPLORE: _stage_task(stages.explore_stage, Stage.EXPLORE),
    Stage.SELECT: _stage_task(stages.select_stage, Stage.SELECT),
    Stage.LABEL: _stage_task(stages.label_stage, Stage.LABEL),
    Stage.FINAL: _stage_task(stages.final_stage, Stage.FINAL),
}
statistics_task = task(stages.iteration_errors, name="statistics", cache_policy=NO_CACHE)


def run_stage(loop: Loop, it: IterationRecord, stage: Stage, *extra: Any) -> None:
    """Run one stage unless done: mark it, run its task, store its stats, mark it done."""
    if it.stage_status(stage) is StageStatus.DONE:
        loop.reporter.stage_skipped(it.index, stage)
        return
    fn = STAGE_TASKS[stage]
    loop.check_lease()
    iterations.set_stage(it, stage, StageStatus.RUNNING)
    loop.reporter.stage_started(it.index, stage)
    start = time.perf_counter()
    try:
        stats, compute = fn.with_options(task_run_name=f"{fn.name}-it{it.index}")(loop, it, *extra)
    except _NOT_FAILURES:
        raise
    except BaseException as exc:
        # The database may be what failed; the error is raised either way.
        with contextlib.suppress(Exception):
            error = f"{type(exc).__name__}: {exc}"[:2000]
            iterations.set_stage(it, stage, StageStatus.FAILED, error=error)
        raise
    loop.check_lease()
    wall = time.perf_counter() - start
    timing = {"wall_s": round(wall, 3), "compute_s": compute}
    iterations.merge_stats(it.id, {**stats.to_doc(), f"timings.{stage}": timing})
    iterations.set_stage(it, stage, StageStatus.DONE)
    loop.reporter.stage_finished(it.index, stage, wall, stats.summary())


def run_iteration(loop: Loop, index: int, labeller: LabelRunner) -> None:
    """Every unfinished stage of iteration ``index``, then its statistics."""
    it = iterations.get_or_create_iteration(loop.campaign.id, index)
    campaigns.set_current_iteration(loop.campaign.id, index)
    start = time.perf_counter()
    for stage in stages_of(index):
        run_stage(loop, it, stage, *((labeller,) if stage is Stage.LABEL else ()))
        stored = iterations.find_iteration(loop.campaign.id, index)
        reason = dead_end(index, stored.stats) if stored is not None else None
        if reason is not None:
            raise CampaignError(reason)
    if index > 0 and it.stats.holdout_error is None:
        _measure(loop, it)
    iterations.merge_stats(it.id, {"iteration_wall_s": round(time.perf_counter() - start, 3)})


def _measure(loop: Loop, it: IterationRecord) -> None:
    """Store the iteration's hold-out error and calibration (what the rules then read)."""
    errors = statistics_task.with_options(task_run_name=f"statistics-it{it.index}")(loop, it)
    iterations.merge_stats(it.id, errors.to_doc())
    loop.reporter.message(
        f"  hold-out: {errors.holdout_error.describe()}" + _calibration_note(errors.calibration)
    )


def _calibration_note(cal: Any) -> str:
    if cal.scale is None:
        return ""
    rho = f", Spearman {cal.spearman:.2f}" if cal.spearman is not None else ""
    return f"; calibration: error ≈ {cal.scale:.2f} x deviation on {cal.n} frames{rho}"


def run_final(loop: Loop, index: int, decision: StopDecision) -> IterationRecord:
    """The final iteration ``index``: the production committee, unless already trained.

    The decision that led to it is stored with it: one kept from an earlier release's
    rules (``rule`` None) is kept on later runs too (:func:`stop_decision`).
    """
    it = open_final(loop.campaign.id, index, decision)
    campaigns.set_current_iteration(loop.campaign.id, index)
    run_stage(loop, it, Stage.FINAL)
    return iterations.find_iteration(loop.campaign.id, index)


def open_final(campaign_id: Any, index: int, decision: StopDecision) -> IterationRecord:
    """The final iteration ``index``, created if absent, with the decision stored on it."""
    started = iterations.find_iteration(campaign_id, index)
    if started is not None and not started.is_final:
        # The rules stop before an iteration that had begun (the cap was lowered).
        iterations.set_stages(started.id, FINAL_STAGES)
    it = iterations.get_or_create_iteration(campaign_id, index, stages=FINAL_STAGES)
    record = StopRecord(status=decision.status, reason=decision.reason, rule=decision.rule)
    iterations.merge_stats(it.id, {"stop_decision": record.to_doc()})
    return it


def decision_of(campaign_id: Any, cfg: CampaignConfig) -> StopDecision:
    """What the stopping rules say of the campaign's finished exploring iterations."""
    history = [it.stats for it in exploring_history(campaign_id)]
    return decide(history, cfg.stop, adaptive_lo=cfg.select.adaptive_lo)


def kept_verdict(campaign: CampaignRecord) -> StopDecision | None:
    """The verdict of an earlier release's rules, kept: a campaign it called converged.

    Such a campaign has no final iteration (that release had none), and its iterations
    lack the hold-out the rules now read: deciding again would explore on, spending DFT
    on a campaign its user was told had converged. Its verdict is kept, and the final
    committee trained on its labels; the final iteration stores it (``rule`` None), so
    it holds on every later run. ``campaign`` is the record as stored before this run
    marked it running. None: today's rules decide.
    """
    final = iterations.final_iteration(campaign.id)
    if final is not None:
        kept = final.stats.stop_decision
        if kept is not None and kept.rule is None:
            return StopDecision(True, kept.status, kept.reason)
        return None
    if campaign.status is CampaignStatus.CONVERGED:
        return StopDecision(True, CampaignStatus.CONVERGED, campaign.status_reason)
    return None


def stop_decision(campaign: CampaignRecord, cfg: CampaignConfig) -> StopDecision:
    """The decision a run acts on: the kept verdict, else today's rules."""
    return kept_verdict(campaign) or decision_of(campaign.id, cfg)


def exploring_history(campaign_id: Any) -> list[IterationRecord]:
    """Exploring iterations whose labelling finished, in order."""
    return [
        it
        for it in iterations.campaign_iterations(campaign_id)
        if it.index >= 1 and it.labelled_done and not it.is_final
    ]


def run_campaign(
    cfg: CampaignConfig,
    base_dir: Path,
    reporter: Reporter,
    allow_config_change: bool = False,
    take_over: bool = False,
) -> CampaignOutcome:
    """The loop itself, on an open database connection (the flow's body).

    The run holds the campaign's lease throughout (flows/lease.py): a second run of the
    same campaign is refused with :class:`~db.campaigns.CampaignBusy` unless
    ``take_over``.
    """
    config, config_hash = cfg.model_dump(mode="json"), cfg.result_hash(base_dir)
    campaign, created = campaigns.find_or_create_campaign(cfg.campaign, config, config_hash)
    with RunLease(campaign.id, cfg.campaign, take_over=take_over) as lease:
        # Compared (and a change recorded) only while this run holds the campaign.
        campaigns.accept_config(
            campaign.id,
            config,
            config_hash,
            allow_config_change,
            cfg.earlier_result_hashes(),
        )
        if lease.previous is not None:
            how = "its lease had expired" if lease.previous.seconds_left() == 0 else "--take-over"
            reporter.message(
                f"took campaign {cfg.campaign} over from the run on "
                f"{lease.previous.describe()} ({how})"
            )
        campaign = campaigns.reload_campaign(campaign.id)
        if not created and _already_finished(campaign, cfg, reporter):
            return _outcome(campaign.id)
        if not created:
            reporter.message(
                f"resuming campaign {cfg.campaign} at iteration {campaign.current_iteration}"
            )
        kept = kept_verdict(campaign)
        if kept is not None and iterations.final_iteration(campaign.id) is None:
            # Stored before the status below overwrites the verdict it comes from.
            open_final(campaign.id, _next_index(campaign.id), kept)
        campaigns.set_campaign_status(campaign.id, CampaignStatus.RUNNING, "")
        # One work directory per run: two runs never share MACE's checkpoint files.
        workdir = get_settings().data_dir / "work" / cfg.campaign / lease.owner[:12]
        loop = Loop(cfg, campaign, base_dir, workdir, reporter, lease=lease)
        try:
            _loop_until_stopped(loop, campaign.current_iteration)
        except LeaseLost:
            raise  # the campaign is another run's now: write nothing to it
        except INTERRUPTIONS:
            if not lease.lost:
                _mark(campaign, CampaignStatus.STOPPED, INTERRUPTED_REASON)
            raise
        except CampaignError as exc:
            _mark(campaign, CampaignStatus.FAILED, str(exc))
            raise
        except Exception as exc:
            _mark(campaign, CampaignStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        shutil.rmtree(workdir, ignore_errors=True)
    return _outcome(campaign.id)


def _already_finished(campaign: CampaignRecord, cfg: CampaignConfig, reporter: Reporter) -> bool:
    """Whether a stored campaign is finished as the rules say (then it is said so)."""
    if not campaign.status.finished:
        return False
    decision = stop_decision(campaign, cfg)
    # A campaign interrupted after its last labels but before its status was written
    # goes on, and is finished by the loop; so does one finished before it had a final
    # stage (it gets its production committee).
    final = iterations.final_iteration(campaign.id)
    if (
        decision.stop
        and (campaign.status, campaign.status_reason) == (decision.status, decision.reason)
        and final is not None
        and final.stage_status(Stage.FINAL) is StageStatus.DONE
    ):
        reporter.message(
            f"campaign {cfg.campaign} is already {campaign.status}: {campaign.status_reason}"
        )
        return True
    return False


def _loop_until_stopped(loop: Loop, index: int) -> None:
    """Iterations from ``index`` on, until a stopping rule holds; then the final stage."""
    cid = loop.campaign.id
    with PrefectLabeller(loop.cfg.execution) as labeller:
        loop.label_runner = labeller  # isolated atoms (E0s) are labelled where labels are
        loop.check_lease()
        relabelled = relabel_stale(loop, labeller)
        kept = kept_verdict(loop.campaign)
        history = exploring_history(cid)
        if kept is None and history and (relabelled or history[-1].stats.holdout_error is None):
            # Killed between an iteration's last labels and its statistics, or labels
            # just recomputed at today's settings: the rules read the hold-out error, so
            # it is measured (again) before anything is decided.
            _measure(loop, history[-1])
        decision = kept or decision_of(cid, loop.cfg)
        final = iterations.final_iteration(cid)
        if final is not None and not decision.stop:
            # The rules no longer stop where the final committee was trained (the
            # iteration cap was raised): that iteration becomes an exploring one, whose
            # train stage finds the final members already stored.
            iterations.set_stages(final.id, stages_of(final.index))
            loop.reporter.message(
                f"iteration {final.index}: the stopping rules no longer hold; exploring on"
            )
            index = final.index
        while not decision.stop:
            run_iteration(loop, index, labeller)
            if index >= 1:
                history = exploring_history(cid)
                decision = decide(
                    [it.stats for it in history], loop.cfg.stop, loop.cfg.select.adaptive_lo
                )
                publish_iteration(loop.cfg, history[-1], decision, loop.reporter)
            index += 1
        final = run_final(loop, _next_index(cid), decision)
        publish_iteration(loop.cfg, final, decision, loop.reporter)
        campaigns.set_campaign_status(cid, decision.status, decision.reason)


def _next_index(campaign_id: Any) -> int:
    """Where the final iteration goes: after the last finished exploring one."""
    last = exploring_history(campaign_id)
    return (last[-1].index if last else 0) + 1


def _mark(campaign: CampaignRecord, status: CampaignStatus, reason: str) -> None:
    # The database itself may be down: the caller reports the error.
    with contextlib.suppress(Exception):
        campaigns.set_campaign_status(campaign.id, status, reason)


def _outcome(campaign_id: Any) -> CampaignOutcome:
    campaign = campaigns.reload_campaign(campaign_id)
    counts = labels.label_counts(campaign_id)
    final = iterations.final_iteration(campaign_id)
    done = final is not None and final.stats.final is not None
    return CampaignOutcome(
        campaign=campaign.name,
        status=campaign.status,
        reason=campaign.status_reason,
        iterations=campaign.current_iteration + (0 if final is not None else 1),
        labels_ok=counts.get(LabelStatus.OK, 0),
        labels_failed=counts.get(LabelStatus.FAILED, 0),
        labels_rejected=counts.get(LabelStatus.REJECTED, 0),
        labels_holdout=labels.holdout_label_count(campaign_id),
        final_holdout=final.stats.final.final_holdout if done else None,
    )


@flow(name="aloop-campaign", log_prints=True)
def campaign_flow(
    config_path: str,
    db_uri: str | None = None,
    allow_config_change: bool = False,
    take_over: bool = False,
) -> CampaignOutcome:
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
    take_over
        Take the campaign from a run that still holds its lease (one presumed dead).

    Returns
    -------
    CampaignOutcome
        Campaign name, final status and reason, iterations, label counts, database.
    """
    cfg = load_config(config_path, checks=[dft_name_problems, foundation_problems])
    reporter = _reporter or LogReporter(get_run_logger())
    target = connection.connect(db_uri or resolve_db_uri(cfg.database.uri))
    reporter.message(f"campaign {cfg.campaign}: database {target.display}")
    try:
        outcome = run_campaign(
            cfg, Path(config_path).resolve().parent, reporter, allow_config_change, take_over
        )
    finally:
        connection.disconnect()
    return dataclasses.replace(outcome, database=target.display)
