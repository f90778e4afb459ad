"""Labels at a settings hash a campaign no longer uses are found, once per structure, and
the relabelling is recorded on the campaign."""

from __future__ import annotations

import numpy as np
import pytest

from aloop.records import LabelRecord
from aloop.vocabulary import LabelStatus
from db import relabel, structures
from db.documents import Campaign
from db.labels import record_label
from tests.db.factories import frames, new_campaign, records


@pytest.fixture
def campaign(backend):
    return new_campaign()


def _ok(sid: str, settings_hash: str, iteration: int = 0) -> LabelRecord:
    return LabelRecord(
        sid, settings_hash, LabelStatus.OK, energy=-1.0, forces=np.zeros((3, 3)),
        iteration=iteration,
    )  # fmt: skip


def test_only_structures_without_a_label_at_their_systems_hash_are_stale(campaign):
    water = structures.insert_structures(campaign.id, records(frames(4), iteration=1)).ids
    salt = structures.insert_structures(campaign.id, records(frames(2, seed=1), system="salt")).ids
    for sid in water:
        record_label(campaign.id, _ok(sid, "old", iteration=1))
    record_label(campaign.id, _ok(water[0], "new-water"))  # already relabelled
    record_label(
        campaign.id, LabelRecord(water[1], "new-water", LabelStatus.FAILED, error="SCF")
    )  # relabelled and failed: a label at the hash all the same
    record_label(campaign.id, LabelRecord(water[2], "older", LabelStatus.FAILED, error="x"))
    record_label(campaign.id, _ok(salt[0], "old"))  # a system no longer in the campaign
    other = new_campaign("other", "o" * 64)
    oid = structures.insert_structures(other.id, records(frames(1, seed=2))).ids[0]
    record_label(other.id, _ok(oid, "old"))

    stale = relabel.stale_labels(campaign.id, {"water": "new-water"})

    assert [(s.structure_id, s.system, s.iteration, s.settings_hash) for s in stale] == sorted(
        (sid, "water", 1, "old") for sid in water[2:]
    )
    assert relabel.stale_labels(campaign.id, {"water": "old"}) == []


def test_a_relabelling_is_recorded_on_the_campaign(campaign):
    relabel.record_relabel(
        campaign.id, ["b-old", "a-old"], ["new"], {LabelStatus.OK: 3, LabelStatus.FAILED: 1}
    )
    (entry,) = Campaign.objects.get(id=campaign.id).relabels
    assert entry["from_hashes"] == ["a-old", "b-old"] and entry["to_hashes"] == ["new"]
    assert entry["labels"] == {"failed": 1, "ok": 3}
    assert entry["at"] is not None
