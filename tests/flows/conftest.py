"""Fixtures of the campaign-loop tests: one Prefect API for the session, and the tools to
run ``aloop run`` as a real subprocess against an embedded database and inspect it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY = Path(__file__).with_name("tiny-water.yaml")


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect API server for the whole session; yields its URL.

    In-process flows use it through Prefect's settings context; subprocesses get it as
    PREFECT_API_URL, so each ``aloop run`` skips starting its own temporary server.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


def aloop_command() -> list[str]:
    """The installed console script when present, else the module."""
    exe = shutil.which("aloop", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "aloop"]


def campaign_env(prefect_api: str, data_dir: Path) -> dict[str, str]:
    """Environment of an ``aloop run`` subprocess in a test."""
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=prefect_api,
        ALOOP_DATA_DIR=str(data_dir),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        COLUMNS="120",
    )
    env.pop("ALOOP_DB_URI", None)
    return env


def run_aloop(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``aloop ARGS`` to completion, capturing its output."""
    return subprocess.run(
        [*aloop_command(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def start_aloop(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start ``aloop ARGS`` in its own process group (so a kill takes its workers too)."""
    return subprocess.Popen(
        [*aloop_command(), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture
def tiny_config():
    """Path of the tiny water campaign file."""
    return TINY
