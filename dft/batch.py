"""Label many structures with W worker processes x T threads each.

Results reach the caller (``on_result``) as each calculation finishes, so a crash loses
at most the calculations in flight. Structures already labelled at the same settings hash
are skipped by the caller passing them in ``skip``. Each worker process lives for the
whole batch (PySCF imports once); a worker that overruns its wall-clock limit by a grace
period is killed and its structure recorded as ``timeout``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aloop.records import LabelRecord
from dft.label import label_structure

if TYPE_CHECKING:
    from ase import Atoms

    from dft.settings import LabelSettings

log = logging.getLogger(__name__)

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


@dataclass
class Progress:
    """Where a batch stands; passed to ``on_progress`` after every result."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    started: float = 0.0

    @property
    def rate(self) -> float:
        """Labels per second so far."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate (None before the first result)."""
        left = self.total - self.done - self.skipped
        return left / self.rate if self.rate > 0 else None

    def line(self) -> str:
        """A one-line progress report."""
        eta = f"{self.eta_s:.0f} s" if self.eta_s is not None else "?"
        return (
            f"labelled {self.done}/{self.total - self.skipped} ({self.failed} failed, "
            f"{self.skipped} already done), {self.rate * 60:.1f}/min, ETA {eta}"
        )


def default_layout(cores: int | None = None) -> tuple[int, int]:
    """(workers, threads) for this machine: one single-threaded worker per core.

    Measured in benchmarks/label_bench.py: for molecules of MD17 size, process
    parallelism beats OpenMP threads inside PySCF (see benchmarks/README.md).
    """
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores), 1


def _init_worker(threads: int) -> None:
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
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _ready() -> None:
    """A no-op task: returns once a worker process is up and initialised."""


def _run_one(
    work: Callable[..., LabelRecord], task: LabelTask, settings: LabelSettings, threads: int
) -> LabelRecord:
    return work(
        task.structure_id,
        task.atoms,
        settings,
        charge=task.charge,
        multiplicity=task.multiplicity,
        threads=threads,
    )


def label_batch(
    tasks: Sequence[LabelTask],
    settings: LabelSettings,
    *,
    workers: int | None = None,
    threads: int | None = None,
    skip: Iterable[str] = (),
    on_result: Callable[[LabelRecord], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    work: Callable[..., LabelRecord] = label_structure,
) -> list[LabelRecord]:
    """Label ``tasks`` in parallel and return the new records (completion order).

    Parameters
    ----------
    tasks
        Structures to label.
    settings
        Labelling settings; ``settings.timeout_s`` bounds each calculation.
    workers, threads
        Processes and OpenMP threads per process (``workers * threads`` should not
        exceed the cores); default from :func:`default_layout`.
    skip
        Structure ids already labelled at this settings hash: not recomputed.
    on_result
        Called in this process with each record as soon as it exists (persist it here).
    on_progress
        Called after each record with a :class:`Progress`; default logs a line.
    work
        The per-structure function (module-level, picklable); tests substitute it.
    """
    skip = set(skip)
    todo = [t for t in tasks if t.structure_id not in skip]
    default_w, default_t = default_layout()
    workers = max(1, min(workers or default_w, len(todo) or 1))
    threads = threads or default_t
    progress = Progress(total=len(tasks), skipped=len(tasks) - len(todo), started=time.monotonic())
    report = on_progress or (lambda p: log.info(p.line()))
    results: list[LabelRecord] = []

    def deliver(rec: LabelRecord) -> None:
        results.append(rec)
        progress.done += 1
        progress.failed += rec.status != "ok"
        if on_result is not None:
            on_result(rec)
        report(progress)

    queue = list(reversed(todo))
    solo: list[LabelTask] = []  # suspects of a worker death, run one at a time
    solo_futures: set[Future] = set()
    crashes: dict[str, int] = {}
    ctx = mp.get_context("spawn")  # torch may be loaded here; forking it is unsafe
    while queue or solo:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            # Start the workers (spawn + imports) before any task's clock starts.
            for ready in [pool.submit(_ready) for _ in range(workers)]:
                try:
                    ready.result()
                except Exception as exc:  # an environment problem, not a label failure
                    raise RuntimeError(f"labelling workers failed to start: {exc}") from exc
            running: dict[Future, tuple[LabelTask, float]] = {}
            killed = False
            while (queue or solo or running) and not killed:
                _submit(
                    queue,
                    solo,
                    running,
                    workers,
                    solo_futures,
                    lambda t, p=pool: p.submit(_run_one, work, t, settings, threads),
                )
                finished, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task, _started = running.pop(fut)
                    try:
                        deliver(fut.result())
                    except BrokenProcessPool:
                        # A worker died (segfault, out of memory). With several tasks in
                        # flight the culprit is unknown: each is rerun alone, where a death
                        # is its own; a task that dies alone twice is recorded as failed.
                        killed = True
                        if fut in solo_futures:
                            crashes[task.structure_id] = crashes.get(task.structure_id, 0) + 1
                        if crashes.get(task.structure_id, 0) >= MAX_WORKER_CRASHES:
                            deliver(
                                _failure(
                                    task,
                                    settings,
                                    "worker process died "
                                    f"{MAX_WORKER_CRASHES} times (out of memory?)",
                                )
                            )
                        else:
                            solo.append(task)
                    except Exception as exc:  # the worker function itself failed
                        deliver(_failure(task, settings, f"{type(exc).__name__}: {exc}"))
                limit = settings.timeout_s + KILL_GRACE_S
                overdue = [f for f, (_, t0) in running.items() if time.monotonic() - t0 > limit]
                if overdue:
                    for fut in overdue:
                        task, t0 = running.pop(fut)
                        deliver(
                            _failure(
                                task,
                                settings,
                                f"timeout after {settings.timeout_s:g} s (killed)",
                                wall=time.monotonic() - t0,
                            )
                        )
                    # Requeue the innocent ones; their work in flight is lost.
                    queue.extend(task for task, _ in running.values())
                    running.clear()
                    for proc in list(getattr(pool, "_processes", {}).values()):
                        proc.kill()
                    killed = True
            if killed:
                pool.shutdown(wait=False, cancel_futures=True)
    return results


def _submit(queue, solo, running, workers, solo_futures, submit) -> None:
    """Fill free worker slots; a suspect (``solo``) task only ever runs by itself."""
    if solo_futures & running.keys():
        return
    if solo:
        if not running:
            task = solo.pop()
            fut = submit(task)
            solo_futures.add(fut)
            running[fut] = (task, time.monotonic())
        return
    while queue and len(running) < workers:
        task = queue.pop()
        running[submit(task)] = (task, time.monotonic())


def _failure(
    task: LabelTask, settings: LabelSettings, error: str, wall: float | None = None
) -> LabelRecord:
    return LabelRecord(
        structure_id=task.structure_id,
        settings_hash=settings.settings_hash(),
        settings=settings.result_fields(),
        status="failed",
        error=error,
        wall_time=None if wall is None else round(wall, 3),
        host=socket.gethostname(),
        code_versions={"pyscf": settings.pyscf_version},
    )
