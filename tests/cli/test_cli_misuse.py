"""Command-line misuse: each is refused with exit 2, one stderr line naming what is
wrong (the option, the argument or the file), and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "demo-water.yaml")
MOLTEN = str(ROOT / "configs" / "demo-molten-salt.yaml")
runner = CliRunner()

#: (id, arguments with {tmp} for a fresh folder, words the one line must contain)
MISUSES = [
    ("unknown command", ["frobnicate"], "No such command 'frobnicate'"),
    ("typo of a command", ["valdate", DEMO], "valdate"),
    ("unknown option", ["validate", "--frob", DEMO], "--frob"),
    ("unknown global option", ["--colour", "validate"], "--colour"),
    ("missing config", ["validate"], "Missing argument 'config'"),
    ("extra argument", ["validate", DEMO, DEMO], "unexpected extra argument"),
    ("run without config", ["run"], "Missing argument 'config'"),
    ("run unknown option", ["run", DEMO, "--fast"], "--fast"),
    ("nonexistent config", ["validate", "{tmp}/nope.yaml"], "cannot read file"),
    ("directory as config", ["validate", "{tmp}"], "is a directory"),
    ("run a directory", ["run", "{tmp}"], "is a directory"),
    ("run nonexistent", ["run", "{tmp}/nope.yaml"], "cannot read file"),
    ("export without --out", ["export", "demo-water"], "--out"),
    ("export without campaign", ["export", "--out", "{tmp}/o"], "Missing argument 'campaign'"),
    ("export --split 2", ["export", "x", "--out", "{tmp}/o", "--split", "2"], "split"),
    ("export --split text", ["export", "x", "--out", "{tmp}/o", "--split", "a,b,c"], "split"),
    ("export --outliers -1", ["export", "x", "--out", "{tmp}/o", "--outliers", "-1"], "--outliers"),
    ("export --seed text", ["export", "x", "--out", "{tmp}/o", "--seed", "abc"], "--seed"),
    ("export --format zip", ["export", "x", "--out", "{tmp}/o", "--format", "zip"], "zip"),
    (
        "export --iteration text",
        ["export", "x", "--out", "{tmp}/o", "--iteration", "one"],
        "--iteration",
    ),
    ("import --units furlong", ["import", DEMO, "{tmp}/f.xyz", "--units", "furlong"], "--units"),
    ("import nonexistent file", ["import", DEMO, "{tmp}/absent.xyz"], "absent.xyz"),
    ("import without file", ["import", DEMO], "Missing argument 'source'"),
    ("show without id", ["show"], "Missing argument 'structure_id'"),
    ("dashboard --port text", ["dashboard", "--port", "abc"], "--port"),
    ("dashboard --refresh text", ["dashboard", "--refresh", "soon"], "--refresh"),
    ("db copy without target", ["db", "copy", "memory://a"], "Missing argument 'target'"),
    ("db unknown subcommand", ["db", "move"], "No such command 'move'"),
    ("option without value", ["export", "x", "--out"], "--out"),
    ("density of a molecule", ["density", DEMO], "is not periodic: a density needs a cell"),
    (
        "density equilibration too long",
        ["density", MOLTEN, "--steps", "100", "--equilibration", "100"],
        "--equilibration (100) must be below --steps (100)",
    ),
    ("density --steps 0", ["density", MOLTEN, "--steps", "0"], "--steps"),
    ("density unknown system", ["density", MOLTEN, "--system", "nacl"], "no system 'nacl'"),
    ("density without a database", ["density", MOLTEN], "no embedded store at"),
]


def _args(args: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in args]


def test_there_are_enough_misuses():
    assert len(MISUSES) >= 20


@pytest.mark.parametrize(("name", "args", "words"), MISUSES, ids=[m[0] for m in MISUSES])
def test_misuse_is_one_line_and_exit_2(tmp_path, monkeypatch, name, args, words):
    monkeypatch.setenv("ALOOP_DB_URI", f"embedded://{tmp_path / 'db'}")
    result = runner.invoke(app, _args(args, tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1, lines
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.output


#: Run as a user runs them: the installed entry point, a real process.
IN_PROCESS = ["unknown command", "missing config", "directory as config", "export --split 2"]


@pytest.mark.parametrize("name", IN_PROCESS)
def test_misuse_in_a_real_process(tmp_path, name):
    _, args, words = next(m for m in MISUSES if m[0] == name)
    proc = subprocess.run(
        [sys.executable, "-m", "aloop", *_args(args, tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ALOOP_DB_URI": f"embedded://{tmp_path / 'db'}"},
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and words in lines[0], lines
    assert "Traceback" not in proc.stderr
