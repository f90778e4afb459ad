"""``aloop run``: run a campaign to its stopping rule, or resume it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aloop.cli.exits import described, unexpected_as
from aloop.cli.options import db_option
from aloop.errors import InfrastructureError
from aloop.vocabulary import CampaignStatus

if TYPE_CHECKING:
    from aloop.records import CampaignOutcome

#: What Ctrl-C prints: nothing finished is lost.
INTERRUPTED = "interrupted; run the same command again to resume"

#: Prefect settings for a local run, unless the user set them: quiet logs (aloop shows
#: its own progress), and patience for the temporary API server on a loaded machine.
_PREFECT_LOCAL_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _campaign_failed(exc: Exception) -> InfrastructureError:
    return InfrastructureError(
        f"campaign failed: {described(exc)}\n"
        "the database keeps everything finished; run the same command again to resume"
    )


def run(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    db_uri: Annotated[
        str | None,
        db_option("Database URI (default: ALOOP_DB_URI, the file's, embedded)."),
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
    from aloop.config import load_config

    load_config(config)
    for key, value in _PREFECT_LOCAL_DEFAULTS.items():
        if not (verbose and key == "PREFECT_LOGGING_LEVEL"):
            os.environ.setdefault(key, value)

    from aloop.cli.reporter import RichReporter
    from flows.campaign import campaign_flow, set_reporter

    if not verbose:
        # Prefect logs a failed run with its traceback; aloop prints one clear line.
        import logging

        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    reporter = RichReporter()
    set_reporter(reporter)
    try:
        with unexpected_as(_campaign_failed):
            result = campaign_flow(
                config_path=str(config), db_uri=db_uri, allow_config_change=allow_config_change
            )
    finally:
        # Before any message: a live display would overwrite it.
        reporter.close()
        set_reporter(None)
    _print_outcome(result)


def _print_outcome(result: CampaignOutcome) -> None:
    """Where the campaign ended, where its data is, and what to do next."""
    from aloop.cli import app

    converged = result.status is CampaignStatus.CONVERGED
    colour = typer.colors.GREEN if converged else typer.colors.YELLOW
    typer.secho(f"campaign {result.campaign}: {result.status}", fg=colour, bold=True)
    if result.reason:
        typer.echo(f"  reason: {result.reason}")
    typer.echo(
        f"  iterations: {result.iterations}, labels: {result.labels_ok} ok, "
        f"{result.labels_failed} failed"
    )
    typer.echo(f"  data: {result.database}")
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    typer.echo("next:")
    typer.echo(f"  aloop status {result.campaign}      # per-iteration table")
    if "dashboard" in names:
        typer.echo("  aloop dashboard                  # live plots at http://127.0.0.1:8050")
    if "export" in names:
        typer.echo(f"  aloop export {result.campaign} --out DIR   # MACE-ready dataset")
