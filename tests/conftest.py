"""Every test runs with its own data directory and no inherited database URI."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point ALOOP_DATA_DIR at a temp dir so no test touches the user's data."""
    monkeypatch.setenv("ALOOP_DATA_DIR", str(tmp_path / "aloop-data"))
    monkeypatch.delenv("ALOOP_DB_URI", raising=False)
    return tmp_path
