"""An iteration's statistics as a Prefect markdown artifact, for the Prefect UI."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aloop.vocabulary import Stage, StageStatus

if TYPE_CHECKING:
    from aloop.config import CampaignConfig
    from aloop.convergence import StopDecision
    from aloop.progress import Reporter
    from aloop.records import IterationRecord
    from aloop.stats import Calibration, HoldoutError


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def holdout_line(err: HoldoutError) -> str:
    """The hold-out error as one markdown list item (its numbers, or that there are none)."""
    if not err.n or err.forces_rmse is None:
        return "- hold-out error: no hold-out frames labelled yet"
    return (
        f"- hold-out error ({err.n} random explored frames, {err.n_new} new, never trained "
        f"on): forces RMSE {err.forces_rmse:.4f} eV/Å, 95th percentile of the max-atom "
        f"force error {_num(err.forces_max_p95, '.4f')} eV/Å, energy RMSE "
        f"{_num(err.energy_rmse_per_atom, '.5f')} eV/atom"
    )


def calibration_line(cal: Calibration) -> str:
    """The calibration of the committee's deviation as one markdown list item."""
    coverage = (
        f"{cal.coverage_90:.0%} of the {cal.coverage_n or cal.n} new frames under the "
        "previous 90 % bound"
        if cal.coverage_90 is not None
        else "no previous bound to check (first calibration)"
    )
    return (
        f"- calibration on {cal.n} frames: true max-atom force error ≈ "
        f"{_num(cal.scale, '.2f')} x max force deviation (90 % bound "
        f"{_num(cal.scale_90, '.2f')} x), Spearman {_num(cal.spearman, '.2f')}, {coverage}"
    )


def _final_markdown(cfg: CampaignConfig, it: IterationRecord) -> str:
    final = it.stats.final
    lines = [f"# {cfg.campaign}: final (production committee, iteration {it.index})", ""]
    if final is None:
        status = it.stage_status(Stage.FINAL)
        lines.append(f"- production committee not trained yet ({status or StageStatus.PENDING})")
        return "\n".join(lines)
    t = final.final
    lines += [
        f"- {t.members_trained} member(s) trained on {t.structures} structures: validation "
        f"forces RMSE {t.valid_forces_rmse:.4f} eV/Å, energy RMSE "
        f"{t.valid_energy_rmse_per_atom:.5f} eV/atom",
        holdout_line(final.final_holdout),
    ]
    return "\n".join(lines)


def iteration_markdown(cfg: CampaignConfig, it: IterationRecord, decision: StopDecision) -> str:
    """The iteration's statistics as a markdown table (the final iteration: its
    production committee and that committee's hold-out error)."""
    if it.is_final:
        return _final_markdown(cfg, it)
    stats = it.stats
    rows = [
        "| system | sampled | accurate | candidate | failed | accurate ratio | of walker time |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in stats.explore.systems if stats.explore else []:
        rows.append(
            f"| {s.name} | {s.sampled} | {s.accurate} | {s.candidate} | "
            f"{s.failed} | {s.accurate_ratio:.3f} | {_num(s.time_ratio, '.3f')} |"
        )
    labelling, selection = stats.labelling, stats.selection
    held = ""
    if labelling is not None and labelling.holdout_to_label:
        held = f" ({labelling.holdout_labelled} of {labelling.holdout_to_label} hold-out)"
    drawn = f", hold-out drawn: {selection.holdout}" if selection and selection.holdout else ""
    lines = [
        f"# {cfg.campaign}: iteration {it.index}",
        "",
        *rows,
        "",
        f"- selected: {stats.selected or 0}{drawn}, labelled ok: {stats.labelled or 0}{held}, "
        f"label failures: {stats.label_failures or 0}",
        f"- DFT wall time: {labelling.dft_wall_s if labelling else 0:.1f} s",
    ]
    err = stats.committee_error
    if err is not None and err.n:
        lines.append(
            f"- committee error on the newly labelled frames (selected for high "
            f"uncertainty: biased): forces RMSE {_num(err.forces_rmse, '.4f')} eV/Å, energy "
            f"RMSE {_num(err.energy_rmse_per_atom, '.5f')} eV/atom"
        )
    if stats.holdout_error is not None:
        lines.append(holdout_line(stats.holdout_error))
    if stats.calibration is not None:
        lines.append(calibration_line(stats.calibration))
    lines.append(
        f"- decision: {decision.status}: {decision.reason}" if decision.stop else "- continue"
    )
    return "\n".join(lines)


def publish_iteration(
    cfg: CampaignConfig, it: IterationRecord, decision: StopDecision, reporter: Reporter
) -> None:
    """Create (or update) the artifact ``<campaign>-iteration-<n>``."""
    from prefect.artifacts import create_markdown_artifact

    slug = re.sub(r"[^a-z0-9-]+", "-", cfg.campaign.lower()).strip("-")
    try:
        create_markdown_artifact(
            key=f"{slug}-iteration-{it.index}",
            markdown=iteration_markdown(cfg, it, decision),
            description=f"aloop campaign {cfg.campaign}, iteration {it.index}",
        )
    except Exception as exc:  # the UI's copy is a convenience; the database has the data
        reporter.message(f"  (no Prefect artifact: {exc})")
