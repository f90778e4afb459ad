"""Command-line misuse (an unknown command or option, a missing argument, a value of the
wrong type) reported as one line on stderr, exit 2, like every other refusal.

Click prints a usage block, a hint and, with rich, a framed box: five lines or more that
a script reading stderr, or a user scanning a log, has to parse. :class:`OneLineUsage`
is the ``cls`` of the ``aloop`` Typer app; it keeps click's message and exit code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

# Typer carries its own copy of click; its commands raise that copy's exceptions.
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperGroup


class OneLineUsage(TyperGroup):
    """A Typer group whose usage errors, its subcommands' included, print one line:
    ``aloop validate: Missing argument 'CONFIG'. (aloop validate --help)``."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: typer.Context | None = None,
        **extra: Any,
    ) -> typer.Context:
        with _one_line(info_name or "aloop"):
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: typer.Context) -> Any:
        with _one_line(ctx.command_path):
            return super().invoke(ctx)


def usage_line(exc: ClickException, fallback: str) -> str:
    """``exc`` as one line, naming the command it concerns and where its help is."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else fallback
    message = " ".join(exc.format_message().split())
    hint = f" ({where} --help)" if isinstance(exc, UsageError) else ""
    return f"{where}: {message}{hint}"


@contextmanager
def _one_line(fallback: str) -> Iterator[None]:
    try:
        yield
    except ClickException as exc:
        typer.echo(usage_line(exc, fallback), err=True)
        raise typer.Exit(exc.exit_code) from None
