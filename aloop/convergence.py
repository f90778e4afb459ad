"""Stopping rules of a campaign, as a pure function of its iteration statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aloop.vocabulary import CampaignStatus, StopRule

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aloop.config import StopConfig
    from aloop.stats import HoldoutError, IterationStats


@dataclass(frozen=True)
class StopDecision:
    """Whether the campaign stops after an iteration, with its final status, the rule
    that fired and why (the rule's numbers)."""

    stop: bool
    status: CampaignStatus = CampaignStatus.RUNNING  # converged or stopped when stop is True
    reason: str = ""
    rule: StopRule | None = None


def decide(
    history: Sequence[IterationStats], stop: StopConfig, adaptive_lo: bool = False
) -> StopDecision:
    """Apply the stopping rules to the statistics of exploring iterations 1..n, in order.

    Rules, first match wins:

    1. the accurate ratio on the configured (fixed) lo, as a fraction of the planned
       walker time (a walker stopped early counts against it), >= ``stop.accurate_ratio``
       in each of the last ``stop.patience`` iterations (overall, or for every system
       with ``scope: per_system``); with ``adaptive_lo`` also (DPGEN2's semantics) every
       system's adaptive lo spans less than ``stop.adaptive_lo_tolerance`` over the last
       ``patience`` + 1 iterations: converged;
    2. the committee's force RMSE on the accumulated hold-out below
       ``stop.force_error_target``, once the hold-out has ``stop.holdout_min_frames``
       frames and at least ``stop.min_completed_walkers`` of the last iteration's walkers
       ran every step, and (``stop.stress_error_target_gpa``, cells) the hold-out's
       stress RMSE below that target: converged;
    3. ``stop.max_iterations`` exploring iterations done: stopped at the cap.
    """
    n = len(history)
    if n == 0:
        return StopDecision(False)
    ratio = _accurate_ratio_rule(history, stop, adaptive_lo)
    if ratio is not None:
        return ratio
    target = stop.force_error_target
    held = history[-1].holdout_error
    err = history[-1].holdout_forces_rmse
    enough = err is not None and held.n >= stop.holdout_min_frames
    completed = _completed_walkers(history[-1])
    if (
        target is not None
        and enough
        and err < target
        and completed is not None
        and completed >= stop.min_completed_walkers
        and _stress_within(held, stop.stress_error_target_gpa)
    ):
        stress = (
            f", stress RMSE {held.stress_rmse_gpa:.3f} GPa < target "
            f"{stop.stress_error_target_gpa:g} GPa on {held.stress_n} cells"
            if stop.stress_error_target_gpa is not None
            else ""
        )
        return StopDecision(
            True,
            CampaignStatus.CONVERGED,
            f"hold-out force RMSE {err:.4f} eV/Å < target {target:g} eV/Å "
            f"on {held.n} hold-out frames (minimum {stop.holdout_min_frames}){stress}, "
            f"{completed:.0%} of the walkers ran every step",
            StopRule.HOLDOUT_ERROR,
        )
    if n >= stop.max_iterations:
        last = history[-1]
        where = f"; {last.holdout_error.describe()}" if last.holdout_error is not None else ""
        return StopDecision(
            True,
            CampaignStatus.STOPPED,
            f"iteration cap reached ({stop.max_iterations}){where}",
            StopRule.ITERATION_CAP,
        )
    return StopDecision(False)


def _stress_within(held: HoldoutError, target: float | None) -> bool:
    """Whether the hold-out's stress RMSE meets ``target`` (GPa; None: no stress rule).

    A stress target with no cell in the hold-out is not met: nothing was measured.
    """
    if target is None:
        return True
    return held.stress_rmse_gpa is not None and held.stress_rmse_gpa < target


def _accurate_ratio_rule(
    history: Sequence[IterationStats], stop: StopConfig, adaptive_lo: bool
) -> StopDecision | None:
    """Rule 1 (see :func:`decide`), or None when it does not hold."""
    thr = stop.accurate_ratio
    per_system = stop.scope == "per_system"
    recent = history[-stop.patience :]
    if len(recent) < stop.patience or not all(
        r >= thr for stats in recent for r in stats.accurate_ratios(per_system) or [0.0]
    ):
        return None
    shown = ", ".join(f"{min(s.accurate_ratios(per_system) or [0.0]):.3f}" for s in recent)
    where = "every system's" if per_system else "the"
    ratio = (
        f"{where} accurate walker-time ratio >= {thr:g} for {stop.patience} iterations ({shown})"
    )
    if not adaptive_lo:
        return StopDecision(True, CampaignStatus.CONVERGED, ratio, StopRule.ACCURATE_RATIO)
    levels = _adaptive_levels(history[-(stop.patience + 1) :], stop.patience + 1)
    if levels is None:
        return None
    span = max(max(series) - min(series) for series in levels.values())
    if span >= stop.adaptive_lo_tolerance:
        return None
    shown_lo = "; ".join(
        f"{name}: " + ", ".join(f"{lo:.4f}" for lo in series) for name, series in levels.items()
    )
    return StopDecision(
        True,
        CampaignStatus.CONVERGED,
        f"adaptive lo settled (span {span:.4f} < {stop.adaptive_lo_tolerance:g} over "
        f"{stop.patience + 1} iterations: {shown_lo}) and {ratio} on the fixed lo",
        StopRule.ADAPTIVE_LO,
    )


def _completed_walkers(stats: IterationStats) -> float | None:
    """The fraction of an iteration's walkers that ran every step (None: not stored)."""
    systems = stats.explore.systems if stats.explore is not None else []
    if not systems or any(s.walkers_completed is None for s in systems):
        return None
    return sum(s.walkers_completed for s in systems) / max(1, sum(s.walkers for s in systems))


def _adaptive_levels(
    window: Sequence[IterationStats], needed: int
) -> dict[str, list[float]] | None:
    """Each system's adaptive lo over ``window``, or None while fewer than ``needed``
    iterations ran or a system joined within the window."""
    if len(window) < needed or any(it.explore is None for it in window):
        return None
    levels: dict[str, list[float]] = {}
    for it in window:
        for system in it.explore.systems:
            levels.setdefault(system.name, []).append(system.trust_lo)
    if any(len(series) != len(window) for series in levels.values()):
        return None
    return levels


def dead_end(index: int, stats: IterationStats) -> str | None:
    """Why iteration ``index`` leaves the campaign nothing to go on with, or None.

    Ends no rerun changes: walkers that sampled no frame at all (nothing to select or
    learn from); a seed labelling in which not one structure got a usable label (the
    first committee would train on nothing); and, at any iteration, a labelling whose
    every structure the geometry guard rejected. SCFs that fail on some (or all) of a
    later iteration's hard candidates are data, not an end: the loop goes on.
    """
    explore = stats.explore
    if explore is not None and explore.sampled == 0:
        stops: dict[str, int] = {}
        for system in explore.systems:
            for reason, count in system.walker_stops.items():
                stops[reason] = stops.get(reason, 0) + count
        shown = ", ".join(f"{n} {r}" for r, n in stops.items()) or "no walker ran"
        return (
            f"iteration {index}: the walkers sampled no frames (walker stops: {shown}); "
            "check explore.steps and explore.sample_interval, and the starting structures"
        )
    labelling = stats.labelling
    if labelling is None or labelling.labelled or not labelling.to_label:
        return None
    if index == 0 or labelling.label_rejected == labelling.to_label:
        reasons = sorted(labelling.label_failure_reasons.items(), key=lambda kv: -kv[1])
        shown = "; ".join(f"{n}x {r or 'unknown'}" for r, n in reasons[:3])
        return (
            f"iteration {index}: none of the {labelling.to_label} structures got a usable "
            f"label ({shown}); check the dft section and `aloop status`"
        )
    return None
