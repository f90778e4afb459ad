"""``aloop density``: density against temperature from NPT MD with the production committee."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aloop.cli.options import DbOption, connected, uri_in_force
from aloop.errors import UserError


def density(
    config: Annotated[Path, typer.Argument(help="The campaign file the campaign ran from.")],
    system: Annotated[
        str | None, typer.Option(help="The periodic system (default: the only one).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="MD steps per walker.")] = 4000,
    equilibration: Annotated[
        int, typer.Option(min=0, help="Steps left out of the average at the start.")
    ] = 1000,
    walkers: Annotated[int, typer.Option(min=1, help="Walkers per temperature.")] = 2,
    blocks: Annotated[int, typer.Option(min=2, help="Blocks per walker for the error.")] = 4,
    sample_interval: Annotated[int, typer.Option(min=1, help="Steps between samples.")] = 10,
    barostat_time_fs: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="fs: the barostat's time constant (default: the campaign's "
            "explore.barostat_time_fs). Blocks several times longer are independent.",
        ),
    ] = None,
    min_width: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Å: the campaign's cell is repeated until each of its widths is at least "
            "this (default: twice the production committee's r_max).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for density.csv and density.png (default: density/CAMPAIGN in "
            "the data directory)."
        ),
    ] = None,
    db_uri: DbOption = None,
) -> None:
    """NPT MD with the campaign's production committee at each of the system's
    temperatures (at its first pressure), block-averaged density with its standard error;
    writes a table and a plot and stores the table with the campaign."""
    from dataclasses import replace

    from aloop.analysis.density import (
        DensityRun,
        density_curve,
        density_table,
        plot_density,
        supercell_repeats,
    )
    from aloop.calibration import usable_scale
    from aloop.config import load_config
    from aloop.explore.walkers import MDSettings
    from aloop.models.committee import Committee
    from aloop.models.io import load_model, pick_device
    from aloop.settings import get_settings
    from aloop.structures import load_system_structures
    from db import campaigns, iterations
    from db.export import final_iteration, why_no_final_committee
    from db.models import final_committee, load_model_weights

    if barostat_time_fs is not None and barostat_time_fs <= 0:
        raise UserError(f"--barostat-time-fs must be above 0 fs, not {barostat_time_fs:g}")
    if equilibration >= steps:
        raise UserError(f"--equilibration ({equilibration}) must be below --steps ({steps})")
    if (steps - equilibration) // sample_interval < blocks:
        raise UserError(
            f"--steps {steps} with --equilibration {equilibration} leave "
            f"{(steps - equilibration) // sample_interval} samples (every {sample_interval} "
            f"steps), fewer than --blocks {blocks}"
        )
    cfg = load_config(config)
    cells = [s for s in cfg.systems if s.name == system] if system else cfg.systems
    if not cells:
        raise UserError(f"no system {system!r} in {config}")
    sys_cfg = cells[0] if system else _only_periodic(cfg.systems, config)
    starts = load_system_structures(sys_cfg, config.parent)
    if not all(a.pbc.all() for a in starts):
        raise UserError(f"system {sys_cfg.name!r} is not periodic: a density needs a cell")
    temperatures = cfg.temperatures(sys_cfg.name)
    pressure = (sys_cfg.pressures_gpa or cfg.explore.pressures_gpa or [0.0])[0]
    window = cfg.trust_window(sys_cfg.name)
    out_dir = out or get_settings().data_dir / "density" / cfg.campaign
    with connected(uri_in_force(db_uri, cfg.database.uri), create=False) as target:
        found = campaigns.get_campaign(cfg.campaign)
        if found is None:
            raise UserError(f"no campaign named {cfg.campaign!r} in {target.display}")
        members = final_committee(found.id)
        if not members:
            reason = why_no_final_committee(found.id, found.name, final_iteration(found.id))
            raise UserError(f"no production committee: {reason}")
        # The walkers stop where exploration's would: at the raw deviation a calibrated
        # window's scale maps onto the stop threshold.
        its = sorted(iterations.campaign_iterations(found.id), key=lambda it: -it.index)
        scale = (
            (usable_scale(it.stats.calibration for it in its) or 1.0) if window.calibrated else 1.0
        )
        md = replace(
            MDSettings.from_config(cfg.explore, window.hi / scale, window.stress_hi_gpa),
            ensemble="npt",
            bias=None,  # a property is measured on the committee's own surface, never biased
            steps=steps,
            barostat_time_fs=(
                cfg.explore.barostat_time_fs if barostat_time_fs is None else barostat_time_fs
            ),
            sample_interval=sample_interval,
        )
        device = pick_device(cfg.model.device)
        committee = Committee(
            [load_model(load_model_weights(m.id), m.sha256, device=device) for m in members],
            device=device,
        )
        # the model's own cutoff: a fine-tuned one has its foundation's, not the config's
        width = 2 * committee.r_max if min_width is None else min_width
        # every start repeated on its own: a system's structures may differ in shape
        repeats = supercell_repeats(starts[0], width)
        starts = [a.repeat(supercell_repeats(a, width)) for a in starts]
        typer.echo(
            f"{found.name}: {len(members)}-member production committee, NPT at "
            f"{pressure:g} GPa, {', '.join(f'{t:g}' for t in temperatures)} K, "
            f"{walkers} walker(s) x {steps} steps ({equilibration} equilibration), the cell "
            f"repeated {'x'.join(map(str, repeats))} ({len(starts[0])} atoms, widths >= "
            f"{width:g} Å), barostat {md.barostat_time_fs:g} fs, blocks of "
            f"{(steps - equilibration) // blocks * md.timestep_fs:g} fs"
        )
        points = density_curve(
            committee,
            starts,
            temperatures,
            pressure,
            md,
            walkers,
            equilibration,
            blocks=blocks,
            seed=cfg.explore.seed,
        )
        run = DensityRun(
            system=sys_cfg.name,
            committee=tuple(str(m.id) for m in members),
            steps=steps,
            equilibration=equilibration,
            walkers=walkers,
            blocks=blocks,
            sample_interval=sample_interval,
            timestep_fs=md.timestep_fs,
            barostat_time_fs=md.barostat_time_fs,
            pressure_gpa=pressure,
            points=tuple(points),
            repeats=repeats,
            atoms=len(starts[0]),
        )
        campaigns.add_analysis(found.id, run.to_doc())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "density.csv").write_text(density_table(points))
    plot_density(points, str(out_dir / "density.png"), f"{found.name}: {sys_cfg.name}")
    for p in points:
        if p.density_g_cm3 is None:
            shown = "no walker ran every step"
        else:
            err = f" ± {p.stderr_g_cm3:.3f}" if p.stderr_g_cm3 is not None else ""
            shown = f"{p.density_g_cm3:.3f}{err} g/cm³"
        stopped = f"; stopped: {', '.join(p.stopped)}" if p.stopped else ""
        typer.echo(
            f"  {p.temperature_k:7.1f} K: {shown} ({p.walkers_used}/{p.walkers} walkers, "
            f"{p.samples} samples{stopped})"
        )
    typer.echo(f"wrote {out_dir / 'density.csv'} and {out_dir / 'density.png'}")


def _only_periodic(systems: list, config: Path) -> object:
    """The campaign's one periodic system, or a usage error asking for --system."""
    periodic = [s for s in systems if s.pbc is not False]
    if len(periodic) != 1:
        names = ", ".join(s.name for s in systems)
        raise UserError(f"{config} has systems {names}: name one with --system")
    return periodic[0]
