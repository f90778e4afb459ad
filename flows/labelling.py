"""Labelling fanned out as one Prefect task per structure.

Two task runners, chosen by the campaign's ``execution`` section:

- ``thread`` (local): a ThreadPoolTaskRunner with ``label_workers`` threads; each task
  hands its structure to a :class:`dft.pool.LabelPool` of as many single-threaded
  processes, so calculations run in parallel, isolated, with a hard time limit.
- ``dask``: prefect-dask's DaskTaskRunner, on the cluster at ``dask_address`` (a
  dask-jobqueue SLURMCluster's scheduler, for instance) or on a local cluster of
  ``label_workers`` single-threaded worker processes; each task computes on its worker.

Either way the runner's worker count is the concurrency limit, each structure is a task
run the Prefect UI shows, and the flow process stores each record as its task finishes.
A task is retried only for infrastructure errors (a lost worker); an SCF failure is a
record like any other and is never retried.

What a Dask worker receives is plain data: the task (its function importable by module
path), a :class:`dft.worker.LabelTask`, a :class:`dft.settings.LabelSettings` and a
thread count, plus the run contexts Prefect ships with every task so the worker can
report the task run. Those contexts are trimmed to ids and settings while tasks are
submitted (:func:`_as_shipped`): Prefect would otherwise pickle the campaign flow by
value, with the module state its body reads (the CLI's live display), the label stage's
task with its campaign-module hooks, and the stage's own arguments (the whole campaign
loop: committees, console, documents).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from prefect import Flow, Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.futures import as_completed

from dft.label import label_structure
from dft.pool import LabelPool, WorkerLost
from dft.worker import CrashSuspects, LabelTask, default_layout, run_one

if TYPE_CHECKING:
    from aloop.config import ExecutionConfig
    from aloop.records import LabelRecord
    from dft.settings import LabelSettings

#: The flow process's pool for the local runner; None elsewhere (a Dask worker computes
#: in its own process).
_POOL: LabelPool | None = None

#: Exceptions that mean "this structure keeps killing its worker": recorded as failed
#: labels once the task's retries are spent. Any other error is infrastructure and stops
#: the campaign, leaving the structure unlabelled for the next run.
_STRUCTURE_KILLS_WORKER = ("WorkerLost", "KilledWorker")


def label_job(job: LabelTask, settings: LabelSettings, threads: int = 1) -> LabelRecord:
    """Label one structure (never raises for a bad structure; see dft.label).

    In the flow process with the local runner, the calculation goes to the pool; on a Dask
    worker it runs in the worker's process with ``threads`` OpenMP threads.
    """
    pool = _POOL
    if pool is not None:
        return pool.label(job, settings)
    from pyscf import lib

    lib.num_threads(threads)
    return run_one(label_structure, job, settings, threads)


#: One Prefect task run per structure. Its function is a module attribute under its own
#: name, so workers import it rather than receive a by-value copy of it and its globals.
label_one = task(
    label_job,
    name="label-structure",
    task_run_name="label-{job.structure_id}",
    retries=2,
    retry_delay_seconds=1,
    cache_policy=NO_CACHE,
)


def _stays_on_the_flow_machine() -> None:
    """The function of the stand-ins for the flow and the stage task; never called."""
    raise RuntimeError("a stand-in of a campaign flow or stage is not run")


def _shipped_flow(flow: Flow) -> Flow:
    """The flow as a worker needs it: its name and result settings, none of its code
    (a flow's function pickles by value, with the module state its body reads)."""
    return Flow(
        fn=_stays_on_the_flow_machine,
        name=flow.name,
        version=flow.version,
        task_runner=flow.task_runner.duplicate(),
        log_prints=flow.log_prints,
        persist_result=flow.persist_result,
        result_storage=flow.result_storage,
        result_serializer=flow.result_serializer,
        validate_parameters=False,
    )


def _shipped_task(parent: Task) -> Task:
    """The enclosing stage task as a worker needs it: its name, none of its code (its
    function and retry condition would be imported on the worker, from the campaign's
    module, which a deployed flow loads from a file path that workers cannot import)."""
    return Task(fn=_stays_on_the_flow_machine, name=parent.name, cache_policy=NO_CACHE)


@contextmanager
def _as_shipped() -> Iterator[None]:
    """Submit tasks under run contexts that serialise to ids and settings only.

    The task runs stay children of the flow run and of the label stage's task run (the
    ids are kept); the flow and the stage task travel as stand-ins of the same names, and
    the stage's arguments not at all (a child task never reads its parent's arguments).
    """
    with ExitStack() as stack:
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None and flow_ctx.flow is not None:
            shipped = _shipped_flow(flow_ctx.flow)
            stack.enter_context(flow_ctx.model_copy(update={"flow": shipped}))
        task_ctx = TaskRunContext.get()
        if task_ctx is not None:
            update = {"task": _shipped_task(task_ctx.task), "parameters": {}}
            stack.enter_context(task_ctx.model_copy(update=update))
        yield


class PrefectLabeller:
    """Opens the configured task runner once per campaign run and labels batches on it."""

    def __init__(self, execution: ExecutionConfig) -> None:
        default_workers, default_threads = default_layout()
        self.kind = execution.task_runner
        self.address = execution.dask_address
        self.workers = execution.label_workers or default_workers
        self.threads = execution.label_threads or default_threads
        self.runner: Any = None

    def __enter__(self) -> PrefectLabeller:
        global _POOL
        if self.kind == "dask":
            from prefect_dask import DaskTaskRunner

            if self.address:
                self.runner = DaskTaskRunner(address=self.address)
            else:
                self.runner = DaskTaskRunner(
                    cluster_kwargs={
                        "n_workers": self.workers,
                        "threads_per_worker": 1,
                        "processes": True,
                        # No dashboard is served without bokeh; the scheduler's HTTP
                        # routes take a free loopback port rather than warn about 8787.
                        "dashboard_address": "127.0.0.1:0",
                    }
                )
        else:
            from prefect.task_runners import ThreadPoolTaskRunner

            self.runner = ThreadPoolTaskRunner(max_workers=self.workers)
            _POOL = LabelPool(self.workers, self.threads)
        self.runner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        global _POOL
        # The pool goes first: on Ctrl-C or an error, the runner's shutdown would
        # otherwise wait for every calculation in flight (up to the SCF time limit).
        # A closed pool stays in place until the runner is down, so a retry of a task in
        # flight fails fast (PoolClosed) rather than computing in this process.
        if _POOL is not None:
            _POOL.close()
        try:
            self.runner.__exit__(*exc)
        finally:
            _POOL = None

    def __call__(
        self,
        jobs: Sequence[tuple[LabelTask, LabelSettings]],
        on_record: Callable[[LabelRecord], None],
    ) -> None:
        """Submit every job; hand each record to ``on_record`` as its task finishes."""
        futures = {self._submit(label_one, *job): job for job in jobs}
        suspects = []
        for future in as_completed(list(futures)):
            try:
                rec = future.result()
            except Exception as exc:
                if type(exc).__name__ not in _STRUCTURE_KILLS_WORKER:
                    raise
                # A worker died with this structure in flight, but a death takes every
                # calculation in flight with it: the culprit is found by running alone.
                suspects.append(futures[future])
                continue
            on_record(rec)
        for job, settings in suspects:
            on_record(self._alone(job, settings))

    def _submit(self, label: Any, job: LabelTask, settings: LabelSettings) -> Any:
        """One task run; to another process (Dask) only plain data and trimmed contexts."""
        with _as_shipped() if self.kind == "dask" else nullcontext():
            return self.runner.submit(
                label, {"job": job, "settings": settings, "threads": self.threads}
            )

    def _alone(self, job: LabelTask, settings: LabelSettings) -> LabelRecord:
        """Label a suspect with nothing else in flight: a death now is its own."""
        suspects = CrashSuspects()
        while True:
            future = self._submit(label_one.with_options(retries=0), job, settings)
            try:
                return future.result()
            except Exception as exc:
                if type(exc).__name__ not in _STRUCTURE_KILLS_WORKER:
                    raise
                if suspects.died(job.structure_id, alone=True):
                    return suspects.failure(job, settings, str(exc))


__all__ = ["LabelPool", "PrefectLabeller", "WorkerLost", "label_job", "label_one"]
