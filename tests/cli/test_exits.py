"""The one error-to-exit-code mapping (aloop/cli/exits.py) and that every command uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from aloop.cli import app
from aloop.cli.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    exit_code,
    mapped,
    unexpected_as,
)
from aloop.config import ConfigError
from aloop.dataset.export import ExportError
from aloop.errors import AloopError, InfrastructureError, UserError
from db.campaigns import ConfigChangeRefused
from db.connection import DatabaseUnavailable
from db.copy import CopyRefused
from db.importing import ImportRefused
from db.iterations import StageTransitionError
from flows.context import CampaignError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
runner = CliRunner()


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UserError("x"), EXIT_USAGE),
        (InfrastructureError("x"), EXIT_FAILED),
        (AloopError("too few labels to train"), EXIT_FAILED),
        (KeyboardInterrupt(), EXIT_INTERRUPTED),
        (ConfigError(["campaign: missing"], "c.yaml"), EXIT_USAGE),
        (ExportError("nothing matched"), EXIT_USAGE),
        (DatabaseUnavailable("no server"), EXIT_FAILED),
        (ConfigChangeRefused("x"), EXIT_USAGE),
        (ImportRefused("x"), EXIT_USAGE),
        (CopyRefused("x"), EXIT_USAGE),
        (CampaignError("x"), EXIT_FAILED),
        (StageTransitionError("x"), EXIT_FAILED),
        # A subclass of a mapped error is mapped too.
        (type("Narrower", (CopyRefused,), {})("x"), EXIT_USAGE),
        # Not aloop's: a bug (traceback), not a failure with a meaning.
        (ValueError("x"), None),
        (type("ConfigError", (ValueError,), {"__module__": "somelib.config"})("x"), None),
        (RuntimeError("x"), None),
    ],
)
def test_exit_code(exc, code):
    assert exit_code(exc) == code


def _app_raising(exc: BaseException) -> typer.Typer:
    def fails() -> None:
        raise exc

    def other() -> None:
        """A second command, so that Typer keeps the command name."""

    one = typer.Typer()
    one.command()(mapped(fails, interrupted="stopped; run it again"))
    one.command()(mapped(other))
    return one


@pytest.mark.parametrize(
    ("exc", "code", "stderr"),
    [
        (UserError("bad --split"), 2, "bad --split\n"),
        (InfrastructureError("disk full"), 1, "disk full\n"),
        (KeyboardInterrupt(), 130, "stopped; run it again\n"),
        # A campaign file's problems: one line each, naming the file.
        (ConfigError(["a: no", "b: neither"], "c.yaml"), 2, "c.yaml: a: no\nc.yaml: b: neither\n"),
    ],
)
def test_mapped_command_prints_the_message_and_exits_with_the_code(exc, code, stderr):
    result = runner.invoke(_app_raising(exc), ["fails"])
    assert result.exit_code == code
    assert result.stderr == stderr
    assert result.stdout == ""


def test_an_unknown_exception_keeps_its_traceback():
    result = runner.invoke(_app_raising(ZeroDivisionError("bug")), ["fails"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_unexpected_as_translates_only_what_the_mapping_does_not_know():
    def translate(exc: Exception) -> Exception:
        return InfrastructureError(f"copy failed: {exc}")

    with pytest.raises(InfrastructureError, match="copy failed: oops"), unexpected_as(translate):
        raise OSError("oops")
    with pytest.raises(DatabaseUnavailable), unexpected_as(translate):
        raise DatabaseUnavailable("gone")
    with pytest.raises(typer.Exit), unexpected_as(translate):
        raise typer.Exit(0)
    with pytest.raises(KeyboardInterrupt), unexpected_as(translate):
        raise KeyboardInterrupt


def _callbacks(group: typer.Typer, prefix: str = "") -> dict[str, Any]:
    """Every command's function under ``group`` by its full name (``db copy``)."""
    found = {
        prefix + (c.name or c.callback.__name__): c.callback for c in group.registered_commands
    }
    for sub in group.registered_groups:
        found |= _callbacks(sub.typer_instance, f"{prefix}{sub.name} ")
    return found


def test_every_command_goes_through_the_one_mapping():
    callbacks = _callbacks(app)
    names = {"validate", "status", "run", "export", "import", "show", "dashboard", "db copy"}
    assert names <= set(callbacks)
    for name, callback in callbacks.items():
        assert callback.__code__.co_qualname == "mapped.<locals>.run_mapped", name
    # and the commands Typer builds from them are all there
    assert set(typer.main.get_command(app).commands) >= {n.split()[0] for n in names}


def test_run_failures_read_as_one_message(monkeypatch):
    """``aloop run``: Ctrl-C and an unforeseen failure both say that a rerun resumes."""
    import flows.campaign

    for key in ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        monkeypatch.setenv(key, "x")
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The flow is faked: no Prefect server is started for it, no database is touched.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("ALOOP_DB_URI", "memory://exits")
    config = str(CONFIGS / "demo-water.yaml")
    raised: list[BaseException] = []

    def campaign_flow(**kwargs):
        raise raised[-1]

    monkeypatch.setattr(flows.campaign, "campaign_flow", campaign_flow)

    raised.append(KeyboardInterrupt())
    result = runner.invoke(app, ["run", config])
    assert result.exit_code == 130
    assert result.stderr == "interrupted; run the same command again to resume\n"

    raised.append(OSError("No space left on device"))
    result = runner.invoke(app, ["run", config])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "campaign failed: OSError: No space left on device",
        "the database keeps everything finished; run the same command again to resume",
    ]

    raised.append(DatabaseUnavailable("cannot use embedded://x: Permission denied"))
    result = runner.invoke(app, ["run", config])
    assert result.exit_code == 1
    assert result.stderr == "cannot use embedded://x: Permission denied\n"

    raised.append(ConfigChangeRefused("changed"))
    result = runner.invoke(app, ["run", config])
    assert result.exit_code == 2
    assert result.stderr == "changed\n"
