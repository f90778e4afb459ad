"""Database fixtures: every db test runs on the in-memory store and on a wire server.

The wire leg talks to a server over the real MongoDB wire protocol: ALOOP_TEST_MONGO_URI
when set (any real MongoDB), otherwise mongoeco's proxy started here from the Python 3.13
venv (.venv-wire, or ALOOP_TEST_WIRE_PYTHON). Without either it is skipped, unless
ALOOP_REQUIRE_WIRE=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid

import pytest

from db import connection
from tests.support.wire import WireServer, wire_python

BACKENDS = ["memory", "wire"]


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory):
    """A wire-protocol server for the whole session (None when a real URI is given)."""
    if os.environ.get("ALOOP_TEST_MONGO_URI"):
        yield None
        return
    if wire_python() is None:
        if os.environ.get("ALOOP_REQUIRE_WIRE") == "1":
            pytest.fail("ALOOP_REQUIRE_WIRE=1 but no mongoeco environment was found")
        pytest.skip("no wire server: set ALOOP_TEST_MONGO_URI or create .venv-wire")
    server = WireServer(tmp_path_factory.mktemp("wire"))
    yield server
    server.stop()


def wire_uri(server: WireServer | None, db_name: str) -> str:
    """URI of a fresh database on the wire backend."""
    base = os.environ.get("ALOOP_TEST_MONGO_URI")
    if base:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(base)
        return urlunsplit(parts._replace(path="/" + db_name))
    assert server is not None
    return server.uri(db_name)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Connect the documents to a fresh database on each backend; dropped afterwards."""
    name = f"aloop_test_{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        uri = f"memory://{name}"
    else:
        uri = wire_uri(request.getfixturevalue("wire_server"), name)
    target = connection.connect(uri)
    yield target
    connection.database().client.drop_database(target.db_name)
    connection.disconnect()
