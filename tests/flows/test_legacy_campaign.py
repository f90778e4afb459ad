"""A campaign stored by the release before the typed contracts (issue 16) still reads the
same and resumes.

The fixture in tests/fixtures/legacy_campaign/ was written by that release itself (see
its README): the tiny water campaign stopped at its cap of one exploring iteration, every
document of its store (GridFS weights included) dumped as extended JSON, and the
``aloop status`` table that release printed for it.
"""

from __future__ import annotations

import gzip
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from bson import json_util

from db import connection
from tests.flows.conftest import campaign_env, run_aloop, start_aloop
from tests.flows.consistency import check_campaign

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_campaign"

pytestmark = pytest.mark.slow


def _restore(db_uri: str) -> None:
    """Write the dumped documents into an empty store, as they were stored."""
    dump = json_util.loads(gzip.decompress((FIXTURE / "store.json.gz").read_bytes()))
    connection.connect(db_uri)
    try:
        database = connection.database()
        for name, docs in dump.items():
            if docs:
                database[name].insert_many(docs)
    finally:
        connection.disconnect()


def _table(output: str) -> list[str]:
    """The table's frame and rows (title and caption wrap with the terminal)."""
    lines = output.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return lines[top : bottom + 1]


def _cells(table: list[str]) -> list[list[str]]:
    """The header's and each row's cells, stripped."""
    return [
        [cell.strip() for cell in line.strip("┃│").split(line[0])]
        for line in table
        if line[0] in "┃│"
    ]


def test_a_stored_campaign_shows_the_same_table_and_resumes(prefect_api, tmp_path):
    db = f"embedded://{tmp_path / 'db'}"
    _restore(db)
    env = campaign_env(prefect_api, tmp_path / "data")
    expected = (FIXTURE / "status-table.txt").read_text().splitlines()

    shown = run_aloop(["status", "legacy-water", "--db", db], env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Campaign legacy-water: stopped (iteration cap reached (1))" in shown.stdout
    assert _table(shown.stdout) == expected

    # Raising the cap (stop settings are outside the result hash) continues the campaign.
    config = yaml.safe_load((FIXTURE / "legacy-water.yaml").read_text())
    config["stop"]["max_iterations"] = 2
    path = tmp_path / "legacy-water.yaml"
    path.write_text(yaml.safe_dump(config))
    resumed = run_aloop(["run", str(path), "--db", db], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming campaign legacy-water" in resumed.stderr
    assert "iteration cap reached (2)" in resumed.stdout
    # Its labels were computed before label protocol 2 (stability analysis, ECPs): they
    # are relabelled at the current settings, not mixed in and not silently dropped.
    assert "under settings no longer in use" in resumed.stdout + resumed.stderr

    # Column widths follow the new row's numbers: compare the cells.
    after = _cells(_table(run_aloop(["status", "legacy-water", "--db", db], env).stdout))
    # The header and the two stored iterations keep their cells; the hold-out and
    # calibration columns (13 on) appear once the resumed iteration stored them.
    assert [row[:13] for row in after[:3]] == _cells(expected)
    assert after[3][0] == "2"
    assert after[4][0] == "3 final"  # the production committee, once the cap fired
    connection.connect(db)
    try:
        counts = check_campaign("legacy-water", committee_size=2)
        _check_relabelled(config)
    finally:
        connection.disconnect()
    assert counts["iterations"] == 4


def _check_relabelled(config: dict) -> None:
    """Every label the old release stored has its twin at today's settings hash, in the
    same iteration; the new iteration trained on those only; the campaign says so."""
    from aloop.config import parse_config
    from aloop.vocabulary import LabelStatus
    from db.documents import Campaign, Label, Model
    from dft.settings import LabelSettings

    campaign = Campaign.objects.get(name="legacy-water")
    now = LabelSettings.from_config(parse_config(config).dft).settings_hash()
    stored = Label.objects(campaign=campaign.id)
    old = {(lab.structure.id, lab.iteration) for lab in stored if lab.settings_hash != now}
    new = {(lab.structure.id, lab.iteration) for lab in stored if lab.settings_hash == now}
    old_ok = {
        (lab.structure.id, lab.iteration)
        for lab in stored
        if lab.settings_hash != now and lab.status == LabelStatus.OK
    }
    assert old and old_ok <= new
    (entry,) = campaign.relabels
    assert entry["to_hashes"] == [now] and sum(entry["labels"].values()) == len(old_ok)
    trained_on = set(Model.objects(campaign=campaign.id, iteration=2).first().training_set)
    at_now = {lab.structure.id for lab in stored if lab.settings_hash == now}
    assert trained_on <= at_now


def test_a_campaign_converged_under_the_old_rules_stays_converged(prefect_api, tmp_path):
    """The old release had no hold-out and counted frames, not walker time: re-deciding
    its converged campaign under today's rules would explore on. Its verdict is kept and
    only the production committee is trained (on its labels, relabelled at today's
    settings), and the next run finds it finished."""
    db = f"embedded://{tmp_path / 'db'}"
    _restore(db)
    reason = "accurate ratio 0.97 >= 0.95 in each of the last 1 iteration(s)"
    connection.connect(db)
    try:
        connection.database()["campaigns"].update_one(
            {"name": "legacy-water"}, {"$set": {"status": "converged", "status_reason": reason}}
        )
    finally:
        connection.disconnect()
    env = campaign_env(prefect_api, tmp_path / "data")
    env["ALOOP_RUN_LEASE_S"] = "4"  # the killed run's lease expires within the test
    path = tmp_path / "legacy-water.yaml"
    path.write_text((FIXTURE / "legacy-water.yaml").read_text())
    config = yaml.safe_load(path.read_text())
    config["stop"]["max_iterations"] = 5  # today's rules alone would explore on
    path.write_text(yaml.safe_dump(config))

    # Killed as soon as the run has marked the campaign running (the stored verdict
    # overwritten): the kept verdict is already stored with the final iteration.
    log = tmp_path / "killed.log"
    proc = start_aloop(["run", str(path), "--db", db], env, log)
    connection.connect(db)
    try:
        campaigns = connection.database()["campaigns"]
        deadline = time.monotonic() + 300
        while campaigns.find_one({"name": "legacy-water"})["status"] != "running":
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        final = connection.database()["iterations"].find_one({"index": 2})
        assert final["stats"]["stop_decision"] == {"status": "converged", "reason": reason}
    finally:
        connection.disconnect()
    time.sleep(4)  # the lease's length: it has expired

    resumed = run_aloop(["run", str(path), "--db", db], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert reason in resumed.stdout
    assert "iteration 2 final" in resumed.stderr + resumed.stdout
    assert "iteration 2 explore" not in resumed.stderr + resumed.stdout
    connection.connect(db)
    try:
        counts = check_campaign("legacy-water", committee_size=2)
    finally:
        connection.disconnect()
    assert counts["iterations"] == 3  # seed, the old exploring iteration, the final one

    again = run_aloop(["run", str(path), "--db", db], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"already converged: {reason}" in again.stderr + again.stdout
