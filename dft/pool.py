"""A persistent pool of labelling processes that many threads can hand one structure to.

The campaign flow fans labelling out as one orchestrator task per structure. Locally
those tasks are threads; each hands its structure to this pool, so the calculations run
in separate single-threaded processes (faster than threads for PySCF, measured in
benchmarks/label_bench.py) that import PySCF once, and a calculation that hangs past its
limit can be killed without killing the caller.
"""

from __future__ import annotations

import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from dft.label import label_structure
from dft.worker import (
    KILL_GRACE_S,
    LabelTask,
    run_one,
    start_workers,
    stop_workers,
    timed_out_label,
)

if TYPE_CHECKING:
    from aloop.records import LabelRecord
    from dft.settings import LabelSettings


class WorkerLost(RuntimeError):
    """The worker process died under a calculation (out of memory, segfault).

    An infrastructure error, not a label failure: the caller may retry the structure.
    """


class PoolClosed(RuntimeError):
    """The pool was closed (the run is ending): no new calculation starts."""


class LabelPool:
    """``workers`` spawn processes with ``threads`` OpenMP threads each, shared by threads.

    :meth:`label` blocks until the structure's record exists. Thread-safe; the processes
    start on first use and live until :meth:`close`.
    """

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.workers = workers
        self.threads = threads
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._generation = 0
        self._closed = False

    def _get(self) -> tuple[ProcessPoolExecutor, int]:
        with self._lock:
            if self._closed:
                raise PoolClosed("the labelling pool is closed")
            if self._executor is None:
                self._executor = start_workers(self.workers, self.threads)
                self._generation += 1
            return self._executor, self._generation

    def _discard(self, generation: int, kill: bool) -> None:
        """Drop the executor of ``generation`` (once, whichever thread notices first)."""
        with self._lock:
            if self._executor is None or generation != self._generation:
                return
            ex, self._executor = self._executor, None
        if kill:
            stop_workers(ex)
        else:
            ex.shutdown(wait=False, cancel_futures=True)

    def label(self, task: LabelTask, settings: LabelSettings) -> LabelRecord:
        """Label one structure in a worker process.

        A calculation still running ``settings.timeout_s + KILL_GRACE_S`` seconds after it
        started (the SCF's own deadline normally stops it first) has its workers killed
        and is recorded as a timeout; the other calculations then in flight raise
        :class:`WorkerLost`, as does any whose worker dies.
        """
        executor, generation = self._get()
        try:
            future = executor.submit(run_one, label_structure, task, settings, self.threads)
        except BrokenProcessPool:
            self._discard(generation, kill=False)
            raise WorkerLost("labelling worker pool was broken; retry") from None
        try:
            return future.result(timeout=settings.timeout_s + KILL_GRACE_S)
        except FutureTimeout:
            self._discard(generation, kill=True)
            return timed_out_label(task, settings, settings.timeout_s + KILL_GRACE_S)
        except BrokenProcessPool:
            self._discard(generation, kill=False)
            raise WorkerLost(f"labelling worker died under structure {task.structure_id}") from None

    def close(self) -> None:
        """Stop the worker processes (waits for none); calculations in flight end with
        :class:`WorkerLost` and no new one starts."""
        with self._lock:
            self._closed = True
            ex, self._executor = self._executor, None
        if ex is not None:
            stop_workers(ex)

    def __enter__(self) -> LabelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
