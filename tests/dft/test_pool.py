"""The persistent labelling pool: parallel labels from threads, a lost worker reported as
an infrastructure error (retryable), and the pool usable again afterwards."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ase.build import molecule

from dft.pool import LabelPool, WorkerLost
from dft.settings import LabelSettings
from dft.worker import LabelTask, worker_processes

pytestmark = pytest.mark.slow


def test_labels_from_threads_and_survives_a_killed_worker():
    fast = LabelSettings(method="HF", basis="sto-3g")
    with LabelPool(workers=2) as pool:
        out = {}
        # Built here: ASE's g2 collection loads lazily and not thread-safely.
        waters = []
        for i in range(4):
            atoms = molecule("H2O")
            atoms.positions += np.random.default_rng(i).normal(scale=0.05, size=(3, 3))
            waters.append(atoms)

        def one(i: int) -> None:
            out[i] = pool.label(LabelTask(f"t{i}", waters[i]), fast)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [out[i].status for i in range(4)] == ["ok"] * 4
        assert len({round(out[i].energy, 6) for i in range(4)}) == 4

        # A worker dying under a calculation (as the OOM killer would do it) is not a
        # label failure: the caller gets WorkerLost and may retry.
        slow = LabelSettings(method="HF", basis="6-31g*")
        killer = threading.Timer(1.0, lambda: [p.kill() for p in worker_processes(pool._executor)])
        killer.start()
        start = time.monotonic()
        with pytest.raises(WorkerLost, match="died under structure benzene"):
            pool.label(LabelTask("benzene", molecule("C6H6")), slow)
        assert time.monotonic() - start < 30
        # The next structure gets a fresh pool.
        again = pool.label(LabelTask("after", molecule("H2O")), fast)
        assert again.status == "ok"


def test_closing_the_pool_ends_calculations_in_flight_at_once():
    """Ctrl-C or an error mid-batch: closing must not wait out the calculations."""
    pool = LabelPool(workers=1)
    pool.label(LabelTask("warm", molecule("H2O")), LabelSettings(method="HF", basis="sto-3g"))
    slow = LabelSettings(method="HF", basis="6-31g*")
    closer = threading.Timer(1.0, pool.close)
    closer.start()
    start = time.monotonic()
    with pytest.raises(WorkerLost):
        pool.label(LabelTask("benzene", molecule("C6H6")), slow)
    assert time.monotonic() - start < 10
    from dft.pool import PoolClosed

    with pytest.raises(PoolClosed):
        pool.label(LabelTask("after", molecule("H2O")), slow)
