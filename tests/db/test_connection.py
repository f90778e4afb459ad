"""Connecting: URI schemes, clear errors, and the embedded store shared between processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from ase.build import molecule

from aloop.records import StructureRecord
from aloop.vocabulary import Origin
from db import campaigns, connection, structures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast_naming_host_not_password():
    port = _free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(connection.DatabaseUnavailable) as info:
        connection.connect(f"mongodb://alice:s3cret-pw@127.0.0.1:{port}/aloop")
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cret-pw" not in message and "alice:***@" in message
    assert elapsed < 10


def test_unknown_scheme_is_refused():
    with pytest.raises(connection.InvalidDatabaseUri, match="unknown database URI scheme"):
        connection.connect("postgres://localhost/aloop")


def test_default_is_the_embedded_store_in_the_data_dir(isolated_env):
    target = connection.parse_uri(None)
    assert target.kind == "embedded"
    assert target.path == isolated_env / "aloop-data" / "db"


def test_embedded_store_is_file_backed_and_persists(tmp_path):
    uri = f"embedded://{tmp_path / 'store'}"
    connection.connect(uri)
    c, _ = campaigns.get_or_create_campaign("persist", {"campaign": "persist"}, "p" * 64)
    structures.insert_structures(
        c.id, [StructureRecord.from_atoms(molecule("H2O"), "w", Origin.INITIAL)]
    )
    connection.disconnect()
    assert any((tmp_path / "store").iterdir())
    connection.connect(uri)
    try:
        assert [r["structures"] for r in campaigns.list_campaigns()] == [1]
    finally:
        connection.disconnect()


READER = textwrap.dedent(
    """
    import sys, time
    from db import campaigns, connection
    connection.connect(sys.argv[1])
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        rows = campaigns.list_campaigns()
        n = rows[0]["structures"] if rows else 0
        if not seen or seen[-1] != n:
            seen.append(n)
            print(n, flush=True)
        if n >= 20:
            break
        time.sleep(0.05)
    """
)


def test_second_process_sees_writes_on_the_embedded_store(tmp_path):
    """A reader process (like the dashboard) watches a writer that keeps its store open."""
    uri = f"embedded://{tmp_path / 'shared'}"
    connection.connect(uri)
    try:
        c, _ = campaigns.get_or_create_campaign("live", {"campaign": "live"}, "l" * 64)
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, uri],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(__import__("pathlib").Path.cwd()),
        )
        rng = np.random.default_rng(0)
        for _ in range(4):
            frames = []
            for _ in range(5):
                a = molecule("H2O")
                a.positions += rng.normal(scale=0.05, size=(3, 3))
                frames.append(StructureRecord.from_atoms(a, "w", Origin.MD))
            structures.insert_structures(c.id, frames)
            time.sleep(0.3)
        out, _ = reader.communicate(timeout=90)
    finally:
        connection.disconnect()
    counts = [int(x) for x in out.split()]
    assert counts[-1] == 20
    assert counts == sorted(counts)
