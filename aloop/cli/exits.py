"""What a failure means to the user: the one place that turns exceptions into exit codes.

Exit codes: 0 success; 1 a command ran and failed (an
:class:`~aloop.errors.InfrastructureError` such as an unreachable database, or another
:class:`~aloop.errors.AloopError`); 2 bad usage, an invalid campaign file or a refused
request (:class:`~aloop.errors.UserError`); 130 interrupted. An exception that is none of
these is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import typer

from aloop.errors import AloopError, UserError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")


def say_error(message: str) -> None:
    """One message on stderr, in red."""
    typer.secho(message, err=True, fg=typer.colors.RED)


def exit_code(exc: BaseException) -> int | None:
    """The exit code for ``exc``, or None when it is not a failure aloop knows (a bug)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, UserError):
        return EXIT_USAGE
    if isinstance(exc, AloopError):  # InfrastructureError, or aloop's own "ran and failed"
        return EXIT_FAILED
    return None


def _message_lines(exc: BaseException) -> list[str]:
    """What the user reads: a campaign file's problems one a line, each naming the file."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        source = getattr(exc, "source", None)
        return [f"{source}: {p}" if source else str(p) for p in problems]
    return [str(exc)]


def mapped(command: Callable[P, R], interrupted: str = "interrupted") -> Callable[P, R]:
    """``command`` with aloop's failures turned into a red message and an exit code.

    ``interrupted`` is what Ctrl-C prints. Typer's own exits pass through; an exception
    :func:`exit_code` does not know propagates with its traceback.
    """

    @functools.wraps(command)
    def run_mapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            say_error(interrupted)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            code = exit_code(exc)
            if code is None:
                raise
            for line in _message_lines(exc):
                say_error(line)
            raise typer.Exit(code) from None

    return run_mapped


@contextmanager
def unexpected_as(translate: Callable[[Exception], Exception]) -> Iterator[None]:
    """Inside: an exception that :func:`exit_code` does not know becomes ``translate(exc)``.

    For a block where any failure has one meaning to the user (a file ASE cannot read,
    a copy that broke off), so that it reads as one line instead of a traceback.
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if exit_code(exc) is not None:
            raise
        raise translate(exc) from exc


def described(exc: BaseException) -> str:
    """``Type: message``, for a failure whose type is part of what went wrong."""
    return f"{type(exc).__name__}: {exc}"
