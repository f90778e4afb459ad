"""One run per campaign: the lease's conditional updates on each store, and two real
``aloop run`` of one campaign (the second refused, naming the first; a SIGKILLed run's
lease taken over once it expires)."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from mongoengine.connection import get_db

from db import campaigns, connection
from flows.lease import RunLease
from tests.flows.conftest import campaign_env, run_aloop, start_aloop
from tests.flows.consistency import check_campaign


@pytest.fixture(params=["memory", "embedded"])
def campaign_id(request, tmp_path):
    uri = "memory://lease-test" if request.param == "memory" else f"embedded://{tmp_path}/db"
    connection.connect(uri)
    get_db().drop_collection("campaigns")
    record, _ = campaigns.get_or_create_campaign("lease", {"a": 1}, "h")
    yield record.id
    connection.disconnect()


def test_lease_is_taken_refused_renewed_released_and_expires(campaign_id):
    assert campaigns.acquire_lease(campaign_id, "run-a", 60) is None
    with pytest.raises(campaigns.CampaignBusy) as busy:
        campaigns.acquire_lease(campaign_id, "run-b", 60)
    message = str(busy.value)
    assert f"host {socket.gethostname()} pid {os.getpid()} since 20" in message
    assert "--take-over" in message and "'lease'" in message
    assert campaigns.renew_lease(campaign_id, "run-a", 0.2)
    assert not campaigns.renew_lease(campaign_id, "run-b", 60)
    time.sleep(0.3)
    previous = campaigns.acquire_lease(campaign_id, "run-b", 60)  # expired: taken over
    assert previous is not None and previous.owner == "run-a"
    assert not campaigns.renew_lease(campaign_id, "run-a", 60)  # a has lost it
    assert not campaigns.release_lease(campaign_id, "run-a")
    assert campaigns.acquire_lease(campaign_id, "run-c", 60, take_over=True).owner == "run-b"
    assert campaigns.release_lease(campaign_id, "run-c")
    assert campaigns.lease_holder(campaign_id) is None
    # The campaign document still loads with its lease fields.
    assert campaigns.reload_campaign(campaign_id).name == "lease"


def test_heartbeat_keeps_the_lease_and_a_taken_lease_stops_the_run(campaign_id):
    # Lengths with room for a loaded machine: beats every 0.5 s keep a 2 s lease.
    with RunLease(campaign_id, "lease", duration_s=2.0) as lease:
        time.sleep(3.0)  # past the length: only the heartbeat keeps it
        with pytest.raises(campaigns.CampaignBusy):
            campaigns.acquire_lease(campaign_id, "intruder", 60)
        lease.check()
        campaigns.acquire_lease(campaign_id, "intruder", 60, take_over=True)
        time.sleep(1.5)  # three beats: the next one finds the lease gone
        with pytest.raises(Exception, match="another run took the campaign over"):
            lease.check()
    assert campaigns.lease_holder(campaign_id).owner == "intruder"  # not released by a
    campaigns.release_lease(campaign_id, "intruder")
    with RunLease(campaign_id, "lease", duration_s=60):
        pass
    assert campaigns.lease_holder(campaign_id) is None  # released at the end


@pytest.mark.slow
def test_second_run_refused_then_killed_runs_lease_taken_over(prefect_api, tiny_config, tmp_path):
    db_uri = f"embedded://{tmp_path / 'db'}"
    env = campaign_env(prefect_api, tmp_path / "data")
    env["ALOOP_RUN_LEASE_S"] = "4"
    args = ["run", str(tiny_config), "--db", db_uri]
    log = tmp_path / "first.log"
    first = start_aloop(args, env, log)
    connection.connect(db_uri)
    try:
        db = get_db()
        deadline = time.monotonic() + 300
        while db["labels"].count_documents({}) < 1:
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run never labelled"
            time.sleep(0.05)
        start = time.monotonic()
        second = run_aloop(args, env, timeout=120)
        assert second.returncode == 1, second.stdout + second.stderr
        assert time.monotonic() - start < 30
        assert f"host {socket.gethostname()} pid {first.pid} since" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert first.poll() is None, "the refused run disturbed the first"
        assert "run the same command again" not in second.stderr

        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        time.sleep(4)  # the lease's length: it has expired
        third = run_aloop(args, env)
        assert third.returncode == 0, third.stdout + third.stderr
        assert f"pid {first.pid}" in third.stderr and "lease had expired" in third.stderr
        assert "iteration cap reached (2)" in third.stdout
        assert check_campaign("tiny-water", committee_size=2)["iterations"] == 4  # 3 + final
        assert campaigns.lease_holder(campaigns.get_campaign("tiny-water").id) is None
        # Each run works in a directory of its own, removed after success.
        work = tmp_path / "data" / "work" / "tiny-water"
        assert len(list(work.iterdir())) == 1, list(work.iterdir())  # the killed run's
    finally:
        connection.disconnect()
