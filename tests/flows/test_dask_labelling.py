"""Labelling fanned out through prefect-dask's DaskTaskRunner on a local 2-worker cluster,
driven as the campaign drives it: from a stage task inside a flow."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from ase.build import molecule

from aloop.config import ExecutionConfig
from dft.batch import LabelTask
from dft.label import label_structure
from dft.settings import LabelSettings
from tests.flows.dask_cluster import require_dask

pytestmark = pytest.mark.slow

#: Module state that a flow body reads and that cannot be pickled, as the CLI's live
#: display is for the campaign flow: a flow pickled by value would carry it.
_DISPLAY = {"lock": threading.RLock()}


def _jobs(settings: LabelSettings) -> list[tuple[LabelTask, LabelSettings]]:
    jobs = []
    for i in range(4):
        atoms = molecule("H2O")
        atoms.positions += np.random.default_rng(i).normal(scale=0.05, size=(3, 3))
        jobs.append((LabelTask(f"dask{i}", atoms), settings))
    squashed = molecule("H2O")
    squashed.positions[1] = squashed.positions[0] + [0.0, 0.0, 0.2]  # far too close
    jobs.append((LabelTask("squashed", squashed), settings))
    return jobs


def test_a_batch_is_labelled_on_a_local_dask_cluster(prefect_api):
    require_dask()
    from prefect import flow, task

    from flows.labelling import PrefectLabeller

    settings = LabelSettings(method="HF", basis="sto-3g")
    jobs = _jobs(settings)

    @task
    def label_stage(loop: dict, labeller: PrefectLabeller) -> list:
        # Like the campaign's label stage: its arguments hold what cannot be pickled.
        records: list = []
        labeller(jobs, records.append)
        return records

    @flow
    def label_on_dask() -> tuple[list, int, str]:
        with PrefectLabeller(ExecutionConfig(task_runner="dask", label_workers=2)) as labeller:
            records = label_stage({"display": _DISPLAY, "lock": threading.RLock()}, labeller)
            workers = len(labeller.runner.client.scheduler_info()["workers"])
            return records, workers, type(labeller.runner).__name__

    records, workers, runner = label_on_dask()
    assert runner == "DaskTaskRunner"
    assert workers == 2
    by_id = {r.structure_id: r for r in records}
    assert sorted(by_id) == sorted(job.structure_id for job, _ in jobs)
    # A bad geometry is a record (rejected before any DFT), not a task failure.
    assert by_id["squashed"].status == "rejected"
    for job, _ in jobs[:4]:
        rec = by_id[job.structure_id]
        assert rec.status == "ok"
        direct = label_structure(job.structure_id, job.atoms, settings)
        assert rec.energy == pytest.approx(direct.energy, abs=1e-8)
        np.testing.assert_allclose(rec.forces, direct.forces, atol=1e-6)
