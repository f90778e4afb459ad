"""Label many structures with W worker processes x T threads each.

Results reach the caller (``on_result``) as each calculation finishes, so a crash loses
at most the calculations in flight. Structures already labelled at the same settings hash
are skipped by the caller passing them in ``skip``. Each worker process lives for the
whole batch (PySCF imports once); a worker that overruns its wall-clock limit by a grace
period is killed and its structure recorded as ``timeout``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aloop.vocabulary import LabelStatus
from dft.label import label_structure
from dft.worker import (
    KILL_GRACE_S,
    MAX_WORKER_CRASHES,
    CrashSuspects,
    LabelTask,
    default_layout,
    failed_label,
    run_one,
    start_workers,
    stop_workers,
    timed_out_label,
)

if TYPE_CHECKING:
    from aloop.records import LabelRecord
    from dft.settings import LabelSettings

__all__ = [
    "KILL_GRACE_S",
    "MAX_WORKER_CRASHES",
    "LabelTask",
    "Progress",
    "default_layout",
    "label_batch",
]

log = logging.getLogger(__name__)


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
    progress = Progress(total=len(tasks), skipped=len(tasks) - len(todo), started=time.monotonic())
    report = on_progress or (lambda p: log.info(p.line()))
    results: list[LabelRecord] = []

    def deliver(rec: LabelRecord) -> None:
        results.append(rec)
        progress.done += 1
        progress.failed += rec.status != LabelStatus.OK
        if on_result is not None:
            on_result(rec)
        report(progress)

    batch = _Batch(
        todo,
        settings,
        workers=max(1, min(workers or default_w, len(todo) or 1)),
        threads=threads or default_t,
        work=work,
        deliver=deliver,
    )
    while batch.waiting:
        batch.run_pool()
    return results


class _Batch:
    """The work of one :func:`label_batch` call: structures waiting, suspects of a
    worker's death (each run alone, see :class:`~dft.worker.CrashSuspects`) and the
    calculations in flight on the current pool."""

    def __init__(
        self,
        todo: list[LabelTask],
        settings: LabelSettings,
        *,
        workers: int,
        threads: int,
        work: Callable[..., LabelRecord],
        deliver: Callable[[LabelRecord], None],
    ) -> None:
        self.queue = list(reversed(todo))
        self.solo: list[LabelTask] = []
        self.solo_futures: set[Future] = set()
        self.running: dict[Future, tuple[LabelTask, float]] = {}
        self.suspects = CrashSuspects()
        self.settings = settings
        self.workers = workers
        self.threads = threads
        self.work = work
        self.deliver = deliver

    @property
    def waiting(self) -> bool:
        """Whether structures wait for a worker."""
        return bool(self.queue or self.solo)

    def run_pool(self) -> None:
        """Start a pool and label on it until the work is done or the pool is killed (a
        worker died or overran its limit); what is left waits for the next pool."""
        pool = start_workers(self.workers, self.threads)
        killed = False
        try:
            self.running = {}
            while (self.waiting or self.running) and not killed:
                self._submit(pool)
                finished, _ = wait(self.running, timeout=1.0, return_when=FIRST_COMPLETED)
                killed = self._collect(finished)
                killed = self._kill_overdue(pool) or killed
        except BaseException:  # Ctrl-C or an error: nothing waits for calculations
            killed = True
            raise
        finally:
            if killed:
                stop_workers(pool)
            else:
                pool.shutdown()

    def _submit(self, pool: ProcessPoolExecutor) -> None:
        """Fill free worker slots; a suspect only ever runs by itself."""
        if self.solo_futures & self.running.keys():
            return
        if self.solo:
            if not self.running:
                task = self.solo.pop()
                fut = self._start(pool, task)
                self.solo_futures.add(fut)
            return
        while self.queue and len(self.running) < self.workers:
            self._start(pool, self.queue.pop())

    def _start(self, pool: ProcessPoolExecutor, task: LabelTask) -> Future:
        fut = pool.submit(run_one, self.work, task, self.settings, self.threads)
        self.running[fut] = (task, time.monotonic())
        return fut

    def _collect(self, finished: Iterable[Future]) -> bool:
        """Deliver the finished calculations; True when a worker died under one."""
        died = False
        for fut in finished:
            task, _started = self.running.pop(fut)
            try:
                self.deliver(fut.result())
            except BrokenProcessPool:
                died = True
                if self.suspects.died(task.structure_id, alone=fut in self.solo_futures):
                    self.deliver(self.suspects.failure(task, self.settings))
                else:
                    self.solo.append(task)
            except Exception as exc:  # the worker function itself failed
                self.deliver(failed_label(task, self.settings, f"{type(exc).__name__}: {exc}"))
        return died

    def _kill_overdue(self, pool: ProcessPoolExecutor) -> bool:
        """Record calculations past their limit as timeouts and kill the workers; True
        when it did. The innocent calculations in flight are lost and wait again."""
        limit = self.settings.timeout_s + KILL_GRACE_S
        now = time.monotonic()
        overdue = [f for f, (_, t0) in self.running.items() if now - t0 > limit]
        if not overdue:
            return False
        for fut in overdue:
            task, t0 = self.running.pop(fut)
            self.deliver(timed_out_label(task, self.settings, time.monotonic() - t0))
        self.queue.extend(task for task, _ in self.running.values())
        self.running.clear()
        stop_workers(pool)
        return True
