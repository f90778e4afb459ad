"""Human-readable summaries of configs and campaigns (plain data in, text or tables out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aloop.settings import mask_uri

if TYPE_CHECKING:
    from rich.table import Table

    from aloop.config import CampaignConfig


def config_summary(cfg: CampaignConfig) -> str:
    """A few lines that tell what a campaign file will do."""
    dft = cfg.dft
    method = "HF" if dft.method == "HF" else f"{dft.xc}"
    extras = [x for x in ("density fitting" if dft.density_fit else "", dft.dispersion or "") if x]
    lines = [
        f"campaign {cfg.campaign!r}: valid",
        f"  systems      {len(cfg.systems)}",
    ]
    for s in cfg.systems:
        window = cfg.trust_window(s.name)
        temps = ", ".join(f"{t:g}" for t in cfg.temperatures(s.name))
        source = f"molecule {s.molecule}" if s.molecule else f"file {s.structure}"
        lines.append(
            f"    {s.name:<12} {source}; charge {s.charge}, multiplicity {s.multiplicity}; "
            f"T = {temps} K; trust [{window.lo:g}, {window.hi:g}) eV/Å"
        )
    periodic = any(s.pbc for s in cfg.systems)
    basis = (
        f"{dft.periodic.basis} with {dft.periodic.pseudo} pseudopotentials, Gamma point"
        if periodic
        else dft.basis
    )
    lines += [
        f"  dft          {method}/{basis}"
        + (f" ({', '.join(extras)})" if extras else "")
        + f"; SCF ladder: {' -> '.join(dft.scf.recovery)}",
        f"  committee    {cfg.model.committee_size} MACE members, {cfg.model.epochs} epochs, "
        f"{cfg.model.dtype}, warm start: {cfg.model.warm_start}",
        f"  explore      {cfg.explore.ensemble.upper()}, {cfg.explore.walkers_per_system} "
        f"walkers/system, {cfg.explore.steps} steps x {cfg.explore.timestep_fs:g} fs, "
        f"sample every {cfg.explore.sample_interval}",
        f"  select       <= {cfg.select.max_per_system}/system/iteration by {cfg.select.diversity}",
        f"  stop         accurate ratio >= {cfg.stop.accurate_ratio:g} for "
        f"{cfg.stop.patience} iterations, or {cfg.stop.max_iterations} iterations",
        f"  database     {mask_uri(cfg.database.uri) if cfg.database.uri else 'default'}",
    ]
    return "\n".join(lines)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def campaigns_table(rows: list[dict], where: str) -> Table:
    """Campaigns as a table (rows from ``db.repository.list_campaigns``)."""
    from rich.table import Table

    table = Table(title=f"Campaigns in {where}")
    for col in ("campaign", "status", "iteration", "structures", "labels ok", "updated"):
        table.add_column(col)
    for r in rows:
        status = r["status"] + (f" ({r['status_reason']})" if r["status_reason"] else "")
        table.add_row(
            r["name"],
            status,
            str(r["current_iteration"]),
            str(r["structures"]),
            str(r["labels_ok"]),
            _when(r["updated_at"]),
        )
    if not rows:
        table.caption = "no campaigns yet"
    return table


_STAGE_MARK = {"done": "✓", "running": "▶", "failed": "✗", "pending": "·"}


def iterations_table(campaign: dict, iterations: list[dict]) -> Table:
    """One campaign's iterations (from ``db.repository.campaign_iterations``)."""
    from rich.table import Table

    title = f"Campaign {campaign['name']}: {campaign['status']}"
    if campaign["status_reason"]:
        title += f" ({campaign['status_reason']})"
    table = Table(title=title)
    table.caption = (
        "T/E/S/L: train, explore, select, label (✓ done, ▶ running, ✗ failed); "
        "F err: committee force RMSE on the new labels, eV/Å"
    )
    for col in ("it", "T", "E", "S", "L", "frames", "acc", "cand", "fail"):
        table.add_column(col, justify="right")
    for col in ("sel", "lab ok", "lab fail", "F err"):
        table.add_column(col, justify="right")
    for it in iterations:
        stats = it["stats"]
        sampled = stats.get("sampled")
        ratio = f"{stats['accurate_ratio']:.0%}" if "accurate_ratio" in stats else "-"
        err = (stats.get("committee_error") or {}).get("forces_rmse")
        table.add_row(
            str(it["index"]),
            *(
                _STAGE_MARK.get(it["stages"].get(s), "·")
                for s in ("train", "explore", "select", "label")
            ),
            "-" if sampled is None else str(sampled),
            ratio,
            *(str(stats.get(k, "-")) for k in ("candidate", "failed", "selected", "labelled")),
            str(stats.get("label_failures", "-")),
            "-" if err is None else f"{err:.3f}",
        )
    if not iterations:
        table.caption = "no iterations yet"
    return table
