"""Stopping rules of a campaign, as a pure function of its iteration statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aloop.vocabulary import CampaignStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aloop.config import StopConfig
    from aloop.stats import IterationStats


@dataclass(frozen=True)
class StopDecision:
    """Whether the campaign stops after an iteration, with its final status and why."""

    stop: bool
    status: CampaignStatus = CampaignStatus.RUNNING  # converged or stopped when stop is True
    reason: str = ""


def decide(history: Sequence[IterationStats], stop: StopConfig) -> StopDecision:
    """Apply the stopping rules to the statistics of exploring iterations 1..n, in order.

    Rules, first match wins:

    1. accurate ratio >= ``stop.accurate_ratio`` in each of the last ``stop.patience``
       iterations (overall, or for every system with ``scope: per_system``): converged;
    2. the committee's force RMSE on the frames labelled in the last iteration below
       ``stop.force_error_target`` (when set and frames were labelled): converged;
    3. ``stop.max_iterations`` exploring iterations done: stopped at the cap.
    """
    n = len(history)
    if n == 0:
        return StopDecision(False)
    thr = stop.accurate_ratio
    per_system = stop.scope == "per_system"
    recent = history[-stop.patience :]
    if len(recent) == stop.patience and all(
        r >= thr for stats in recent for r in stats.accurate_ratios(per_system) or [0.0]
    ):
        shown = ", ".join(f"{min(s.accurate_ratios(per_system) or [0.0]):.3f}" for s in recent)
        where = "every system's" if per_system else "the"
        return StopDecision(
            True,
            CampaignStatus.CONVERGED,
            f"{where} accurate ratio >= {thr:g} for {stop.patience} consecutive "
            f"iterations ({shown})",
        )
    target = stop.force_error_target
    err = history[-1].committee_forces_rmse
    if target is not None and err is not None and err < target:
        return StopDecision(
            True,
            CampaignStatus.CONVERGED,
            f"committee force RMSE on newly labelled frames {err:.4f} eV/Å "
            f"< target {target:g} eV/Å",
        )
    if n >= stop.max_iterations:
        return StopDecision(
            True, CampaignStatus.STOPPED, f"iteration cap reached ({stop.max_iterations})"
        )
    return StopDecision(False)


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
