"""An iteration's statistics as a Prefect markdown artifact, for the Prefect UI."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aloop.config import CampaignConfig
    from aloop.convergence import StopDecision
    from aloop.progress import Reporter
    from aloop.records import IterationRecord


def iteration_markdown(cfg: CampaignConfig, it: IterationRecord, decision: StopDecision) -> str:
    """The iteration's statistics as a markdown table."""
    stats = it.stats
    rows = [
        "| system | sampled | accurate | candidate | failed | accurate ratio |",
        "|---|---|---|---|---|---|",
    ]
    for s in stats.explore.systems if stats.explore else []:
        rows.append(
            f"| {s.name} | {s.sampled} | {s.accurate} | {s.candidate} | "
            f"{s.failed} | {s.accurate_ratio:.3f} |"
        )
    labelling = stats.labelling
    lines = [
        f"# {cfg.campaign}: iteration {it.index}",
        "",
        *rows,
        "",
        f"- selected: {stats.selected or 0}, labelled ok: {stats.labelled or 0}, "
        f"label failures: {stats.label_failures or 0}",
        f"- DFT wall time: {labelling.dft_wall_s if labelling else 0:.1f} s",
    ]
    err = stats.committee_error
    if err is not None and err.n:
        lines.append(
            f"- committee error on newly labelled frames: forces RMSE "
            f"{err.forces_rmse:.4f} eV/Å, energy RMSE {err.energy_rmse_per_atom:.5f} "
            "eV/atom"
        )
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
