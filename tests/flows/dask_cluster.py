"""Dask for the labelling tests: the extra's presence (a failure where it is required) and
an external cluster, ``dask scheduler`` plus ``dask worker`` processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_dask() -> None:
    """Skip without the ``dask`` extra; fail instead under ALOOP_REQUIRE_DASK=1 (make test,
    which installs the extra, so a missing one is a broken environment, not a skip)."""
    try:
        import distributed  # noqa: F401
        import prefect_dask  # noqa: F401
    except ImportError as exc:
        if os.environ.get("ALOOP_REQUIRE_DASK") == "1":
            pytest.fail(f"ALOOP_REQUIRE_DASK=1 but the dask extra is missing: {exc}")
        pytest.skip(f"the dask extra is not installed: {exc}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``dask ARGS`` in its own process group (its worker processes go with it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dask")), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    """End a process group this module started: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextmanager
def external_cluster(env: dict, logs: Path, workers: int = 2) -> Iterator[str]:
    """A scheduler and ``workers`` single-threaded workers on 127.0.0.1; yields the
    scheduler's address once every worker has joined, and stops them all afterwards."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    env = {**env, "PYTHONPATH": str(ROOT)}
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        scheduler = _dask(
            ["scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
            env,
            logs / "scheduler.log",
        )
        stack.callback(_stop, scheduler)
        for i in range(workers):
            worker = _dask(
                ["worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                env,
                logs / f"worker{i}.log",
            )
            stack.callback(_stop, worker)
        deadline = time.monotonic() + 120
        with Client(address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
        yield address


def executed_per_worker(address: str) -> dict[str, int]:
    """How many tasks each worker of the cluster at ``address`` has run."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)
