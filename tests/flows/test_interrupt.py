"""Ctrl-C and SIGTERM as a terminal and a scheduler send them: to the whole process group
of an ``aloop run`` that started its own temporary Prefect API server. The run stops
within seconds with 130 (143 for SIGTERM), leaves no process behind, marks nothing failed,
and the same command then finishes the campaign."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mongoengine.connection import get_db

from aloop.vocabulary import CampaignStatus, StageStatus
from db import campaigns, connection
from tests.flows.conftest import campaign_env, run_aloop, start_aloop
from tests.flows.consistency import check_campaign

pytestmark = pytest.mark.slow


def _survivors(marker: str) -> list[str]:
    """Live processes whose environment carries ``marker`` (every descendant of a run
    does, whatever its session), as ``pid cmdline``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except OSError:
            continue
        found.append(f"{entry.name} {cmd}")
    return found


def _signal_when(proc, sig, condition, log: Path, timeout: float = 300) -> float:
    """Send ``sig`` to the run's process group once ``condition()`` holds; seconds it took
    the run to exit after that."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"condition never held:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    if proc.poll() is not None:  # finished while the condition was read: no signal sent
        pytest.fail(f"the run ended before the signal:\n{log.read_text()[-3000:]}")
    os.killpg(proc.pid, sig)
    start = time.monotonic()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"still running 60 s after the signal:\n{log.read_text()[-3000:]}")
    return time.monotonic() - start


def _assert_clean_stop(db, marker: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    while (left := _survivors(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"
    text = log.read_text()
    assert "interrupted; run the same command again to resume" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    failed = [
        (it["index"], name)
        for it in db["iterations"].find()
        for name, state in it["stages"].items()
        if state["status"] == StageStatus.FAILED
    ]
    assert not failed, failed
    campaign = campaigns.get_campaign("tiny-water")
    assert campaign.status is CampaignStatus.STOPPED
    assert campaign.status_reason.startswith("interrupted")


def test_ctrl_c_and_sigterm_of_the_process_group_then_resume(tiny_config, tmp_path):
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["execution"]["label_workers"] = 1  # a wide labelling window to interrupt in
    cfg["stop"]["max_iterations"] = 1
    # Four members: SIGTERM after the first leaves seconds of training to interrupt, even
    # when a loaded machine reads the store slowly.
    cfg["model"]["committee_size"] = 4
    path = tmp_path / "interrupt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    db_uri = f"embedded://{tmp_path / 'db'}"
    marker = str(tmp_path / "data")
    env = campaign_env("", tmp_path / "data")
    env.pop("PREFECT_API_URL")  # the run starts its own temporary API server
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    args = ["run", str(path), "--db", db_uri]
    log = tmp_path / "run.log"
    n_seeds = 1 + cfg["initial"]["rattled_per_structure"]

    connection.connect(db_uri)
    try:
        db = get_db()
        # Ctrl-C mid-labelling of the seeds: the labelling worker is in the group.
        proc = start_aloop(args, env, log)
        took = _signal_when(
            proc,
            signal.SIGINT,
            lambda: 1 <= db["labels"].count_documents({}) <= n_seeds - 3,
            log,
        )
        assert proc.returncode == 130, log.read_text()[-3000:]
        assert took < 10, f"{took:.1f} s to stop"
        _assert_clean_stop(db, marker, log)

        # SIGTERM mid-training of iteration 1.
        proc = start_aloop(args, env, log)
        took = _signal_when(
            proc, signal.SIGTERM, lambda: db["models"].count_documents({}) >= 1, log
        )
        assert proc.returncode == 143, log.read_text()[-3000:]
        assert took < 10, f"{took:.1f} s to stop"
        _assert_clean_stop(db, marker, log)

        done = run_aloop(args, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "resuming campaign tiny-water at iteration 1" in done.stderr
        assert "iteration cap reached (1)" in done.stdout
        assert check_campaign("tiny-water", committee_size=4)["iterations"] == 3  # 2 + final
        assert db["labels"].count_documents({"iteration": 0}) == n_seeds
        assert not _survivors(marker)
    finally:
        connection.disconnect()
