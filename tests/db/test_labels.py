"""The label aggregate on every backend: one label per structure and settings hash, failed
labels with their SCF history, counts, outcomes and the labelled frames to train on."""

from __future__ import annotations

import numpy as np
import pytest

from aloop.records import REF_ENERGY, REF_FORCES, REF_STRESS, LabelRecord
from aloop.vocabulary import LabelStatus
from db import labels, structures
from db.documents import Label
from tests.db.factories import frames, new_campaign, records


@pytest.fixture
def campaign(backend):
    return new_campaign()


def test_label_is_recorded_once_per_settings_hash(campaign):
    sid = structures.insert_structures(campaign.id, records(frames(1))).ids[0]
    first = LabelRecord(sid, "settings-A", LabelStatus.OK, energy=-1.0, forces=np.zeros((3, 3)))
    lid, created = labels.record_label(campaign.id, first)
    assert created
    # a resumed batch records the same calculation again: the first label stands
    second = LabelRecord(sid, "settings-A", LabelStatus.FAILED, error="would overwrite")
    lid2, created2 = labels.record_label(campaign.id, second)
    assert (lid2, created2) == (lid, False)
    assert Label.objects.get(id=lid).status == "ok"
    # another settings hash is another label
    _, created3 = labels.record_label(
        campaign.id, LabelRecord(sid, "settings-B", LabelStatus.OK, energy=-2.0)
    )
    assert created3
    assert labels.labelled_ids([sid], "settings-A") == {sid}
    assert Label.objects(structure=sid).count() == 2
    assert labels.duplicate_label_count(campaign.id) == 0


def test_failed_label_keeps_its_scf_attempts(campaign):
    sid = structures.insert_structures(campaign.id, records(frames(1))).ids[0]
    attempts = [
        {
            "strategy": "diis",
            "cycles": 100,
            "converged": False,
            "energy_change": 1e-3,
            "seconds": 2.0,
        },
        {"strategy": "newton", "cycles": 12, "converged": False, "seconds": 1.0, "error": "nan"},
    ]
    lid, _ = labels.record_label(
        campaign.id,
        LabelRecord(
            sid, "s", LabelStatus.FAILED, scf_attempts=attempts, error="SCF did not converge"
        ),
    )
    label = Label.objects.get(id=lid)
    assert [a.strategy for a in label.scf_attempts] == ["diis", "newton"]
    assert label.error == "SCF did not converge" and label.forces is None


def test_label_counts_and_outcomes_are_read_from_the_database(campaign):
    ids = structures.insert_structures(campaign.id, records(frames(4), iteration=2)).ids
    labels.record_label(
        campaign.id, LabelRecord(ids[0], "s", LabelStatus.OK, wall_time=2.5, iteration=2)
    )
    labels.record_label(
        campaign.id,
        LabelRecord(ids[1], "s", LabelStatus.FAILED, wall_time=1.0, error="SCF", iteration=2),
    )
    labels.record_label(campaign.id, LabelRecord(ids[2], "other", LabelStatus.REJECTED))
    other = new_campaign("other", "o" * 64)
    oid = structures.insert_structures(other.id, records(frames(1))).ids[0]
    labels.record_label(other.id, LabelRecord(oid, "s", LabelStatus.OK))
    assert labels.label_counts(campaign.id) == {
        LabelStatus.OK: 1,
        LabelStatus.FAILED: 1,
        LabelStatus.REJECTED: 1,
    }
    assert labels.label_counts(other.id) == {LabelStatus.OK: 1}
    out = labels.label_outcomes(ids, "s")
    assert set(out) == set(ids[:2])  # the unlabelled one and the other hash are absent
    assert (out[ids[0]].status, out[ids[0]].wall_time, out[ids[0]].error) == (
        LabelStatus.OK,
        2.5,
        None,
    )
    assert (out[ids[1]].status, out[ids[1]].error) == (LabelStatus.FAILED, "SCF")
    assert labels.duplicate_label_count(campaign.id) == 0


def test_labelled_frames_carry_their_labels_under_ref_keys(campaign):
    ids = structures.insert_structures(
        campaign.id,
        records(frames(2), iteration=0) + records(frames(2, seed=1), iteration=1),
    ).ids
    stress = np.arange(6, dtype=float)
    for k, sid in enumerate(ids):
        labels.record_label(
            campaign.id,
            LabelRecord(
                sid,
                "a" if k != 2 else "b",
                LabelStatus.OK if k != 1 else LabelStatus.FAILED,
                energy=-1.0 - k,
                forces=np.full((3, 3), float(k)),
                stress=stress if k == 3 else None,
                iteration=0 if k < 2 else 1,
            ),
        )
    got, atoms = labels.labelled_frames(campaign.id, ["a", "b"])
    assert got == sorted([ids[0], ids[2], ids[3]])  # the failed label is no frame
    by_id = dict(zip(got, atoms, strict=True))
    assert by_id[ids[3]].info[REF_ENERGY] == -4.0
    assert np.array_equal(by_id[ids[3]].arrays[REF_FORCES], np.full((3, 3), 3.0))
    assert np.array_equal(by_id[ids[3]].info[REF_STRESS], stress)
    assert REF_STRESS not in by_id[ids[0]].info
    assert labels.labelled_frames(campaign.id, ["a"])[0] == sorted([ids[0], ids[3]])
    assert labels.labelled_frames(campaign.id, ["a", "b"], before_iteration=1)[0] == [ids[0]]
    assert labels.labelled_frames(campaign.id, ["a", "b"], iteration=1)[0] == sorted(ids[2:])
