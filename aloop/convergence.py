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
