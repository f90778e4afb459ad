"""Start and stop the wire-protocol test server from the tests (see wire_server.py)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

SERVER_SCRIPT = Path(__file__).with_name("wire_server.py")


def wire_python() -> str | None:
    """Interpreter of the mongoeco venv: ALOOP_TEST_WIRE_PYTHON, else ./.venv-wire if present."""
    explicit = os.environ.get("ALOOP_TEST_WIRE_PYTHON")
    if explicit:
        return explicit
    local = Path(__file__).resolve().parents[2] / ".venv-wire" / "bin" / "python"
    return str(local) if local.exists() else None


class WireServer:
    """A running wire server; ``uri`` connects to it (with credentials when auth is on)."""

    def __init__(self, workdir: Path, user: str | None = None, password: str | None = None):
        python = wire_python()
        if python is None:
            raise RuntimeError("no mongoeco environment (set ALOOP_TEST_WIRE_PYTHON)")
        self.port_file = workdir / "wire.port"
        self.log = workdir / "wire.log"
        cmd = [
            python,
            str(SERVER_SCRIPT),
            "--db",
            str(workdir / "wire.sqlite"),
            "--port-file",
            str(self.port_file),
        ]
        if user:
            cmd += ["--user", user, "--password", password or ""]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"wire server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text())
        self.user, self.password = user, password

    def uri(self, db: str = "aloop_test", password: str | None = None) -> str:
        """A mongodb:// URI for this server (``password`` overrides the right one)."""
        if self.user:
            pw = self.password if password is None else password
            # SCRAM-SHA-256 named: mongoeco 4.11 does not advertise its mechanisms, and
            # pymongo's fallback (SCRAM-SHA-1) fails there; a real mongod negotiates.
            return (
                f"mongodb://{self.user}:{pw}@127.0.0.1:{self.port}/{db}"
                "?authSource=admin&authMechanism=SCRAM-SHA-256"
            )
        return f"mongodb://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
