"""The campaign aggregate on every backend: creation, config changes, status, listing."""

from __future__ import annotations

import dataclasses

import pytest
from ase import Atoms

from aloop.errors import UserError
from aloop.records import LabelRecord
from aloop.vocabulary import CampaignStatus, LabelStatus, Origin, Verdict
from db import campaigns, labels, structures
from db.documents import Campaign
from tests.db.factories import frames, new_campaign, records


@pytest.fixture
def campaign(backend):
    return new_campaign()


def test_changing_a_campaign_config_is_refused_unless_allowed(campaign):
    with pytest.raises(campaigns.ConfigChangeRefused, match="--allow-config-change") as info:
        campaigns.get_or_create_campaign("water-test", {"campaign": "water-test", "x": 1}, "g" * 64)
    assert isinstance(info.value, UserError)  # the CLI reports it as a usage error
    same, created = campaigns.get_or_create_campaign(
        "water-test", {"campaign": "water-test"}, "h" * 64
    )
    assert same.id == campaign.id and not created
    changed, _ = campaigns.get_or_create_campaign(
        "water-test", {"x": 1}, "g" * 64, allow_change=True
    )
    assert changed.config_hash == "g" * 64 and changed.config == {"x": 1}
    stored = Campaign.objects.get(id=campaign.id)
    assert stored.config_changes[0]["from_hash"] == "h" * 64
    assert stored.config_changes[0]["to_hash"] == "g" * 64
    assert stored.config_changes[0]["previous_config"] == {"campaign": "water-test"}


def test_a_campaign_stored_under_an_earlier_hashing_rule_resumes_rehashed(campaign):
    """The same settings hashed by an earlier rule (a foundation's files by path, now
    by content) are no change: the stored hash is replaced, and the change recorded."""
    config = {"campaign": "water-test"}
    with pytest.raises(campaigns.ConfigChangeRefused):
        campaigns.get_or_create_campaign("water-test", config, "n" * 64, earlier_hashes=["x" * 64])
    same, created = campaigns.get_or_create_campaign(
        "water-test", config, "n" * 64, earlier_hashes=["h" * 64]
    )
    assert same.id == campaign.id and not created and same.config_hash == "n" * 64
    (change,) = Campaign.objects.get(id=campaign.id).config_changes
    assert (change["from_hash"], change["to_hash"]) == ("h" * 64, "n" * 64)
    assert "newer hashing rule" in change["reason"]


def test_records_are_snapshots_reread_after_a_write(campaign):
    assert campaign.status is CampaignStatus.RUNNING and campaign.current_iteration == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        campaign.status = CampaignStatus.STOPPED
    campaigns.set_campaign_status(campaign.id, CampaignStatus.STOPPED, "iteration cap reached")
    campaigns.set_current_iteration(campaign.id, 3)
    assert campaign.status is CampaignStatus.RUNNING  # the snapshot is unchanged
    now = campaigns.reload_campaign(campaign.id)
    assert (now.status, now.status_reason, now.current_iteration) == (
        CampaignStatus.STOPPED,
        "iteration cap reached",
        3,
    )
    assert now.status.finished
    assert Campaign.objects.get(id=campaign.id).status == "stopped"  # stored as before
    assert campaigns.get_campaign("water-test") == now
    assert campaigns.get_campaign("nosuch") is None


def test_listing_counts_structures_and_ok_labels_per_campaign(campaign):
    other = new_campaign("other", "o" * 64)
    recs = records(frames(7), iteration=2, verdict=Verdict.CANDIDATE)
    structures.insert_structures(campaign.id, recs)
    structures.insert_structures(campaign.id, records(frames(2, seed=5), iteration=3))
    sid = structures.insert_structures(campaign.id, records(frames(1, seed=11))).ids[0]
    labels.record_label(campaign.id, LabelRecord(sid, "s", LabelStatus.OK, wall_time=2.5))
    first = structures.insert_structures(campaign.id, recs[:1]).ids[0]
    labels.record_label(campaign.id, LabelRecord(first, "s", LabelStatus.FAILED, wall_time=1.0))
    # An isolated atom (an E0 reference) and its label are not the campaign's structures.
    atom = structures.insert_structures(
        campaign.id, records([Atoms("H")], origin=Origin.ISOLATED_ATOM, system="isolated_atom:H")
    ).ids[0]
    labels.record_label(campaign.id, LabelRecord(atom, "s", LabelStatus.OK, energy=-13.6))
    listed = {c["name"]: c for c in campaigns.list_campaigns()}
    assert listed["water-test"]["structures"] == 10
    assert listed["water-test"]["labels_ok"] == 1
    assert (listed["other"]["structures"], listed["other"]["labels_ok"]) == (0, 0)
    assert listed["water-test"]["status"] == "running"
    assert {c.name for c in campaigns.all_campaigns()} == {"other", "water-test"}
    assert other.id in {c["id"] for c in listed.values()}
