"""Stopping rules of a campaign, as a pure function of its iteration statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aloop.config import StopConfig


@dataclass(frozen=True)
class StopDecision:
    """Whether the campaign stops after an iteration, with its final status and why."""

    stop: bool
    status: str = "running"  # "converged" or "stopped" when stop is True
    reason: str = ""


def _ratios(stats: dict, scope: str) -> list[float]:
    """The accurate ratios a rule compares: one overall, or one per system."""
    if scope == "per_system":
        return [s["accurate_ratio"] for s in stats.get("systems", [])]
    return [stats.get("accurate_ratio", 0.0)]


def decide(history: Sequence[dict], stop: StopConfig) -> StopDecision:
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
    recent = history[-stop.patience :]
    if len(recent) == stop.patience and all(
        r >= thr for stats in recent for r in _ratios(stats, stop.scope) or [0.0]
    ):
        shown = ", ".join(f"{min(_ratios(s, stop.scope) or [0.0]):.3f}" for s in recent)
        where = "every system's" if stop.scope == "per_system" else "the"
        return StopDecision(
            True,
            "converged",
            f"{where} accurate ratio >= {thr:g} for {stop.patience} consecutive "
            f"iterations ({shown})",
        )
    target = stop.force_error_target
    err = history[-1].get("committee_error") or {}
    if target is not None and err.get("n", 0) > 0 and err["forces_rmse"] < target:
        return StopDecision(
            True,
            "converged",
            f"committee force RMSE on newly labelled frames {err['forces_rmse']:.4f} eV/Å "
            f"< target {target:g} eV/Å",
        )
    if n >= stop.max_iterations:
        return StopDecision(True, "stopped", f"iteration cap reached ({stop.max_iterations})")
    return StopDecision(False)
