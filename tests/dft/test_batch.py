"""Batch labelling: parallel workers, skip of finished work, streaming results, kills."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase.build import molecule

from aloop.records import LabelRecord
from dft.batch import LabelTask, Progress, default_layout, label_batch
from dft.settings import LabelSettings

SETTINGS = LabelSettings(method="HF", basis="sto-3g")


def water_tasks(n):
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(n):
        a = molecule("H2O")
        a.positions += rng.normal(scale=0.03, size=(3, 3))
        tasks.append(LabelTask(f"w{i}", a))
    return tasks


def test_batch_labels_in_parallel_skips_done_and_streams_results():
    tasks = water_tasks(5)
    squashed = molecule("H2O")
    squashed.positions[2] = squashed.positions[0]
    tasks.append(LabelTask("bad", squashed))
    streamed: list[LabelRecord] = []
    reports: list[str] = []
    records = label_batch(
        tasks,
        SETTINGS,
        workers=2,
        threads=1,
        skip={"w0"},
        on_result=streamed.append,
        on_progress=lambda p: reports.append(p.line()),
    )
    assert sorted(r.structure_id for r in records) == ["bad", "w1", "w2", "w3", "w4"]
    assert [r.structure_id for r in streamed] == [r.structure_id for r in records]
    by_id = {r.structure_id: r for r in records}
    assert by_id["bad"].status == "rejected"
    assert all(by_id[f"w{i}"].status == "ok" for i in range(1, 5))
    assert len(reports) == 5 and "labelled 5/5 (1 failed, 1 already done)" in reports[-1]
    # parallel results equal a serial calculation of the same structure
    from dft.label import label_structure

    serial = label_structure("w3", tasks[3].atoms, SETTINGS)
    assert by_id["w3"].energy == pytest.approx(serial.energy, abs=1e-8)  # thread count differs


def sleepy_work(structure_id, atoms, settings, charge=0, multiplicity=1, threads=1):
    """A calculation that ignores its deadline (module level: workers must import it)."""
    if structure_id == "stuck":
        time.sleep(600)
    return LabelRecord(
        structure_id=structure_id,
        settings_hash=settings.settings_hash(),
        status="ok",
        energy=float(len(atoms)),
    )


def test_runaway_worker_is_killed_and_recorded_as_timeout(monkeypatch):
    import dft.batch

    monkeypatch.setattr(dft.batch, "KILL_GRACE_S", 8.0)
    settings = LabelSettings(method="HF", basis="sto-3g", timeout_s=1.0)
    tasks = [LabelTask("stuck", molecule("H2O")), *water_tasks(3)]
    start = time.monotonic()
    records = label_batch(tasks, settings, workers=2, work=sleepy_work)
    assert time.monotonic() - start < 120  # the stuck one sleeps 600 s
    by_id = {r.structure_id: r for r in records}
    assert set(by_id) == {"stuck", "w0", "w1", "w2"}
    assert by_id["stuck"].status == "failed"
    assert "timeout after 1 s (killed)" in by_id["stuck"].error
    assert all(by_id[f"w{i}"].status == "ok" for i in range(3))


def crashing_work(structure_id, atoms, settings, charge=0, multiplicity=1, threads=1):
    """Kills its worker process for one structure, as a segfault or the OOM killer would."""
    import os

    if structure_id == "crash":
        os._exit(9)
    return sleepy_work(structure_id, atoms, settings, charge, multiplicity, threads)


def test_dying_worker_is_retried_then_recorded_and_others_complete():
    tasks = [LabelTask("crash", molecule("H2O")), *water_tasks(3)]
    records = label_batch(
        tasks, SETTINGS, workers=2, work=crashing_work, on_progress=lambda p: None
    )
    by_id = {r.structure_id: r for r in records}
    assert set(by_id) == {"crash", "w0", "w1", "w2"}
    assert by_id["crash"].status == "failed"
    assert by_id["crash"].error == (
        "worker process died 2 times running this structure alone (out of memory?)"
    )
    assert all(by_id[f"w{i}"].status == "ok" for i in range(3))


def test_default_layout_fills_the_cores():
    workers, threads = default_layout(cores=2)
    assert workers * threads == 2


def test_progress_eta():
    p = Progress(total=10, done=2, skipped=2, started=time.monotonic() - 4)
    assert p.rate == pytest.approx(0.5, rel=1e-3)
    assert p.eta_s == pytest.approx(12, rel=1e-3)
