"""A temporary Prefect API server for ``aloop run``, in a session of its own.

A terminal's Ctrl-C signals its whole foreground process group. Prefect's own temporary
server is a child in that group, so Ctrl-C killed it and the flow then retried the dead
API for a minute before failing. This one runs in a session of its own: aloop stops it
when the run ends, however the run ends, and the kernel stops it should aloop itself be
killed (``PR_SET_PDEATHSIG`` on Linux).

It is started before Prefect is imported in this process, so the settings Prefect reads
once at import already name it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from aloop.errors import InfrastructureError

#: Seconds a stopping server is given before it is killed.
_STOP_GRACE_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies (Linux; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start(port: int) -> subprocess.Popen:
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.submodule_search_locations
    app_dir = Path(next(iter(spec.submodule_search_locations))).parent
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory"]
    command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # the terminal's Ctrl-C is aloop's to handle, not its
        preexec_fn=_die_with_parent,
    )


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(proc: subprocess.Popen) -> None:
    """Stop the server: SIGTERM, then SIGKILL after a grace period; always reaped."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_temporary_api(timeout_s: float) -> str:
    """Start a Prefect API server that lives until this process exits; returns its URL.

    It is stopped at exit after Prefect's own exit handlers (registered later, run
    earlier) have sent what they still hold.

    Raises
    ------
    InfrastructureError
        The server did not answer within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        port = _free_port()
        proc = _start(port)
        try:
            url = _wait_healthy(proc, f"http://127.0.0.1:{port}/api", deadline, timeout_s)
        except BaseException:
            stop(proc)
            raise
        if url is not None:
            atexit.register(stop, proc)
            return url


def _wait_healthy(
    proc: subprocess.Popen, url: str, deadline: float, timeout_s: float
) -> str | None:
    """``url`` once the server answers; None when its port was taken (try another)."""
    while proc.poll() is None:
        if _healthy(url):
            return url
        if time.monotonic() > deadline:
            raise InfrastructureError(
                f"the temporary Prefect API server did not start within {timeout_s:g} s "
                "(raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set "
                "PREFECT_API_URL to a running server)"
            )
        time.sleep(0.2)
    if proc.returncode == 3 and time.monotonic() < deadline:  # uvicorn: port in use
        return None
    raise InfrastructureError(
        f"the temporary Prefect API server exited with code {proc.returncode}"
    )
