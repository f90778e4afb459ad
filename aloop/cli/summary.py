"""Human-readable summaries of configs and campaigns (plain data in, text or tables out)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aloop.settings import mask_uri
from aloop.vocabulary import Engine, Stage, StageStatus

if TYPE_CHECKING:
    from rich.table import Table

    from aloop.config import CampaignConfig, ExploreConfig, ModelConfig, StopConfig
    from aloop.records import CampaignRecord, IterationRecord
    from aloop.stats import HoldoutError


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
            + (" (calibrated)" if window.calibrated else "")
        )
    periodic = any(s.pbc for s in cfg.systems)
    basis = (
        f"{dft.periodic.basis} with {dft.periodic.pseudo} pseudopotentials, Gamma point"
        if periodic
        else dft.basis
    )
    if dft.engine is Engine.CP2K:
        cp2k = dft.cp2k
        kinds = "".join(f", {el}: {k.basis}/{k.potential}" for el, k in cp2k.kinds.items())
        dft_line = (
            f"  dft          CP2K {dft.xc}/{cp2k.basis} with {cp2k.potential}{kinds}, "
            f"{cp2k.cutoff_ry:g} Ry, Gamma point; OT SCF to {cp2k.eps_scf:g}"
        )
    else:
        dft_line = (
            f"  dft          {method}/{basis}"
            + (f" ({', '.join(extras)})" if extras else "")
            + f"; SCF ladder: {' -> '.join(dft.scf.recovery)}"
        )
    lines += [
        dft_line,
        f"  committee    {cfg.model.committee_size} MACE members, {cfg.model.epochs} epochs, "
        f"{cfg.model.dtype}, warm start: {_start(cfg.model)}",
        f"  explore      {cfg.explore.ensemble.upper()}, {cfg.explore.walkers_per_system} "
        f"walkers/system, {cfg.explore.steps} steps x {cfg.explore.timestep_fs:g} fs, "
        f"sample every {cfg.explore.sample_interval}" + _bias(cfg.explore),
        f"  select       <= {cfg.select.max_per_system}/system/iteration by {cfg.select.diversity}",
        f"  stop         accurate ratio >= {cfg.stop.accurate_ratio:g} for "
        f"{cfg.stop.patience} iterations, {_holdout_rule(cfg.stop)}or "
        f"{cfg.stop.max_iterations} iterations",
        f"  database     {mask_uri(cfg.database.uri) if cfg.database.uri else 'default'}",
    ]
    return "\n".join(lines)


def _start(model: ModelConfig) -> str:
    """Where the members start, with the files of a foundation start."""
    if model.warm_start != "foundation":
        return model.warm_start
    name = Path(model.foundation_model or "").name
    if not model.multihead:
        return f"foundation {name}, naive fine-tuning"
    optimizer = (
        f", lr {model.lr:g} and EMA {model.ema_decay}"
        if model.finetune_optimizer == "campaign"
        else ", MACE's lr and EMA"
    )
    return (
        f"foundation {name}, multihead fine-tuning replaying {model.replay_samples} frames "
        f"of {Path(model.replay_file or '').name} per member{optimizer}"
    )


def _bias(explore: ExploreConfig) -> str:
    bias = explore.uncertainty_bias
    if bias is None:
        return ""
    return f", uncertainty bias A {bias.strength_ev:g} eV, B {bias.width_ev:g} eV"


def _holdout_rule(stop: StopConfig) -> str:
    """The hold-out stopping rule as a clause ending in ', ' (empty when off)."""
    if stop.force_error_target is None:
        return ""
    stress = (
        f" and stress RMSE < {stop.stress_error_target_gpa:g} GPa"
        if stop.stress_error_target_gpa is not None
        else ""
    )
    return (
        f"hold-out force RMSE < {stop.force_error_target:g} eV/Å{stress} "
        f"(from {stop.holdout_min_frames} frames), "
    )


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def campaigns_table(rows: list[dict], where: str) -> Table:
    """Campaigns as a table (rows from ``db.campaigns.list_campaigns``)."""
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


_STAGE_MARK = {
    StageStatus.DONE: "✓",
    StageStatus.RUNNING: "▶",
    StageStatus.FAILED: "✗",
    StageStatus.PENDING: "·",
}
#: The table's stage columns. Iteration 0 seeds in the explore column (where campaigns
#: stored before the seed had a stage of its own recorded it) and has no train or select.
_STAGE_COLUMNS = (
    (Stage.TRAIN,),
    (Stage.SEED, Stage.EXPLORE),
    (Stage.SELECT,),
    (Stage.LABEL,),
)


def _stage_mark(it: IterationRecord, column: tuple[Stage, ...]) -> str:
    status = next((it.stage_status(s) for s in column if it.stage_status(s)), None)
    return "-" if status is None else _STAGE_MARK[status]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _holdout(err: HoldoutError | None) -> str:
    """``"0.041 (12)"``: force RMSE (eV/Å) on n hold-out frames; "-" when there are none."""
    if err is None or not err.n or err.forces_rmse is None:
        return "-"
    return f"{err.forces_rmse:.3f} ({err.n})"


def _final_row(it: IterationRecord) -> list[str]:
    """The final iteration: its production committee's stage (in the train column) and
    hold-out error; nothing in the loop's columns."""
    final = it.stats.final
    mark = _STAGE_MARK[status] if (status := it.stage_status(Stage.FINAL)) else "-"
    held = _holdout(final.final_holdout if final else None)
    # E, S, L, frames .. fail, sel .. lab fail, F err, hold: none; the hold-out error; cal.
    return [f"{it.index} final", mark, *(["-"] * 12), held, "-"]


def _has_holdout(it: IterationRecord) -> bool:
    """Whether an iteration stored any of the hold-out era's numbers (final, hold-out
    labels, hold-out error, calibration)."""
    s = it.stats
    labelled = s.labelling is not None and s.labelling.holdout_to_label > 0
    return it.is_final or labelled or s.holdout_error is not None or s.calibration is not None


def iterations_table(campaign: CampaignRecord, iterations: list[IterationRecord]) -> Table:
    """One campaign's iterations (from ``db.iterations.campaign_iterations``), the final
    one (the production committee, once a stopping rule fired) marked as such.

    The hold-out columns (hold, F hold (n), cal) follow the first release's columns,
    and only once the campaign stored any of them: a campaign stored before hold-outs
    existed shows the table it always did.
    """
    from rich.table import Table

    title = f"Campaign {campaign.name}: {campaign.status}"
    if campaign.status_reason:
        title += f" ({campaign.status_reason})"
    table = Table(title=title)
    honest = any(_has_holdout(it) for it in iterations)
    table.caption = (
        "T/E/S/L: train, explore (seed at iteration 0), select, label (✓ done, ▶ running, "
        "✗ failed, - none); acc: accurate fraction of the planned walker time (of the "
        "frames where not stored); F err: committee force RMSE on the new labels, eV/Å"
    )
    if honest:
        table.caption = (
            "T/E/S/L: train (the production committee in the final row), explore (seed at "
            "iteration 0), select, label (✓ done, ▶ running, ✗ failed, - none); acc: "
            "accurate fraction of the planned walker time (of the frames where not stored); "
            "F err: committee force RMSE on the new labels (selected for high uncertainty: "
            "biased), eV/Å; hold: hold-out frames labelled / to label; F hold (n): "
            "force RMSE on the n accumulated hold-out frames (never trained on), eV/Å; "
            "cal: calibration scale (true error / deviation, median)"
        )
    for col in ("it", "T", "E", "S", "L", "frames", "acc", "cand", "fail"):
        table.add_column(col, justify="right")
    for col in ("sel", "lab ok", "lab fail", "F err"):
        table.add_column(col, justify="right")
    if honest:
        for col in ("hold", "F hold (n)", "cal"):
            table.add_column(col, justify="right")
    for it in iterations:
        if it.is_final:
            table.add_row(*_final_row(it), style="bold")
            continue
        stats, explore = it.stats, it.stats.explore
        err = stats.committee_forces_rmse
        labelling, cal = stats.labelling, stats.calibration
        ratio = stats.accurate_ratios(per_system=False)[0]
        cells = [
            str(it.index),
            *(_stage_mark(it, column) for column in _STAGE_COLUMNS),
            _count(explore.sampled if explore else None),
            f"{ratio:.0%}" if explore else "-",
            _count(explore.candidate if explore else None),
            _count(explore.failed if explore else None),
            *(_count(v) for v in (stats.selected, stats.labelled, stats.label_failures)),
            "-" if err is None else f"{err:.3f}",
        ]
        if honest:
            cells += [
                f"{labelling.holdout_labelled}/{labelling.holdout_to_label}"
                if labelling and labelling.holdout_to_label
                else "-",
                _holdout(stats.holdout_error),
                "-" if cal is None or cal.scale is None else f"{cal.scale:.2f}",
            ]
        table.add_row(*cells)
    if not iterations:
        table.caption = "no iterations yet"
    return table


def holdout_line(iterations: list[IterationRecord]) -> str | None:
    """The campaign's newest unbiased error: the production committee's on the hold-out
    once the final iteration is done, else the last iteration's (None without any)."""
    for it in reversed(iterations):
        if it.is_final and it.stats.final is not None:
            return f"final: {it.stats.final.summary()}"
        err = it.stats.holdout_error
        if not it.is_final and err is not None and err.n:
            return f"hold-out (iteration {it.index}): {err.describe()}"
    return None


def lineage_panel(info: dict) -> Any:
    """A structure's history (from ``db.lineage.structure_lineage``) for the terminal."""
    from rich.console import Group
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for key, value in _lineage_rows(info):
        head.add_row(key, str(value))
    parts: list[Any] = [head]
    for lab in info["labels"]:
        parts += _label_parts(lab)
    if not info["labels"]:
        parts.append("not labelled")
    models = info["trained_models"]
    parts.append(
        "trained on by: "
        + (", ".join(f"iteration {m['iteration']} member {m['member']}" for m in models) or "-")
    )
    if info["datasets"]:
        parts.append("in datasets: " + ", ".join(d["name"] or d["id"] for d in info["datasets"]))
    return Group(*parts)


def _lineage_rows(info: dict) -> list[tuple[str, Any]]:
    """(what, value) of where a structure came from and what the committee made of it."""
    lin = info["lineage"]
    unc = info["uncertainty"]
    rows = [
        ("structure", f"{info['id']} ({info['formula']}, {info['natoms']} atoms)"),
        ("campaign / system", f"{info['campaign']} / {info['system']}"),
        ("origin", f"{info['origin']}, iteration {info['iteration']}"),
        ("charge / multiplicity", f"{info['charge']} / {info['multiplicity']}"),
    ]
    if "walker" in lin:
        md = f"walker {lin['walker']}, {lin.get('temperature', '?')} K"
        if lin.get("pressure_gpa") is not None:
            md += f", {lin['pressure_gpa']} GPa"
        rows.append(("MD", md + f", step {lin.get('md_step', '?')}"))
    if lin.get("committee"):
        rows.append(("explored by committee", ", ".join(lin["committee"])))
    if lin.get("parent"):
        rows.append(("rattled from", lin["parent"]))
    if lin.get("source_file"):
        rows.append(("imported from", f"{lin['source_file']} frame {lin.get('source_index')}"))
    if unc:
        rows.append(
            (
                "uncertainty",
                f"max force dev {unc.get('force_dev_max', float('nan')):.4f} eV/Å, "
                f"mean {unc.get('force_dev_mean', float('nan')):.4f} eV/Å, "
                f"energy dev {unc.get('energy_dev', float('nan')):.4f} eV"
                + (
                    f", stress dev {unc['stress_dev_gpa']:.3f} GPa"
                    if unc.get("stress_dev_gpa") is not None
                    else ""
                ),
            )
        )
    rows.append(("verdict", f"{info['verdict']}: {info['verdict_reason'] or ''}"))
    return rows


def _label_parts(lab: dict) -> list[Any]:
    """One label: a line with its level of theory and result, then its SCF attempts."""
    from rich.table import Table

    s = lab["settings"]
    method = s.get("xc") if s.get("method") == "DFT" else s.get("method")
    level = f"{method}/{s.get('basis') or s.get('pbc_basis')}" if method else "?"
    energy = f"{lab['energy']:.6f} eV" if lab["energy"] is not None else "-"
    fmax = f"{lab['max_force']:.3f} eV/Å" if lab["max_force"] is not None else "-"
    line = (
        f"label {lab['status']} at {level} (settings {lab['settings_hash'][:12]}): "
        f"energy {energy}, max |F| {fmax}, {lab['wall_time'] or 0:.2f} s on {lab['host']}"
    )
    if lab["error"]:
        line += f"; error: {lab['error']}"
    if s.get("imported_from"):
        line += f"; imported from {s['imported_from']}"
    parts: list[Any] = [line]
    if lab["scf_attempts"]:
        t = Table()
        headers = ("SCF strategy", "cycles", "converged", "dE (Ha)", "s", "error")  # not vocabulary
        for col in headers:
            t.add_column(col)
        for a in lab["scf_attempts"]:
            t.add_row(
                a.get("strategy", ""),
                str(a.get("cycles", "")),
                str(a.get("converged", "")),
                f"{a['energy_change']:.1e}" if a.get("energy_change") is not None else "",
                f"{a['seconds']:.2f}" if a.get("seconds") is not None else "",
                (a.get("error") or "")[:60],
            )
        parts.append(t)
    return parts
