"""The pieces every labelling engine shares: cores, failed labels, the crash-suspect rule."""

from __future__ import annotations

import os

from ase.build import molecule

from aloop.vocabulary import LabelStatus
from dft.settings import LabelSettings
from dft.worker import (
    MAX_WORKER_CRASHES,
    CrashSuspects,
    LabelTask,
    available_cores,
    default_layout,
    failed_label,
    timed_out_label,
)

SETTINGS = LabelSettings(method="HF", basis="sto-3g", timeout_s=5.0)


def test_cores_are_the_affinity_where_the_os_has_one():
    if hasattr(os, "sched_getaffinity") and not hasattr(os, "process_cpu_count"):
        assert available_cores() == len(os.sched_getaffinity(0))
    assert default_layout() == (available_cores(), 1)


def test_default_layout_without_an_affinity_call_uses_every_core(monkeypatch):
    # macOS and Windows have no os.sched_getaffinity (and Python 3.11 no process_cpu_count)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    assert available_cores() == os.cpu_count()
    assert default_layout() == (os.cpu_count(), 1)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_layout() == (1, 1)


def test_failed_label_carries_the_settings_and_the_reason():
    rec = failed_label(LabelTask("s1", molecule("H2O")), SETTINGS, "lost", wall=1.23456)
    assert rec.status is LabelStatus.FAILED
    assert (rec.structure_id, rec.error, rec.wall_time) == ("s1", "lost", 1.235)
    assert rec.settings_hash == SETTINGS.settings_hash()
    assert rec.settings == SETTINGS.result_fields()
    assert rec.code_versions == {"pyscf": SETTINGS.pyscf_version}
    timeout = timed_out_label(LabelTask("s2", molecule("H2O")), SETTINGS, 35.0)
    assert timeout.error == "timeout after 5 s (killed)"
    assert timeout.wall_time == 35.0


def test_only_deaths_alone_count_against_a_structure():
    rule = CrashSuspects()
    for _ in range(5):  # in flight beside others: the culprit is unknown
        assert not rule.died("a", alone=False)
    for _ in range(MAX_WORKER_CRASHES - 1):
        assert not rule.died("a", alone=True)
    assert not rule.died("b", alone=True) or MAX_WORKER_CRASHES == 1
    assert rule.died("a", alone=True)
    rec = rule.failure(LabelTask("a", molecule("H2O")), SETTINGS, "KilledWorker: x")
    assert rec.status is LabelStatus.FAILED
    assert rec.error == (
        f"worker process died {MAX_WORKER_CRASHES} times running this structure alone "
        "(out of memory?): KilledWorker: x"
    )
