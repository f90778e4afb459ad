"""The aloop command line: version, validate (exit codes, one-line errors), status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import molecule
from typer.testing import CliRunner

from aloop import __version__
from aloop.cli import app
from aloop.records import StructureRecord
from tests.aloop.test_config import MALFORMED, with_change

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"aloop {__version__}"


def test_validate_prints_a_summary():
    result = runner.invoke(app, ["validate", str(CONFIGS / "demo-water.yaml")])
    assert result.exit_code == 0, result.output
    assert "campaign 'demo-water': valid" in result.output
    assert "HF/6-31g" in result.output


def test_validate_masks_database_password():
    result = runner.invoke(app, ["validate", str(CONFIGS / "mgcl2-molten.yaml")])
    assert result.exit_code == 0
    assert "change-me" not in result.output and "aloop:***@" in result.output


@pytest.mark.parametrize(("change", "key", "words"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_validate_malformed_config_exits_2_with_one_line(tmp_path, change, key, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(with_change(*change)))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {key}:") and words in lines[0]
    assert "Traceback" not in result.output


def test_validate_missing_file_in_a_real_process(tmp_path):
    """The installed entry point: exit code 2 and no traceback, as a user sees it."""
    proc = subprocess.run(
        [sys.executable, "-m", "aloop", "validate", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot read file" in proc.stderr and "Traceback" not in proc.stderr


def test_status_lists_campaigns_and_iterations(tmp_path):
    from aloop.explore.classify import statistics
    from aloop.stats import ExploreStats, SystemStats
    from aloop.vocabulary import Origin, Stage, StageStatus, Verdict
    from db import campaigns, connection, iterations, structures

    uri = f"embedded://{tmp_path / 'db'}"
    connection.connect(uri)
    c, _ = campaigns.get_or_create_campaign("demo", {"campaign": "demo"}, "d" * 64)
    atoms = molecule("H2O")
    recs = []
    for i in range(3):
        a = atoms.copy()
        a.positions += np.random.default_rng(i).normal(scale=0.05, size=(3, 3))
        recs.append(StructureRecord.from_atoms(a, "water", Origin.INITIAL))
    structures.insert_structures(c.id, recs)
    it = iterations.get_or_create_iteration(c.id, 1)
    iterations.set_stage(it, Stage.TRAIN, StageStatus.RUNNING)
    verdicts = [Verdict.ACCURATE] * 100 + [Verdict.CANDIDATE] * 15 + [Verdict.FAILED] * 5
    counts = statistics(np.array(verdicts, dtype=object), np.linspace(0, 1, 120))
    system = SystemStats(
        name="water",
        **counts,
        trust_lo=0.05,
        trust_hi=0.5,
        walkers=2,
        md_steps=600,
        committee_calls=600,
    )
    iterations.merge_stats(it.id, ExploreStats.of([system]))
    connection.disconnect()

    result = runner.invoke(app, ["status", "--db", uri], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "demo" in line)
    assert "running" in row and " 3 " in row

    result = runner.invoke(app, ["status", "demo", "--db", uri], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "120" in line)
    # Train running (▶), the other stages pending (·); 83 % of the frames accurate.
    assert row.split()[1:10:2] == ["1", "▶", "·", "·", "·"]
    assert "83%" in row and " 15 " in row

    result = runner.invoke(app, ["status", "nosuch", "--db", uri])
    assert result.exit_code == 2
    assert "no campaign named 'nosuch'" in result.stderr


def test_status_unreachable_database_exits_1_without_traceback():
    result = runner.invoke(app, ["status", "--db", "mongodb://u:pw@127.0.0.1:9/aloop"])
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.stderr and "pw@" not in result.stderr
    assert "Traceback" not in result.output


def test_dashboard_refuses_a_missing_embedded_store(tmp_path):
    missing = tmp_path / "no-such-store"
    result = runner.invoke(app, ["dashboard", "--db", f"embedded://{missing}"])
    assert result.exit_code == 1
    assert f"no embedded store at {missing}" in result.stderr
    assert not missing.exists()


def test_help_loads_no_heavy_module():
    """``aloop --help`` stays fast: the commands import the science and the layers inside."""
    heavy = ("prefect", "mongoengine", "pymongo", "torch", "mace", "pyscf", "ase", "numpy")
    heavy += ("db", "flows", "dft", "dashboard", "aloop.config")  # (Typer draws --help with rich)
    code = (
        "import sys\nfrom aloop.cli import app\n"
        "try:\n    app(['--help'], prog_name='aloop')\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "validate" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
