"""Crash safety: ``aloop run`` killed with SIGKILL mid-labelling, mid-training,
mid-exploration and mid-final-stage, re-run each time, completes with every document
consistent and nothing computed twice."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml
from mongoengine.connection import get_db

from aloop.vocabulary import Stage, StageStatus
from db import connection
from db.documents import Label, Model
from tests.flows.conftest import campaign_env, run_aloop, start_aloop
from tests.flows.consistency import check_campaign

pytestmark = pytest.mark.slow


def _kill_when(proc, condition, what: str, log, timeout: float = 300) -> None:
    """SIGKILL the run's whole process group as soon as ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"never reached {what}")


def test_sigkill_at_three_points_then_resume(prefect_api, tiny_config, tmp_path):
    cfg = yaml.safe_load(tiny_config.read_text())
    # One labelling worker and longer MD widen the windows the test kills in.
    cfg["execution"]["label_workers"] = 1
    cfg["explore"].update(steps=200, sample_interval=10)
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(cfg))
    db_uri = f"embedded://{tmp_path / 'db'}"
    env = campaign_env(prefect_api, tmp_path / "data")
    args = ["run", str(path), "--db", db_uri]
    # A SIGKILLed run leaves its lease on the campaign; the user who killed it knows it is
    # gone and takes the campaign over at once instead of waiting for the lease to expire.
    resume = [*args, "--take-over"]
    log = tmp_path / "run.log"
    n_seeds = 1 + cfg["initial"]["rattled_per_structure"]

    connection.connect(db_uri)
    try:
        db = get_db()

        def stage(index: int, name: Stage) -> str | None:
            it = db["iterations"].find_one({"index": index})
            return it["stages"][name]["status"] if it else None

        # 1. Mid-labelling of the seeds: some labels stored, others not.
        proc = start_aloop(args, env, log)
        _kill_when(
            proc,
            lambda: 2 <= db["labels"].count_documents({"iteration": 0}) <= n_seeds - 2,
            "labelling of iteration 0",
            log,
        )
        first_labels = {
            str(lab.id): lab.created_at for lab in Label.objects(iteration=0).only("created_at")
        }
        assert 2 <= len(first_labels) < n_seeds
        assert stage(0, Stage.SEED) == StageStatus.DONE
        assert stage(0, Stage.LABEL) == StageStatus.RUNNING

        # 2. Mid-training: member 0 of iteration 1 stored, member 1 not yet.
        proc = start_aloop(resume, env, log)
        _kill_when(
            proc,
            lambda: db["models"].count_documents({"iteration": 1}) == 1,
            "training of iteration 1",
            log,
        )
        assert db["models"].count_documents({"iteration": 1}) == 1
        member0 = Model.objects.get(iteration=1, member=0).id

        # 3. Mid-exploration of iteration 1.
        proc = start_aloop(resume, env, log)
        _kill_when(proc, lambda: stage(1, Stage.EXPLORE) == StageStatus.RUNNING, "exploration", log)
        assert stage(1, Stage.SELECT) == StageStatus.PENDING

        # 4. Mid-final stage: the cap (2) fired, production member 0 stored, member 1 not.
        proc = start_aloop(resume, env, log)
        _kill_when(
            proc,
            lambda: db["models"].count_documents({"iteration": 3}) == 1,
            "training of the final committee",
            log,
        )
        assert stage(3, Stage.FINAL) == StageStatus.RUNNING
        final0 = Model.objects.get(iteration=3, member=0).id

        # 5. Run to the end.
        done = run_aloop(resume, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "resuming campaign tiny-water at iteration 3" in done.stderr
        assert "iteration cap reached (2)" in done.stdout
        assert "production committee:" in done.stdout and "hold-out frames" in done.stdout
        assert stage(3, Stage.FINAL) == StageStatus.DONE
        assert Model.objects.get(iteration=3, member=0).id == final0  # kept, not retrained

        counts = check_campaign("tiny-water", committee_size=2)
        assert counts["iterations"] == 4
        # No seed was lost or labelled twice, and the labels made before the first
        # kill are the very same documents: their DFT was not redone.
        assert Label.objects(iteration=0).count() == n_seeds
        after = {str(lab.id): lab.created_at for lab in Label.objects(iteration=0)}
        assert all(after.get(i) == t for i, t in first_labels.items())
        # The member stored before the second kill was kept, not retrained.
        assert Model.objects.get(iteration=1, member=0).id == member0
        assert Model.objects(iteration=1).count() == 2
    finally:
        connection.disconnect()
