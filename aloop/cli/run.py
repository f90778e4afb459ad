"""``aloop run``: run a campaign to its stopping rule, or resume it.

Exit codes: 0 converged or stopped by a rule; 1 failed (the message says why: the
database or another part of the infrastructure, a campaign that cannot go on such as one
whose walkers sample nothing or whose labels all fail, or another run holding the
campaign); 2 an invalid campaign file, a refused config change or another error in what
was given; 130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM. "run the same
command again to resume" is printed only where a rerun can help: an interruption or an
infrastructure error.

Ctrl-C signals the terminal's whole process group: the labelling workers die with it
and the run stops within seconds, leaving every finished stage stored, the stage in
flight to be resumed and the campaign ``stopped``. The temporary Prefect API server
(used unless PREFECT_API_URL is set) runs in a session of its own, so Ctrl-C does not
reach it, and is stopped when aloop exits.

One run per campaign: a run holds the campaign's lease (60 s, renewed every 15 s;
ALOOP_RUN_LEASE_S sets the length). A second run is refused, naming the holder; once a
killed run's lease has expired the next run takes over by itself, and ``--take-over``
takes it at once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aloop.cli.exits import described, say_error, unexpected_as
from aloop.cli.options import db_option
from aloop.errors import AloopError, InfrastructureError
from aloop.vocabulary import CampaignStatus

if TYPE_CHECKING:
    from aloop.records import CampaignOutcome

#: What an interruption prints: nothing finished is lost.
INTERRUPTED = "interrupted; run the same command again to resume"

#: Exit code after SIGTERM (128 + the signal's number, as a shell reports it).
EXIT_TERMINATED = 128 + signal.SIGTERM

#: Failures of what the run relies on, not of the campaign: a rerun may well succeed.
_INFRASTRUCTURE = ("pymongo.errors", "httpx", "httpcore", "sqlite3")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that it stops the run alike."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Inside: SIGTERM raises :class:`Terminated` (Prefect's engine re-delivers it to
    this handler after its own while a flow runs)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Prefect settings for a local run, unless the user set them: quiet logs (aloop shows
#: its own progress), and patience for the temporary API server on a loaded machine.
_PREFECT_LOCAL_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _campaign_failed(exc: Exception) -> AloopError:
    if type(exc).__module__.startswith(_INFRASTRUCTURE) or isinstance(exc, OSError):
        return InfrastructureError(
            f"campaign failed: {described(exc)}\n"
            "the database keeps everything finished; run the same command again to resume"
        )
    return AloopError(
        f"campaign failed: {described(exc)}\n"
        "a rerun would fail the same way; check the campaign file with `aloop validate`, "
        "or report it as a bug with the log from `aloop run -v`"
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
    take_over: Annotated[
        bool,
        typer.Option(
            "--take-over",
            help="Take the campaign from a run that still holds it (one you know is "
            "gone); without it a killed run's hold expires after ALOOP_RUN_LEASE_S "
            "(60 s).",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Run a campaign to its stopping rule, or resume it where it stopped.

    Uses Prefect's API at PREFECT_API_URL when set, else a temporary local one. Exit
    codes: 0 converged or stopped by a rule, 1 failed (infrastructure, a campaign that
    cannot go on, another run holding it), 2 invalid file or refused config change, 130
    interrupted by Ctrl-C, 143 by SIGTERM (a rerun resumes).
    """
    try:
        with _sigterm_interrupts():
            _run(config, db_uri, allow_config_change, take_over, verbose)
    except Terminated:
        say_error(INTERRUPTED)
        raise typer.Exit(EXIT_TERMINATED) from None


def _run(
    config: Path, db_uri: str | None, allow_config_change: bool, take_over: bool, verbose: bool
) -> None:
    from aloop.cli.options import uri_in_force
    from aloop.cli.validate import load_checked
    from db.connection import check_reachable

    cfg = load_checked(config)
    # Before Prefect starts: an unreachable database is reported in seconds, not after it.
    check_reachable(uri_in_force(db_uri, cfg.database.uri))
    for key, value in _PREFECT_LOCAL_DEFAULTS.items():
        if not (verbose and key == "PREFECT_LOGGING_LEVEL"):
            os.environ.setdefault(key, value)
    if not os.environ.get("PREFECT_API_URL"):
        from flows.local_api import start_temporary_api

        try:
            timeout = float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
        except ValueError:
            timeout = 120.0
        os.environ["PREFECT_API_URL"] = start_temporary_api(timeout)

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
        with unexpected_as(_campaign_failed), _interruptions_as_keyboard():
            result = campaign_flow(
                config_path=str(config),
                db_uri=db_uri,
                allow_config_change=allow_config_change,
                take_over=take_over,
            )
    finally:
        # Before any message: a live display would overwrite it.
        reporter.close()
        set_reporter(None)
    _print_outcome(result)


@contextmanager
def _interruptions_as_keyboard() -> Iterator[None]:
    """Prefect's TerminationSignal (SIGTERM inside a flow) surfaces as :class:`Terminated`."""
    from flows.campaign import INTERRUPTIONS

    try:
        yield
    except KeyboardInterrupt:
        raise
    except INTERRUPTIONS:
        raise Terminated() from None


def _print_outcome(result: CampaignOutcome) -> None:
    """Where the campaign ended, where its data is, and what to do next."""
    from aloop.cli import app

    converged = result.status is CampaignStatus.CONVERGED
    colour = typer.colors.GREEN if converged else typer.colors.YELLOW
    typer.secho(f"campaign {result.campaign}: {result.status}", fg=colour, bold=True)
    if result.reason:
        typer.echo(f"  reason: {result.reason}")
    held = f" (of which {result.labels_holdout} hold-out)" if result.labels_holdout else ""
    typer.echo(
        f"  iterations: {result.iterations}, labels: {result.labels_ok} ok{held}, "
        f"{result.labels_failed} failed, {result.labels_rejected} rejected"
    )
    if result.final_holdout is not None:
        typer.echo(f"  production committee: {result.final_holdout.describe()}")
    typer.echo(f"  data: {result.database}")
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    typer.echo("next:")
    typer.echo(f"  aloop status {result.campaign}      # per-iteration table")
    if "dashboard" in names:
        typer.echo("  aloop dashboard                  # live plots at http://127.0.0.1:8050")
    if "export" in names:
        typer.echo(f"  aloop export {result.campaign} --out DIR   # MACE-ready dataset")
