"""Malformed database URIs through the real CLI: exit 2, one stderr line, no traceback,
the password never shown; and read-only commands on a mistyped embedded path."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import dns.message
import dns.rcode
import dns.resolver
import pytest
from typer.testing import CliRunner

from aloop.cli import app
from aloop.errors import UserError
from db import connection

runner = CliRunner()

PW = "S3cretPw"

#: (category, URI, words the message must contain). Every password is PW or holds it.
MALFORMED = [
    ("bad IPv6", f"mongodb://al:{PW}@[::1/aloop", "IPv6"),
    ("bad IPv6", f"mongodb://al:{PW}@[zz::1]:27017/aloop", "IPv6"),
    ("bad IPv6", f"mongodb://al:{PW}@::1/aloop", "IPv6"),
    ("unescaped %", f"mongodb://al:{PW}%@db.example.org/aloop", "escaped"),
    ("unescaped %", f"mongodb://al:{PW}@db.example.org/aloop?appName=a%zz", "escaped"),
    ("unescaped @", f"mongodb://al:{PW}@x@db.example.org/aloop", "escaped"),
    ("unescaped ?", f"mongodb://al:{PW}?x=1@db.example.org/aloop", "invalid"),
    ("port out of range", f"mongodb://al:{PW}@db.example.org:99999/aloop", "port"),
    ("port out of range", f"mongodb://al:{PW}@db.example.org:0/aloop", "port"),
    ("port out of range", f"mongodb://al:{PW}@db.example.org:27o17/aloop", "port"),
    ("port out of range", f"mongodb://al:{PW}@db.example.org:1:2/aloop", "invalid"),
    ("unknown option", f"mongodb://al:{PW}@db.example.org/aloop?retryWrite=true", "retryWrite"),
    ("unknown option", f"mongodb://al:{PW}@db.example.org/aloop?tls=maybe", "tls"),
    ("unknown option", f"mongodb://al:{PW}@db.example.org/aloop?authMechanism=NO", "authmech"),
    ("unknown option", f"mongodb://al:{PW}@db.example.org/aloop?w=1&w=2", "duplicate"),
    ("unknown option", f"mongodb://al:{PW}@db.example.org/aloop?authSource=", "authSource"),
    ("unknown option", f"mongodb://al:{PW}@db.example.org/aloop?ssl", "key=value"),
    ("empty host", f"mongodb://al:{PW}@/aloop", "host"),
    ("empty host", "mongodb://", "host"),
    ("empty host", f"mongodb://al:{PW}@db.example.org,/aloop", "host"),
    ("bad host", f"mongodb://al:{PW}@db example.org/aloop", "host"),
    ("bad host", f"mongodb://al:{PW}@300.1.2.3/aloop", "host"),
    ("bad database", f"mongodb://al:{PW}@db.example.org/al.oop", "database"),
    ("bad database", f"mongodb://al:{PW}@db.example.org/al oop", "database"),
    ("bad user", f"mongodb://:{PW}@db.example.org/aloop", "user"),
    ("unresolvable SRV", f"mongodb+srv://al:{PW}@nosuch.example.invalid/aloop", "SRV"),
    ("unresolvable SRV", f"mongodb+srv://al:{PW}@localhost/aloop", "SRV"),
    ("bad SRV", f"mongodb+srv://al:{PW}@c.example.org:27017/aloop", "port"),
    ("bad SRV", f"mongodb+srv://al:{PW}@a.example.org,b.example.org/aloop", "one"),
    ("missing TLS file", f"mongodb://al:{PW}@db.example.org/?tls=true&tlsCAFile=/no.pem", "tls"),
    ("unknown scheme", f"mongdb://al:{PW}@db.example.org/aloop", "scheme"),
    ("unknown scheme", f"postgres://al:{PW}@db.example.org/aloop", "scheme"),
]


def _loopback_resolver(monkeypatch, answer: bool) -> socket.socket:
    """DNS on 127.0.0.1 only: a UDP server that says "no such name" to every query
    (``answer``) or never replies, so no lookup leaves this machine."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)

    def serve() -> None:
        while sock.fileno() != -1:
            try:
                data, peer = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            reply = dns.message.make_response(dns.message.from_wire(data))
            reply.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(reply.to_wire(), peer)

    if answer:
        threading.Thread(target=serve, daemon=True).start()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = sock.getsockname()[1]
    monkeypatch.setattr(dns.resolver, "default_resolver", resolver)
    return sock


@pytest.fixture(autouse=True)
def no_dns_beyond_loopback(monkeypatch):
    """Every SRV lookup of these tests is answered on loopback."""
    sock = _loopback_resolver(monkeypatch, answer=True)
    yield
    sock.close()


@pytest.mark.parametrize(("category", "uri", "words"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_uri_exits_2_with_one_masked_line(category, uri, words):
    start = time.monotonic()
    result = runner.invoke(app, ["status", "--db", uri])
    elapsed = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (category, result.output, result.exception)
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output and PW not in result.output
    assert words.lower() in lines[0].lower(), lines[0]
    assert elapsed < 10


def test_malformed_uri_in_the_environment_and_in_a_real_process(tmp_path):
    """ALOOP_DB_URI goes through the same check; the process prints nothing else."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ALOOP_DATA_DIR": str(tmp_path)}
    for uri in (MALFORMED[0][1], MALFORMED[14][1]):
        proc = subprocess.run(
            [sys.executable, "-m", "aloop", "status"],
            env={**env, "ALOOP_DB_URI": uri},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert PW not in proc.stderr + proc.stdout


def test_srv_lookup_that_times_out_is_reported_within_the_timeout(monkeypatch):
    """No DNS server answers: reported (exit 1, infrastructure) within a few seconds."""
    silent = _loopback_resolver(monkeypatch, answer=False)
    start = time.monotonic()
    with pytest.raises(connection.DatabaseUnavailable, match="SRV") as info:
        connection.connect(f"mongodb+srv://al:{PW}@cluster0.example.org/aloop")
    assert time.monotonic() - start < connection.SERVER_TIMEOUT_MS / 1000 + 4
    assert PW not in str(info.value)
    silent.close()


def test_a_valid_uri_is_not_refused_by_the_syntax_check():
    for uri in (
        f"mongodb://al:{PW}@[::1]:27017/aloop?authSource=admin",
        "mongodb://db-1.example.org:27017,db_2:27018/aloop?replicaSet=rs0",
        "mongodb://%2Ftmp%2Fmongodb-27017.sock/aloop",
        "mongodb://127.0.0.1",
    ):
        target = connection.parse_uri(uri)
        assert target.kind == "mongodb" and target.db_name == "aloop"


def test_unknown_scheme_is_a_user_error():
    with pytest.raises(UserError, match="unknown database URI scheme"):
        connection.parse_uri("postgres://localhost/aloop")


@pytest.mark.parametrize("command", [["status"], ["export", "anything", "--out", "OUT"]])
def test_read_only_commands_refuse_a_missing_embedded_store(tmp_path, command):
    missing = tmp_path / "no-such-store"
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    result = runner.invoke(app, [*args, "--db", f"embedded://{missing}"])
    assert result.exit_code == 2, result.output
    assert f"no embedded store at {missing}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_read_only_commands_refuse_a_directory_that_holds_no_store(tmp_path):
    result = runner.invoke(app, ["status", "--db", f"embedded://{tmp_path}"])
    assert result.exit_code == 2, result.output
    assert "no embedded store" in result.stderr
    assert not (tmp_path / connection.DEFAULT_DB_NAME).exists()


def test_status_reads_an_existing_embedded_store(tmp_path):
    uri = f"embedded://{tmp_path / 'db'}"
    connection.connect(uri)  # what `aloop run` does: creates the store
    connection.disconnect()
    result = runner.invoke(app, ["status", "--db", uri])
    assert result.exit_code == 0, result.output


def test_check_reachable_fails_fast_on_an_unreachable_server():
    start = time.monotonic()
    with pytest.raises(connection.DatabaseUnavailable, match=r"127\.0\.0\.1:9"):
        connection.check_reachable(f"mongodb://al:{PW}@127.0.0.1:9/aloop")
    assert time.monotonic() - start < connection.SERVER_TIMEOUT_MS / 1000 + 3
    assert connection.current_target() is None
    with pytest.raises(UserError):
        connection.check_reachable(MALFORMED[0][1])


def test_check_reachable_accepts_an_embedded_path_it_can_create(tmp_path):
    target = connection.check_reachable(f"embedded://{tmp_path / 'new'}")
    assert target.kind == "embedded"
    (tmp_path / "file").write_text("x")
    with pytest.raises(connection.DatabaseUnavailable):
        connection.check_reachable(f"embedded://{tmp_path / 'file' / 'db'}")
