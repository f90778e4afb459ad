"""The ``aloop`` command line.

Exit codes: 0 success; 1 a command ran and failed (e.g. the database is unreachable);
2 bad usage or an invalid campaign file. Heavy modules load inside the commands so that
``aloop --help`` stays fast.
"""

from __future__ import annotations

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
