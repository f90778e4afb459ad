"""What every labelling engine runs in and around its worker processes.

The batch labeller (:mod:`dft.batch`), the persistent pool (:mod:`dft.pool`) and the
Prefect labeller (:mod:`flows.labelling`) share these: the task a worker receives, how a
worker process is started and runs one structure, the record of a label that never
finished, and the rule that decides when a structure that kills its worker has failed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aloop.records import LabelRecord
from aloop.vocabulary import LabelStatus

if TYPE_CHECKING:
    from ase import Atoms

    from dft.settings import LabelSettings

#: Extra seconds past ``timeout_s`` before a worker is killed from outside: the SCF
#: callback stops cooperative calculations at the limit; this catches stuck gradients.
KILL_GRACE_S = 30.0
#: A structure whose worker process dies this many times, running alone, has failed.
MAX_WORKER_CRASHES = 2


@dataclass
class LabelTask:
    """One structure to label, as plain picklable data."""

    structure_id: str
    atoms: Atoms
    charge: int = 0
    multiplicity: int = 1


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one (Linux),
    else every core of the machine (macOS, Windows)."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python >= 3.13
    if process_cpu_count is not None:
        return process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_layout(cores: int | None = None) -> tuple[int, int]:
    """(workers, threads) for this machine: one single-threaded worker per core.

    Measured in benchmarks/label_bench.py: for molecules of MD17 size, process
    parallelism beats OpenMP threads inside PySCF (see benchmarks/README.md).
    """
    cores = cores or available_cores()
    return max(1, cores), 1


def init_worker(threads: int) -> None:
    """Initialise a labelling worker process: ``threads`` OpenMP threads for PySCF, one
    for the BLAS libraries, Ctrl-C left to the parent, and an exit when the process that
    started it is gone."""
    # A terminal's Ctrl-C reaches the whole process group. The parent decides what an
    # interrupt means and kills its workers (stop_workers); a worker that took it itself
    # would die mid-queue-read with a traceback on the user's terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Before numpy/pyscf allocate their thread pools in this process.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    from pyscf import lib

    lib.num_threads(threads)
    _exit_with_parent()


def _exit_with_parent() -> None:
    """End this worker when the process that started it is gone.

    A parent killed with SIGKILL cannot stop its workers; without this they would finish
    their calculation and then idle forever, and the resumed run would start a second
    pool beside them. (PR_SET_PDEATHSIG is tied to the thread that spawned the worker,
    which may be a short-lived thread here, so the parent pid is watched instead.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def ready() -> None:
    """A no-op task: returns once a worker process is up and initialised."""


def start_workers(workers: int, threads: int) -> ProcessPoolExecutor:
    """``workers`` spawned labelling processes, every one started (spawn and imports
    done) before any calculation's clock runs.

    Raises
    ------
    RuntimeError
        A worker failed to start: an environment problem, not a label failure.
    """
    ctx = mp.get_context("spawn")  # torch may be loaded here; forking it is unsafe
    executor = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=init_worker, initargs=(threads,)
    )
    try:
        for started in [executor.submit(ready) for _ in range(workers)]:
            started.result()
    except Exception as exc:
        executor.shutdown(wait=False, cancel_futures=True)
        raise RuntimeError(f"labelling workers failed to start: {exc}") from exc
    return executor


def worker_processes(executor: ProcessPoolExecutor) -> list:
    """The executor's live worker processes (a private attribute; empty if absent)."""
    return list((getattr(executor, "_processes", None) or {}).values())


def stop_workers(executor: ProcessPoolExecutor) -> None:
    """Shut ``executor`` down without waiting and kill its workers: calculations in flight
    end (their futures raise ``BrokenProcessPool``) and no queued one starts."""
    procs = worker_processes(executor)
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.kill()


def run_one(
    work: Callable[..., LabelRecord], task: LabelTask, settings: LabelSettings, threads: int
) -> LabelRecord:
    """Label ``task`` with ``work`` (:func:`dft.label.label_structure` or a stand-in)."""
    return work(
        task.structure_id,
        task.atoms,
        settings,
        charge=task.charge,
        multiplicity=task.multiplicity,
        threads=threads,
    )


def failed_label(
    task: LabelTask, settings: LabelSettings, error: str, wall: float | None = None
) -> LabelRecord:
    """The record of a calculation that produced no label of its own (killed, lost)."""
    return LabelRecord(
        structure_id=task.structure_id,
        settings_hash=settings.settings_hash(),
        settings=settings.result_fields(),
        status=LabelStatus.FAILED,
        error=error,
        wall_time=None if wall is None else round(wall, 3),
        host=socket.gethostname(),
        code_versions=settings.code_versions,
    )


def timed_out_label(task: LabelTask, settings: LabelSettings, wall: float) -> LabelRecord:
    """The record of a calculation killed from outside after its time limit."""
    return failed_label(task, settings, f"timeout after {settings.timeout_s:g} s (killed)", wall)


@dataclass
class CrashSuspects:
    """The crash-suspect rule, one for every engine.

    A worker's death takes every calculation in flight with it, so the culprit is
    unknown: each of them is a suspect and is rerun alone, where a death is its own. A
    structure whose worker dies under it :data:`MAX_WORKER_CRASHES` times alone has
    failed (it exhausts the memory, or crashes the library) and is recorded as such.
    """

    deaths: dict[str, int] = field(default_factory=dict)

    def died(self, structure_id: str, alone: bool) -> bool:
        """Count a worker's death under ``structure_id``; True once it has failed."""
        if alone:
            self.deaths[structure_id] = self.deaths.get(structure_id, 0) + 1
        return self.deaths.get(structure_id, 0) >= MAX_WORKER_CRASHES

    @staticmethod
    def failure(task: LabelTask, settings: LabelSettings, cause: str = "") -> LabelRecord:
        """The failed label of a structure that :meth:`died` too often."""
        detail = f": {cause}" if cause else ""
        return failed_label(
            task,
            settings,
            f"worker process died {MAX_WORKER_CRASHES} times running this structure alone "
            f"(out of memory?){detail}",
        )
