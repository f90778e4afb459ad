"""The dashboard served by `aloop dashboard` (a real subprocess) on a seeded database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from db import connection
from tests.dashboard.seed import seed_campaigns


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def seeded(tmp_path):
    """(db uri, {name: campaign}) with three campaigns of 12, 11 and 10 iterations."""
    uri = f"embedded://{tmp_path / 'db'}"
    connection.connect(uri)
    campaigns = seed_campaigns()
    connection.disconnect()
    return uri, campaigns


@pytest.fixture
def dashboard(seeded, tmp_path):
    """URL of a running `aloop dashboard` (refreshing every second) on the seeded store."""
    uri, _ = seeded
    port = _free_port()
    exe = shutil.which("aloop", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "aloop"]
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "dashboard", "--port", str(port), "--refresh", "1", "--db", uri],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail((tmp_path / "dashboard.log").read_text())
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("dashboard did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def browser():
    """Headless Debian chromium driven by Playwright (never a downloaded browser)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("ALOOP_REQUIRE_BROWSER") == "1":
            pytest.fail("ALOOP_REQUIRE_BROWSER=1 but chromium or playwright is missing")
        pytest.skip("no chromium/playwright: `make install-tools` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield b
        b.close()
