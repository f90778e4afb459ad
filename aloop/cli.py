"""The ``aloop`` command line.

Exit codes: 0 success; 1 a command ran and failed (e.g. the database is unreachable);
2 bad usage, an invalid campaign file, or a refused config change; 130 interrupted.
Heavy modules load inside the commands so that ``aloop --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from aloop import __version__

app = typer.Typer(
    name="aloop",
    help="Active learning of MACE interatomic potentials with PySCF labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Prefect settings for a local run, unless the user set them: quiet logs (aloop shows
#: its own progress), and patience for the temporary API server on a loaded machine.
_PREFECT_LOCAL_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _err(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)


def _load_config(config: Path):
    """The validated campaign file, or exit 2 printing one line per problem."""
    from aloop.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            _err(f"{config}: {problem}")
        raise typer.Exit(EXIT_USAGE) from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"aloop {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Active learning of MACE interatomic potentials with PySCF labels."""


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
) -> None:
    """Check a campaign file and print a summary, or every error with its key path."""
    from aloop.summary import config_summary

    cfg = _load_config(config)
    typer.echo(config_summary(cfg))


@app.command()
def status(
    campaign: Annotated[
        str | None, typer.Argument(help="Campaign name; all campaigns when omitted.")
    ] = None,
    db_uri: Annotated[
        str | None,
        typer.Option("--db", help="Database URI (default: ALOOP_DB_URI or the embedded store)."),
    ] = None,
) -> None:
    """Show campaigns, or one campaign's iterations, from the database."""
    from rich.console import Console

    from aloop.settings import resolve_db_uri
    from aloop.summary import campaigns_table, iterations_table
    from db import connection, repository

    try:
        target = connection.connect(db_uri or resolve_db_uri())
    except connection.DatabaseUnavailable as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    console = Console()
    try:
        if campaign is None:
            console.print(campaigns_table(repository.list_campaigns(), target.display))
        else:
            found = repository.campaign_iterations(campaign)
            if found is None:
                _err(f"no campaign named {campaign!r} in {target.display}")
                raise typer.Exit(EXIT_USAGE)
            console.print(iterations_table(*found))
    finally:
        connection.disconnect()


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    db_uri: Annotated[
        str | None,
        typer.Option("--db", help="Database URI (default: ALOOP_DB_URI, the file's, embedded)."),
    ] = None,
    allow_config_change: Annotated[
        bool,
        typer.Option(
            "--allow-config-change",
            help="Continue a stored campaign whose results-relevant settings changed; "
            "the change is recorded on the campaign.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Run a campaign to its stopping rule, or resume it where it stopped.

    Uses Prefect's API at PREFECT_API_URL when set, else a temporary local one. Exit
    codes: 0 converged or stopped by a rule, 1 failed (database, infrastructure, too few
    labels), 2 invalid file or refused config change, 130 interrupted (re-run resumes).
    """

    _load_config(config)
    for key, value in _PREFECT_LOCAL_DEFAULTS.items():
        if not (verbose and key == "PREFECT_LOGGING_LEVEL"):
            os.environ.setdefault(key, value)

    from aloop.progress import RichReporter
    from db.connection import DatabaseUnavailable
    from db.repository import ConfigChangeRefused
    from flows.campaign import campaign_flow, set_reporter
    from flows.stages import CampaignError

    if not verbose:
        # Prefect logs a failed run with its traceback; aloop prints one clear line.
        import logging

        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    reporter = RichReporter()
    set_reporter(reporter)
    try:
        result = campaign_flow(
            config_path=str(config), db_uri=db_uri, allow_config_change=allow_config_change
        )
    except ConfigChangeRefused as exc:
        reporter.close()
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except (DatabaseUnavailable, CampaignError) as exc:
        reporter.close()
        _err(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        reporter.close()
        _err("interrupted; run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        reporter.close()
        _err(f"campaign failed: {type(exc).__name__}: {exc}")
        _err("the database keeps everything finished; run the same command again to resume")
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        set_reporter(None)
    reporter.close()
    _print_outcome(result, config)


def _print_outcome(result: dict, config: Path) -> None:
    """Where the campaign ended, where its data is, and what to do next."""
    colour = typer.colors.GREEN if result["status"] == "converged" else typer.colors.YELLOW
    typer.secho(f"campaign {result['campaign']}: {result['status']}", fg=colour, bold=True)
    if result["reason"]:
        typer.echo(f"  reason: {result['reason']}")
    typer.echo(
        f"  iterations: {result['iterations']}, labels: {result['labels_ok']} ok, "
        f"{result['labels_failed']} failed"
    )
    typer.echo(f"  data: {result['database']}")
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    typer.echo("next:")
    typer.echo(f"  aloop status {result['campaign']}      # per-iteration table")
    if "dashboard" in names:
        typer.echo("  aloop dashboard                  # live plots at http://127.0.0.1:8050")
    if "export" in names:
        typer.echo(f"  aloop export {result['campaign']} --out DIR   # MACE-ready dataset")


def _connect(db_uri: str | None, config_uri: str | None = None):
    """Connect to the database in force, or exit 1 with the reason."""
    from aloop.settings import resolve_db_uri
    from db import connection

    try:
        return connection.connect(db_uri or resolve_db_uri(config_uri))
    except connection.DatabaseUnavailable as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILED) from None


_DB_OPTION = typer.Option(
    "--db", help="Database URI (default: ALOOP_DB_URI or the embedded store)."
)


@app.command()
def export(
    campaign: Annotated[list[str], typer.Argument(help="Campaign name(s) to export from.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    system: Annotated[list[str], typer.Option("--system", help="Only these systems.")] = [],  # noqa: B006
    iteration: Annotated[
        list[int], typer.Option("--iteration", help="Only these iterations.")
    ] = [],  # noqa: B006
    settings_hash: Annotated[
        list[str], typer.Option("--settings-hash", help="Only labels at this settings hash.")
    ] = [],  # noqa: B006
    method: Annotated[
        list[str], typer.Option("--method", help="Only labels by this method (HF, DFT) or xc.")
    ] = [],  # noqa: B006
    origin: Annotated[
        list[str], typer.Option("--origin", help="initial, rattled, md or imported.")
    ] = [],  # noqa: B006
    tag: Annotated[list[str], typer.Option("--tag", help="Only structures with this tag.")] = [],  # noqa: B006
    split: Annotated[str, typer.Option(help="train,valid,test fractions.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    stratify: Annotated[
        bool, typer.Option("--stratify/--no-stratify", help="Split each system alike.")
    ] = True,
    outliers: Annotated[
        float | None,
        typer.Option(
            help="Remove labels whose energy per atom or max force lies beyond this many "
            "robust standard deviations (per system); each removal is reported."
        ),
    ] = None,
    keep_outliers: Annotated[
        bool, typer.Option("--keep-outliers", help="Report outliers but keep them.")
    ] = False,
    fmt: Annotated[
        list[str], typer.Option("--format", help="extxyz and/or ase-db (default both).")
    ] = [],  # noqa: B006
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier export.")] = False,
    db_uri: Annotated[str | None, _DB_OPTION] = None,
) -> None:
    """Write a curated, MACE-ready dataset: extxyz per split, an ASE database, a manifest.

    Only successful labels; duplicates removed; outliers reported (and removed with
    --outliers K); the split is reproducible from --seed. The export is also recorded
    in the database as a Dataset document.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from aloop.dataset.export import FORMATS, ExportError, ExportOptions, export_dataset
    from aloop.dataset.split import parse_fractions
    from db import connection
    from db.documents import ORIGINS
    from db.export import DatabaseSource, ExportQuery, record_dataset

    formats = tuple(fmt) or FORMATS
    bad = [f for f in formats if f not in FORMATS] + [o for o in origin if o not in ORIGINS]
    if bad:
        _err(f"unknown format or origin: {', '.join(bad)}")
        raise typer.Exit(EXIT_USAGE)
    try:
        fractions = parse_fractions(split)
    except ValueError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    if outliers is not None and outliers <= 0:
        _err("--outliers must be a positive number of standard deviations")
        raise typer.Exit(EXIT_USAGE)
    _connect(db_uri)
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
    )
    try:
        source = DatabaseSource(query)
    except ExportError as exc:
        connection.disconnect()
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    try:
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
            )
        dataset_id = record_dataset(source, result, name=out_dir.name)
    except ExportError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    finally:
        source.close()
        connection.disconnect()
    counts = result.manifest["counts"]
    typer.echo(
        f"exported {sum(counts.values())} structures to {out_dir}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    if result.duplicates:
        typer.echo(f"  removed {len(result.duplicates)} duplicate(s)")
    for sid, why in sorted(result.outliers.items()):
        verb = "kept" if keep_outliers else "removed"
        typer.echo(f"  outlier {verb}: {sid}: {why}")
    for f in result.files:
        typer.echo(f"  {f['name']}  {f['frames']} frames  sha256 {f['sha256'][:16]}")
    typer.echo(f"  manifest.json; Dataset document {dataset_id}")


@app.command(name="import")
def import_(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file (created if new).")],
    source: Annotated[Path, typer.Argument(help="extxyz (or any ase.io file) to import.")],
    system: Annotated[
        str | None, typer.Option(help="System of the campaign these frames belong to.")
    ] = None,
    energy_key: Annotated[str, typer.Option(help="info key of the energy.")] = "REF_energy",
    forces_key: Annotated[str, typer.Option(help="arrays key of the forces.")] = "REF_forces",
    stress_key: Annotated[str, typer.Option(help="info key of the stress.")] = "REF_stress",
    units: Annotated[
        str, typer.Option(help="eV (eV, eV/Å) or hartree (Ha, Ha/Bohr) for the labels.")
    ] = "eV",
    allow_config_change: Annotated[bool, typer.Option("--allow-config-change")] = False,
    db_uri: Annotated[str | None, _DB_OPTION] = None,
) -> None:
    """Bring labelled (and unlabelled) structures into a campaign as initial data.

    Labelled frames are stored with origin 'imported' and a label at the campaign's
    settings hash (only import data computed at the campaign's level of theory); the
    source file and its sha256 are recorded on each label. Unlabelled frames become
    initial structures, labelled by the next `aloop run`.
    """
    from pymongo.errors import PyMongoError

    from aloop.dataset.importing import UNITS, read_frames
    from aloop.structures import load_system_structures
    from db import connection, repository
    from db.importing import ImportRefused, import_frames
    from dft.settings import LabelSettings

    cfg = _load_config(config)
    names = [s.name for s in cfg.systems]
    if system is None and len(names) == 1:
        system = names[0]
    if system not in names:
        _err(f"--system must name one of the campaign's systems: {', '.join(names)}")
        raise typer.Exit(EXIT_USAGE)
    if units not in UNITS:
        _err(f"--units must be one of {', '.join(UNITS)}")
        raise typer.Exit(EXIT_USAGE)
    if not source.is_file():
        _err(f"{source}: file not found")
        raise typer.Exit(EXIT_USAGE)
    sys_cfg = cfg.system(system)
    periodic = bool(load_system_structures(sys_cfg, config.parent)[0].pbc.any())
    settings = LabelSettings.from_config(cfg.dft, periodic=periodic)
    _connect(db_uri, cfg.database.uri)
    try:
        camp, _ = repository.get_or_create_campaign(
            cfg.campaign, cfg.model_dump(mode="json"), cfg.result_hash(), allow_config_change
        )
        frames = read_frames(
            source,
            energy_key=energy_key,
            forces_key=forces_key,
            stress_key=stress_key,
            units=units,
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
    except (repository.ConfigChangeRefused, ImportRefused) as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except PyMongoError as exc:
        _err(f"database error while importing: {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as exc:  # ase.io raises many types for a bad file
        _err(f"{source}: cannot import: {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    finally:
        connection.disconnect()
    typer.echo(
        f"imported {result.frames} frames into {cfg.campaign} ({system}): "
        f"{result.new_structures} new structures, {result.labels_added} labels, "
        f"{result.to_label} to label by the next `aloop run`"
    )


@app.command()
def show(
    structure_id: Annotated[str, typer.Argument(help="Structure id (24 hex digits).")],
    db_uri: Annotated[str | None, _DB_OPTION] = None,
) -> None:
    """A structure's history: origin, MD lineage, committee uncertainty, labels and SCF
    attempts, and the models trained on it."""
    from rich.console import Console

    from aloop.dataset.export import FILE_ID_PREFIX
    from aloop.summary import lineage_panel
    from db import connection
    from db.lineage import structure_lineage

    structure_id = structure_id.removeprefix(FILE_ID_PREFIX)  # as written in exports
    _connect(db_uri)
    try:
        info = structure_lineage(structure_id)
    finally:
        connection.disconnect()
    if info is None:
        _err(f"no structure {structure_id!r}")
        raise typer.Exit(EXIT_USAGE)
    Console().print(lineage_panel(info))


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8050,
    refresh: Annotated[float, typer.Option(help="Seconds between page refreshes.")] = 5.0,
    db_uri: Annotated[str | None, _DB_OPTION] = None,
) -> None:
    """Serve the read-only learning-loop dashboard (pages and a JSON API under /api)."""
    import uvicorn

    from aloop.settings import resolve_db_uri
    from dashboard.app import create_app
    from db import connection

    uri = db_uri or resolve_db_uri()
    target = connection.parse_uri(uri)
    if db_uri and target.kind == "embedded" and not (target.path and target.path.is_dir()):
        # Read-only: a mistyped path must not become an empty store served as if real.
        _err(f"no embedded store at {target.path}")
        raise typer.Exit(EXIT_FAILED)
    try:
        app_ = create_app(uri, refresh_s=refresh)
    except connection.DatabaseUnavailable as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        _err(f"warning: serving on {host}: anyone who can reach it can read the campaigns")
    typer.echo(f"aloop dashboard on http://{host}:{port} (Ctrl-C stops it)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


db_app = typer.Typer(help="Database operations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("copy")
def db_copy(
    source: Annotated[str, typer.Argument(help="URI to copy from (e.g. embedded://PATH).")],
    target: Annotated[str, typer.Argument(help="URI to copy to (e.g. mongodb://...).")],
    campaign: Annotated[
        list[str], typer.Option("--campaign", help="Only this campaign (repeatable).")
    ] = [],  # noqa: B006
) -> None:
    """Copy campaigns with all their documents and GridFS files, then verify the copy.

    Running it again adds only what is missing. A campaign whose name exists in the
    target as a different campaign is refused.
    """
    from db import connection
    from db.copy import CopyRefused, copy_campaigns

    targets = []
    for alias, uri in (("copy-source", source), ("copy-target", target)):
        try:
            targets.append(connection.connect(uri, alias=alias))
        except connection.DatabaseUnavailable as exc:
            _err(str(exc))
            raise typer.Exit(EXIT_FAILED) from None
    try:
        report = copy_campaigns(campaign or None, "copy-source", "copy-target")
    except CopyRefused as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # permissions, a dropped connection, a damaged file
        _err(f"copy failed: {type(exc).__name__}: {exc}; run it again to continue")
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        connection.disconnect("copy-source")
        connection.disconnect("copy-target")
    typer.echo(
        f"copied {', '.join(report.campaigns) or 'no campaign'} from {targets[0].display} "
        f"to {targets[1].display}"
    )
    for name, c in report.counts.items():
        typer.echo(
            f"  {name:<11} {c['source']:>8} in source, {c['written']:>8} written, "
            f"{c['target']:>8} in target"
        )
    typer.echo(f"  GridFS files: {report.files}, sha256 verified: {report.files_verified}")
    if not report.consistent or report.files_verified != report.files:
        _err("the target does not match the source (see the counts above)")
        raise typer.Exit(EXIT_FAILED)
