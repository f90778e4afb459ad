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
    from aloop.config import ConfigError, load_config
    from aloop.summary import config_summary

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            _err(f"{config}: {problem}")
        raise typer.Exit(EXIT_USAGE) from None
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
    from aloop.config import ConfigError, load_config

    try:
        load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            _err(f"{config}: {problem}")
        raise typer.Exit(EXIT_USAGE) from None
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
        typer.echo(f"  aloop export {result['campaign']} OUT_DIR   # MACE-ready dataset")
