"""``aloop import``: labelled (and unlabelled) structures into a campaign as initial data."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aloop.cli.exits import described, unexpected_as
from aloop.cli.options import DbOption, connected, uri_in_force
from aloop.errors import InfrastructureError, UserError

if TYPE_CHECKING:
    from aloop.config import CampaignConfig

ConfigFile = Annotated[Path, typer.Argument(help="Campaign YAML file (created if new).")]
SourceFile = Annotated[Path, typer.Argument(help="extxyz (or any ase.io file) to import.")]
System = Annotated[str | None, typer.Option(help="System of the campaign these frames belong to.")]
EnergyKey = Annotated[str, typer.Option(help="info key of the energy.")]
ForcesKey = Annotated[str, typer.Option(help="arrays key of the forces.")]
StressKey = Annotated[str, typer.Option(help="info key of the stress.")]
Units = Annotated[str, typer.Option(help="eV (eV, eV/Å) or hartree (Ha, Ha/Bohr) for the labels.")]
AllowConfigChange = Annotated[bool, typer.Option("--allow-config-change")]


def import_(
    config: ConfigFile,
    source: SourceFile,
    system: System = None,
    energy_key: EnergyKey = "REF_energy",
    forces_key: ForcesKey = "REF_forces",
    stress_key: StressKey = "REF_stress",
    units: Units = "eV",
    allow_config_change: AllowConfigChange = False,
    db_uri: DbOption = None,
) -> None:
    """Bring labelled (and unlabelled) structures into a campaign as initial data.

    Labelled frames are stored with origin 'imported' and a label at the campaign's
    settings hash (only import data computed at the campaign's level of theory); the
    source file and its sha256 are recorded on each label. Unlabelled frames become
    initial structures, labelled by the next `aloop run`.
    """
    from aloop.config import load_config
    from aloop.dataset.importing import UNITS, read_frames
    from aloop.structures import load_system_structures
    from db.campaigns import get_or_create_campaign
    from db.importing import import_frames
    from dft.settings import LabelSettings

    cfg = load_config(config)
    system = _system(cfg, system)
    if units not in UNITS:
        raise UserError(f"--units must be one of {', '.join(UNITS)}")
    if not source.is_file():
        raise UserError(f"{source}: file not found")
    sys_cfg = cfg.system(system)
    periodic = bool(load_system_structures(sys_cfg, config.parent)[0].pbc.any())
    settings = LabelSettings.from_config(cfg.dft, periodic=periodic)
    failed = functools.partial(_import_failed, source)
    with connected(uri_in_force(db_uri, cfg.database.uri)), unexpected_as(failed):
        camp, _ = get_or_create_campaign(
            cfg.campaign, cfg.model_dump(mode="json"), cfg.result_hash(), allow_config_change
        )
        frames = read_frames(
            source, energy_key=energy_key, forces_key=forces_key, stress_key=stress_key, units=units
        )
        result = import_frames(
            camp,
            frames,
            system=system,
            charge=sys_cfg.charge,
            multiplicity=sys_cfg.multiplicity,
            settings_hash=settings.settings_hash(),
            settings=settings.result_fields(),
            source=source.resolve(),
        )
    typer.echo(
        f"imported {result.frames} frames into {cfg.campaign} ({system}): "
        f"{result.new_structures} new structures, {result.labels_added} labels, "
        f"{result.to_label} to label by the next `aloop run`"
    )


def _system(cfg: CampaignConfig, system: str | None) -> str:
    """The campaign's system the frames belong to (``--system``, or its only one)."""
    names = [s.name for s in cfg.systems]
    if system is None and len(names) == 1:
        system = names[0]
    if system not in names:
        raise UserError(f"--system must name one of the campaign's systems: {', '.join(names)}")
    return system


def _import_failed(source: Path, exc: Exception) -> Exception:
    """What an unforeseen failure while importing ``source`` means."""
    from pymongo.errors import PyMongoError

    if isinstance(exc, PyMongoError):
        return InfrastructureError(f"database error while importing: {exc}")
    # ase.io raises many types for a bad file
    return UserError(f"{source}: cannot import: {described(exc)}")
