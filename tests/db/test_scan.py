"""db.scan: the direct read of the embedded store's files against its query engine.

Every test compares the direct path with the driver path on the same data, so a change
in litemongo that the layout checks miss shows up as a difference, not as a wrong count.
"""

from __future__ import annotations

import datetime
import sqlite3
import warnings
from pathlib import Path

import bson
import pytest
from bson import ObjectId

from db import connection
from db import scan as db_scan

CAMPAIGNS = [ObjectId() for _ in range(3)]
#: Queries of the shapes the export, copy and status use, plus the edge cases of matches().
QUERIES = [
    {},
    {"campaign": CAMPAIGNS[0]},
    {"campaign": CAMPAIGNS[1], "status": "ok"},
    {"system": {"$in": ["water-hot", "salt"]}},
    {"campaign": CAMPAIGNS[2], "$or": [{"origin": "rattled"}, {"iteration": 1}]},
    {"uncertainty.force_dev_max": 0.5},
    {"tags": "b"},  # equality against an array field matches any element
    {"status": "missing-everywhere"},
    {"campaign": ObjectId()},
]


def _documents(n: int = 1200) -> list[dict]:
    """Documents with the BSON types aloop stores; more than one 500-id lookup chunk."""
    when = datetime.datetime(2025, 1, 2, 3, 4, 5, 678000)
    docs = []
    for i in range(n):
        doc = {
            "_id": f"{i:06x}",
            "campaign": CAMPAIGNS[i % 3],
            "system": ("water", "water-hot", "salt")[i % 3],
            "origin": "rattled" if i % 5 == 0 else "md",
            "iteration": i % 4,
            "status": "ok" if i % 7 else "failed",
            "created_at": when + datetime.timedelta(seconds=i),
            "positions": bson.Binary(bytes(range(i % 256)) * 3),
            "tags": ["a", "b"] if i % 2 else ["c"],
        }
        if i % 3:  # some documents lack the nested field, as unlabelled structures do
            doc["uncertainty"] = {"force_dev_max": (i % 4) / 4, "committee": [ObjectId()]}
        docs.append(doc)
    return docs


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """An embedded store with a ``things`` collection; each test starts unwarned."""
    # The once-per-process memory is reset so each test sees its own first warning.
    monkeypatch.setattr(db_scan, "_warned", set())
    target = connection.connect(f"embedded://{tmp_path / 'db'}")
    connection.database()["things"].insert_many(_documents())
    yield target
    connection.disconnect()


def _no_driver(monkeypatch) -> None:
    """Make any read through the driver fail, to prove a result came from the file."""

    def refuse(alias: str = "default"):
        raise AssertionError("read through the driver, expected the direct path")

    monkeypatch.setattr(db_scan, "get_db", refuse)


def _everything(fast: bool) -> tuple[list, dict, list]:
    """What the three reads return over ``things``, on the path ``fast`` asks for."""
    b = db_scan.backend()
    scanned = [list(b.scan("things", q, fast=fast)) for q in QUERIES]
    ids = [f"{i:06x}" for i in range(0, 1300, 3)] + ["nope", "s:000001"]
    found = b.get_many("things", ids, fast=fast)
    counts = [
        b.count_by("things", key, match, fast=fast)
        for key, match in (
            ("campaign", None),
            ("campaign", {"status": "ok"}),
            ("uncertainty.force_dev_max", {"system": {"$in": ["water-hot"]}}),
            ("no_such_key", None),  # every document under None, as $group puts them
        )
    ]
    return scanned, found, counts


def _fallback_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, db_scan.ScanFallbackWarning)]


def test_direct_path_reads_what_the_driver_reads(embedded, monkeypatch):
    assert db_scan.version_understood(db_scan.installed_litemongo_version())
    assert db_scan.backend().direct
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slow = _everything(fast=False)
        with monkeypatch.context() as m:
            _no_driver(m)
            fast = _everything(fast=True)
    assert not _fallback_warnings(caught)
    assert fast == slow
    scanned, found, counts = fast
    assert [d["_id"] for d in scanned[0]] == [d["_id"] for d in _documents()]
    # Ids beyond the data and an already encoded key are not found.
    assert len(found) == 400 and "nope" not in found and "s:000001" not in found
    assert counts[3] == {None: 1200}
    assert sum(counts[0].values()) == 1200


def test_module_functions_delegate_to_the_backend(embedded, monkeypatch):
    """The names callers import keep their signatures and take the direct path."""
    b = db_scan.backend()
    expected = list(b.scan("things", QUERIES[2], fast=False))
    one = b.get_many("things", ["000002"], fast=False)
    counts = b.count_by("things", "campaign", fast=False)
    with monkeypatch.context() as m:
        _no_driver(m)
        assert list(db_scan.scan("things", QUERIES[2])) == expected
        assert db_scan.get_many("things", ["000002"], alias="default") == one
        assert db_scan.count_by("things", "campaign") == counts
    assert len(expected) == 343 and one["000002"]["system"] == "salt"
    assert list(db_scan.scan("things", QUERIES[2], fast=False)) == expected


def test_unknown_litemongo_version_warns_once_and_reads_through_the_driver(embedded, monkeypatch):
    # Mocked because the test can only install the litemongo it was written against;
    # the backend reads nothing but this lookup to learn the version, so a future
    # release is simulated exactly by what the lookup returns.
    with monkeypatch.context() as m, warnings.catch_warnings(record=True) as caught:
        m.setattr(db_scan, "installed_litemongo_version", lambda: "0.9.1")
        warnings.simplefilter("always")
        assert not db_scan.backend().direct
        fallback = _everything(fast=True)
        slow = _everything(fast=False)
        # A second connection in the same process decides again but does not warn again.
        connection.connect(embedded.uri)
        assert not db_scan.backend().direct
        again = _everything(fast=True)
    messages = _fallback_warnings(caught)
    assert len(messages) == 1, messages
    assert "litemongo 0.9.1" in messages[0] and ">=0.2.0,<0.3.0" in messages[0]
    assert fallback == slow == again
    # The same data through the direct path, once the installed version is seen again.
    connection.connect(embedded.uri)
    assert db_scan.backend().direct and _everything(fast=True) == slow


def _set_key_format(path: Path, value: int) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE info SET value = ? WHERE key = 'key_format'", (value,))
    con.close()


@pytest.mark.parametrize("change", ["key_format", "columns"])
def test_unexpected_layout_warns_once_and_reads_through_the_driver(embedded, monkeypatch, change):
    slow = _everything(fast=False)
    if change == "key_format":
        # A real change on disk that the store itself, having opened the file, survives.
        _set_key_format(embedded.path / embedded.db_name / "things", 3)
    else:
        # A future layout that renames the blob column, simulated by expecting one that
        # this file lacks (a real rename would also break the store that wrote the data).
        monkeypatch.setitem(db_scan.EXPECTED_LAYOUT, "documents", frozenset({"_id", "doc_v3"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = _everything(fast=True)
        _everything(fast=True)
    messages = _fallback_warnings(caught)
    assert len(messages) == 1, messages
    assert "things" in messages[0] and ">=0.2.0,<0.3.0" in messages[0]
    assert ("key_format 3" if change == "key_format" else "doc_v3") in messages[0]
    assert fallback == slow


def test_legacy_key_format_is_read_directly(tmp_path, monkeypatch):
    """A file written before litemongo recorded key formats keeps ids as they are."""
    monkeypatch.setattr(db_scan, "_warned", set())
    folder = tmp_path / "db" / "aloop"
    folder.mkdir(parents=True)
    con = sqlite3.connect(folder / "old")
    with con:
        con.execute("CREATE TABLE documents(_id PRIMARY KEY, doc)")
        con.executemany(
            "INSERT INTO documents VALUES (?, ?)",
            [(d["_id"], bson.encode(d)) for d in _documents(30)],
        )
    con.close()
    connection.connect(f"embedded://{tmp_path / 'db'}")
    try:
        b = db_scan.backend()
        ids = ["000001", "00001d", "absent"]
        slow = b.get_many("old", ids, fast=False)  # the store records format 1 on opening
        with monkeypatch.context() as m:
            _no_driver(m)
            assert b.get_many("old", ids) == slow and sorted(slow) == ["000001", "00001d"]
    finally:
        connection.disconnect()


def test_memory_store_and_missing_files_read_through_the_driver_silently(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connection.connect(f"embedded://{tmp_path / 'db'}")
        try:
            assert db_scan.backend().direct
            assert list(db_scan.scan("never_written", {})) == []
            assert db_scan.get_many("never_written", ["x"]) == {}
        finally:
            connection.disconnect()
        connection.connect("memory://scan_test")
        try:
            assert not db_scan.backend().direct
            connection.database()["things"].insert_many(_documents(20))
            assert db_scan.count_by("things", "system") == {"water": 7, "water-hot": 7, "salt": 6}
            assert len(db_scan.get_many("things", ["000001", "000013"])) == 2
        finally:
            connection.database().client.drop_database("scan_test")
            connection.disconnect()
    assert not _fallback_warnings(caught)


@pytest.mark.parametrize(
    ("version", "understood"),
    [
        ("0.2.0", True),
        ("0.2.7", True),
        ("0.2", True),
        ("0.3.0", False),
        ("0.3.0.dev1", False),
        ("0.1.9", False),
        ("1.0.0", False),
        ("garbage", False),
        (None, False),
    ],
)
def test_version_range(version, understood):
    assert db_scan.version_understood(version) is understood
