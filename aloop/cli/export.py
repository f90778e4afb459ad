"""``aloop export``: a curated, MACE-ready dataset from one or more campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aloop.cli.options import DbOption, connected, uri_in_force
from aloop.errors import UserError

if TYPE_CHECKING:
    from aloop.dataset.export import ExportOptions, ExportResult, ModelFile
    from db.export import ExportQuery

# The options, named here so that the command's signature reads as a list.
Campaigns = Annotated[list[str], typer.Argument(help="Campaign name(s) to export from.")]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output directory.")]
Systems = Annotated[list[str], typer.Option("--system", help="Only these systems.")]
Iterations = Annotated[list[int], typer.Option("--iteration", help="Only these iterations.")]
SettingsHashes = Annotated[
    list[str], typer.Option("--settings-hash", help="Only labels at this settings hash.")
]
Methods = Annotated[
    list[str], typer.Option("--method", help="Only labels by this method (HF, DFT) or xc.")
]
Origins = Annotated[list[str], typer.Option("--origin", help="initial, rattled, md or imported.")]
Tags = Annotated[list[str], typer.Option("--tag", help="Only structures with this tag.")]
Split = Annotated[str, typer.Option(help="train,valid,test fractions.")]
Seed = Annotated[int, typer.Option(help="Seed of the split.")]
Stratify = Annotated[
    bool, typer.Option("--stratify/--no-stratify", help="Split each system alike.")
]
Outliers = Annotated[
    float | None,
    typer.Option(
        help="Remove labels whose energy per atom or max force lies beyond this many "
        "robust standard deviations (per system); each removal is reported."
    ),
]
KeepOutliers = Annotated[
    bool, typer.Option("--keep-outliers", help="Report outliers but keep them.")
]
Formats = Annotated[
    list[str], typer.Option("--format", help="extxyz and/or ase-db (default both).")
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an earlier export.")]
Models = Annotated[
    bool,
    typer.Option(
        "--models",
        help="Also write the campaign's production committee (its final iteration's "
        "members) under models/, with SHA256SUMS; refused when it has none yet.",
    ),
]
Lammps = Annotated[
    bool,
    typer.Option(
        "--lammps/--no-lammps",
        help="With --models: convert each member for LAMMPS (mace.cli.create_lammps_model).",
    ),
]


def export(
    campaign: Campaigns,
    out_dir: OutDir,
    system: Systems = [],  # noqa: B006
    iteration: Iterations = [],  # noqa: B006
    settings_hash: SettingsHashes = [],  # noqa: B006
    method: Methods = [],  # noqa: B006
    origin: Origins = [],  # noqa: B006
    tag: Tags = [],  # noqa: B006
    split: Split = "0.8,0.1,0.1",
    seed: Seed = 0,
    stratify: Stratify = True,
    outliers: Outliers = None,
    keep_outliers: KeepOutliers = False,
    fmt: Formats = [],  # noqa: B006
    force: Force = False,
    models: Models = False,
    lammps: Lammps = True,
    db_uri: DbOption = None,
) -> None:
    """Write a curated, MACE-ready dataset: extxyz per split, an ASE database, a manifest.

    Only successful labels; duplicates removed; outliers reported (and removed with
    --outliers K); the split is reproducible from --seed, and hold-out structures are
    always in test. The manifest names the production committee (or says why there is
    none); --models writes its members too. The export is also recorded in the database
    as a Dataset document.
    """
    from aloop.dataset.export import FORMATS, ExportOptions
    from aloop.dataset.split import parse_fractions
    from aloop.vocabulary import Origin
    from db.export import ExportQuery

    formats = tuple(fmt) or FORMATS
    bad = [f for f in formats if f not in FORMATS] + [o for o in origin if o not in set(Origin)]
    if bad:
        raise UserError(f"unknown format or origin: {', '.join(bad)}")
    try:
        fractions = parse_fractions(split)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if outliers is not None and outliers <= 0:
        raise UserError("--outliers must be a positive number of standard deviations")
    if models and len(set(campaign)) > 1:
        raise UserError("--models writes one campaign's production committee: name one campaign")
    with connected(uri_in_force(db_uri), create=False):
        query = ExportQuery(
            campaigns=campaign,
            systems=system,
            iterations=iteration,
            settings_hashes=settings_hash,
            methods=method,
            origins=origin,
            tags=tag,
        )
        options = ExportOptions(
            fractions=fractions,
            seed=seed,
            stratify=stratify,
            outlier_k=outliers,
            remove_outliers=not keep_outliers,
            formats=formats,
            force=force,
            lammps=lammps,
        )
        result, dataset_id = _write(query, options, out_dir, models)
    _print_result(result, dataset_id, out_dir, keep_outliers)


def _write(
    query: ExportQuery, options: ExportOptions, out_dir: Path, with_models: bool
) -> tuple[ExportResult, Any]:
    """Export what ``query`` finds, with a progress bar; record it as a Dataset.

    The production committee (and, ``with_models``, its weights) is looked up before
    anything is written, so a refusal leaves nothing behind.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from aloop.dataset.export import export_dataset
    from db.datasets import record_dataset
    from db.export import DatabaseSource, final_model_files, production_committees

    source = DatabaseSource(query)
    try:
        committees = production_committees(source.campaigns)
        members: list[ModelFile] = final_model_files(source.campaigns) if with_models else []
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            bar = progress.add_task("writing", total=None)
            result = export_dataset(
                source,
                out_dir,
                options,
                query.as_dict(),
                on_progress=lambda d, t: progress.update(bar, completed=d, total=t),
                committees=committees,
                models=members,
            )
        return result, record_dataset(source, result, name=out_dir.name)
    finally:
        source.close()


def _print_result(result: ExportResult, dataset_id: Any, out_dir: Path, kept: bool) -> None:
    counts = result.manifest["counts"]
    typer.echo(
        f"exported {sum(counts.values())} structures to {out_dir}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    if result.duplicates:
        typer.echo(f"  removed {len(result.duplicates)} duplicate(s)")
    for sid, why in sorted(result.outliers.items()):
        verb = "kept" if kept else "removed"
        typer.echo(f"  outlier {verb}: {sid}: {why}")
    for f in result.files:
        typer.echo(f"  {f['name']}  {f['frames']} frames  sha256 {f['sha256'][:16]}")
    held = result.manifest["holdout"]["count"]
    if held:
        typer.echo(f"  {held} hold-out structure(s), all in test")
    _print_committees(result.manifest)
    typer.echo(f"  manifest.json; Dataset document {dataset_id}")
    _warn_empty_splits(counts)


def _print_committees(manifest: dict) -> None:
    """Name each production committee (or why there is none) and the model files."""
    from aloop.cli.exits import say_error

    for c in manifest["production_committee"]:
        if not c["available"]:
            typer.echo(f"  no production committee: {c['not_available_because']}")
            continue
        err = c["holdout_error"]
        held = (
            f", hold-out force RMSE {err['forces_rmse']:.4f} eV/Å on {err['n']} frames"
            if err and err["n"] and err["forces_rmse"] is not None
            else ", no hold-out error"
        )
        typer.echo(
            f"  production committee of {c['campaign']}: iteration {c['iteration']}, "
            f"{len(c['members'])} members{held}"
        )
    written = manifest["models"]
    if written is None:
        return
    for m in written["members"]:
        typer.echo(f"  {m['file']}  sha256 {m['sha256'][:16]}")
        if m["lammps_file"]:
            typer.echo(f"  {m['lammps_file']}  sha256 {m['lammps_sha256'][:16]}")
    typer.echo(f"  {written['sha256sums']}")
    lmp = written["lammps"]
    if lmp["asked_for"] and not lmp["written"]:
        say_error(f"warning: no LAMMPS files: {lmp['not_written_because']}")


def _warn_empty_splits(counts: dict[str, int]) -> None:
    """Say which splits came out empty (``--split 1,0,0``, or too few structures)."""
    from aloop.cli.exits import say_error
    from aloop.dataset.split import SPLITS

    empty = [name for name in SPLITS if not counts.get(name)]
    if empty:
        verb = "is" if len(empty) == 1 else "are"
        hint = ": mace_run_train then needs --valid_fraction" if "valid" in empty else ""
        say_error(f"warning: {' and '.join(empty)} {verb} empty{hint}")
