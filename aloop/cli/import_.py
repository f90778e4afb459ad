"""``aloop import``: labelled (and unlabelled) structures into a campaign as initial data."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aloop.cli.exits import described, unexpected_as
from aloop.cli.options import DbOption, connected, uri_in_force
from aloop.errors import InfrastructureError, UserError

if TYPE_CHECKING:
    from aloop.config import CampaignConfig
    from aloop.dataset.import_checks import ImportKeys
    from aloop.dataset.importing import ImportedFrame

ConfigFile = Annotated[Path, typer.Argument(help="Campaign YAML file (created if new).")]
SourceFile = Annotated[Path, typer.Argument(help="extxyz (or any ase.io file) to import.")]
System = Annotated[str | None, typer.Option(help="System of the campaign these frames belong to.")]
EnergyKey = Annotated[
    str | None,
    typer.Option(help="info key of the energy [default: REF_energy].", show_default=False),
]
ForcesKey = Annotated[
    str | None,
    typer.Option(help="arrays key of the forces [default: REF_forces].", show_default=False),
]
StressKey = Annotated[str, typer.Option(help="info key of the stress.")]
Units = Annotated[str, typer.Option(help="eV (eV, eV/Å) or hartree (Ha, Ha/Bohr) for the labels.")]
AllowConfigChange = Annotated[bool, typer.Option("--allow-config-change")]
TrustUnits = Annotated[
    bool,
    typer.Option(
        "--trust-units",
        help="Import energies whose magnitude looks like the wrong unit for the composition.",
    ),
]


def import_(
    config: ConfigFile,
    source: SourceFile,
    system: System = None,
    energy_key: EnergyKey = None,
    forces_key: ForcesKey = None,
    stress_key: StressKey = "REF_stress",
    units: Units = "eV",
    allow_config_change: AllowConfigChange = False,
    trust_units: TrustUnits = False,
    db_uri: DbOption = None,
) -> None:
    """Bring labelled (and unlabelled) structures into a campaign as initial data.

    Labelled frames are stored with origin 'imported' and a label at the campaign's
    settings hash (only import data computed at the campaign's level of theory); the
    source file and its sha256 are recorded on each label. Unlabelled frames become
    initial structures, labelled by the next `aloop run`. Every frame is checked before
    anything is stored: finite labels, an energy with its forces, the system's
    composition (unless --system names it), keys that exist, a plausible unit.
    """
    from aloop.config import load_config
    from aloop.dataset.importing import UNITS
    from db.campaigns import get_or_create_campaign
    from db.importing import import_frames
    from dft.settings import LabelSettings

    cfg = load_config(config)
    named = system is not None
    system = _system(cfg, system)
    if units not in UNITS:
        raise UserError(f"--units must be one of {', '.join(UNITS)}")
    if not source.is_file():
        raise UserError(f"{source}: file not found")
    keys = _keys(energy_key, forces_key, stress_key)
    frames, periodic = _checked_frames(cfg, config, system, source, keys, units, trust_units, named)
    settings = LabelSettings.from_config(cfg.dft, periodic=periodic)
    failed = functools.partial(_import_failed, source)
    with connected(uri_in_force(db_uri, cfg.database.uri)), unexpected_as(failed):
        camp, _ = get_or_create_campaign(
            cfg.campaign,
            cfg.model_dump(mode="json"),
            cfg.result_hash(config.parent),
            allow_config_change,
            cfg.earlier_result_hashes(),
        )
        sys_cfg = cfg.system(system)
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


def _keys(energy_key: str | None, forces_key: str | None, stress_key: str) -> Any:
    """The keys to read labels under; a key the user named must be found in the file."""
    from aloop.dataset.import_checks import ImportKeys

    return ImportKeys(
        energy=energy_key or "REF_energy",
        forces=forces_key or "REF_forces",
        stress=stress_key,
        energy_given=energy_key is not None,
        forces_given=forces_key is not None,
    )


def _checked_frames(
    cfg: CampaignConfig,
    config: Path,
    system: str,
    source: Path,
    keys: ImportKeys,
    units: str,
    trust_units: bool,
    named: bool,
) -> tuple[list[ImportedFrame], bool]:
    """Every frame of ``source``, checked (nothing is stored yet); whether the system is
    periodic. A system named with --system takes the frames whatever their composition."""
    from aloop.dataset.import_checks import check_frames, formula
    from aloop.dataset.importing import read_frames
    from aloop.structures import load_system_structures

    starts = load_system_structures(cfg.system(system), config.parent)
    periodic = bool(starts[0].pbc.any())
    with unexpected_as(functools.partial(_import_failed, source)):
        frames = list(
            read_frames(
                source,
                energy_key=keys.energy,
                forces_key=keys.forces,
                stress_key=keys.stress,
                units=units,
            )
        )
    expected = None if named else {formula(a.numbers, reduce=periodic) for a in starts}
    check_frames(
        frames,
        keys=keys,
        units=units,
        trust_units=trust_units,
        system=system,
        expected=expected,
        periodic=periodic,
    )
    return frames, periodic


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
