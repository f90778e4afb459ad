"""The ``aloop`` command line: one module per command, registered here.

Exit codes: 0 success; 1 a command ran and failed (e.g. the database is unreachable);
2 bad usage, an invalid campaign file, or a refused config change; 130 interrupted.
:mod:`aloop.cli.exits` is the one place that maps errors to them. Heavy modules load
inside the commands so that ``aloop --help`` stays fast. This package is the one part of
``aloop`` that may import the outer layers (``db``, ``flows``, ``dft``, ``dashboard``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from aloop import __version__
from aloop.cli import dashboard, db, density, export, import_, run, show, status, validate
from aloop.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, mapped
from aloop.cli.usage import OneLineUsage

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "app"]

app = typer.Typer(
    name="aloop",
    cls=OneLineUsage,
    help="Active learning of MACE interatomic potentials with PySCF labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def _register(
    group: typer.Typer,
    command: Callable[..., Any],
    name: str | None = None,
    interrupted: str = "interrupted",
) -> None:
    """Add ``command`` to ``group`` behind the one error-to-exit-code mapping."""
    group.command(name=name)(mapped(command, interrupted))


_register(app, validate.validate)
_register(app, status.status)
_register(app, run.run, interrupted=run.INTERRUPTED)
_register(app, export.export)
_register(app, import_.import_, name="import")
_register(app, show.show)
_register(app, dashboard.dashboard)
_register(app, density.density)
_register(db.db_app, db.db_copy, name="copy")
app.add_typer(db.db_app, name="db")
