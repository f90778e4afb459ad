"""The data layer on every backend: dedupe, idempotent labels, blobs, stats, stages."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from aloop.records import LabelRecord, StructureRecord
from db import repository as repo
from db.arrays import INLINE_LIMIT
from db.blobs import BlobIntegrityError
from db.connection import database
from db.documents import Label, Structure


@pytest.fixture
def campaign(backend):
    c, created = repo.get_or_create_campaign("water-test", {"campaign": "water-test"}, "h" * 64)
    assert created
    return c


def _frames(n, seed=0, name="H2O"):
    rng = np.random.default_rng(seed)
    base = molecule(name)
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        out.append(a)
    return out


def _records(frames, **kw):
    return [StructureRecord.from_atoms(a, "water", "md", **kw) for a in frames]


def test_insert_dedupes_by_content_within_a_campaign(campaign):
    frames = _frames(5)
    first = repo.insert_structures(campaign, _records(frames))
    assert first.inserted == 5
    # same geometries again, plus one repeated inside the call, plus a new one
    again = repo.insert_structures(campaign, _records([*frames[:3], frames[0], *_frames(1, 9)]))
    assert again.new == [False, False, False, False, True]
    assert again.ids[:3] == first.ids[:3]
    assert again.ids[3] == first.ids[0]
    assert Structure.objects(campaign=campaign.id).count() == 6


def test_same_geometry_is_distinct_per_campaign_charge_and_spin(campaign):
    other, _ = repo.get_or_create_campaign("other", {"campaign": "other"}, "x" * 64)
    frame = _frames(1)
    a = repo.insert_structures(campaign, _records(frame))
    b = repo.insert_structures(other, _records(frame))
    c = repo.insert_structures(campaign, _records(frame, charge=1, multiplicity=2))
    assert b.inserted == 1 and c.inserted == 1
    assert len({a.ids[0], b.ids[0], c.ids[0]}) == 3


def test_raw_document_passes_the_document_schema(campaign):
    """The fast insert path writes exactly what the Document class accepts."""
    rec = _records(
        _frames(1),
        uncertainty={"force_dev_max": 0.2},
        verdict="candidate",
        lineage={"walker": 3, "temperature": 300.0, "md_step": 40},
    )[0]
    sid = repo.insert_structures(campaign, [rec]).ids[0]
    doc = Structure.objects.get(id=sid)
    doc.validate()
    assert doc.lineage.walker == 3 and doc.uncertainty.force_dev_max == pytest.approx(0.2)
    np.testing.assert_array_equal(doc.positions, rec.positions)


def test_bad_records_are_refused_and_nothing_is_written(campaign):
    rec = _records(_frames(1))[0]
    rec.origin = "teleported"
    with pytest.raises(ValueError, match="origin 'teleported'"):
        repo.insert_structures(campaign, [rec])
    rec = _records(_frames(1))[0]
    rec.positions = rec.positions[:2]
    with pytest.raises(ValueError, match="inconsistent structure"):
        repo.insert_structures(campaign, [rec])
    assert Structure.objects.count() == 0


def test_arrays_round_trip_bit_identical(campaign):
    atoms = _frames(1)[0]
    tricky = np.array([np.pi, -0.0, 5e-324, 1.7976931348623157e308, np.nextafter(1.0, 2.0)])
    atoms.positions[:, 0] = tricky[:3]
    atoms.positions[:, 1] = tricky[2:]
    sid = repo.insert_structures(campaign, _records([atoms]))
    back = repo.load_atoms(sid.ids)[0]
    assert back.positions.tobytes() == atoms.positions.tobytes()
    forces = np.random.default_rng(1).normal(size=(3, 3))
    repo.record_label(
        campaign,
        LabelRecord(sid.ids[0], "s1", "ok", energy=-2080.1234567890123, forces=forces),
    )
    label = Label.objects.get(structure=sid.ids[0])
    assert label.forces.tobytes() == forces.tobytes()
    assert label.energy == -2080.1234567890123
    raw = Label._get_collection().find_one({"_id": label.id})
    assert raw["forces"]["dtype"] == "<f8" and raw["forces"]["shape"] == [3, 3]


def test_label_is_recorded_once_per_settings_hash(campaign):
    sid = repo.insert_structures(campaign, _records(_frames(1))).ids[0]
    first = LabelRecord(sid, "settings-A", "ok", energy=-1.0, forces=np.zeros((3, 3)))
    lid, created = repo.record_label(campaign, first)
    assert created
    # a resumed batch records the same calculation again: the first label stands
    second = LabelRecord(sid, "settings-A", "failed", error="would overwrite")
    lid2, created2 = repo.record_label(campaign, second)
    assert (lid2, created2) == (lid, False)
    assert Label.objects.get(id=lid).status == "ok"
    # another settings hash is another label
    _, created3 = repo.record_label(campaign, LabelRecord(sid, "settings-B", "ok", energy=-2.0))
    assert created3
    assert repo.labelled_ids([sid], "settings-A") == {sid}
    assert Label.objects(structure=sid).count() == 2


def test_failed_label_keeps_its_scf_attempts(campaign):
    sid = repo.insert_structures(campaign, _records(_frames(1))).ids[0]
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
    lid, _ = repo.record_label(
        campaign,
        LabelRecord(sid, "s", "failed", scf_attempts=attempts, error="SCF did not converge"),
    )
    label = Label.objects.get(id=lid)
    assert [a.strategy for a in label.scf_attempts] == ["diis", "newton"]
    assert label.error == "SCF did not converge" and label.forces is None


def test_model_weights_round_trip_with_sha256_check(campaign):
    weights = np.random.default_rng(0).bytes(700_000)  # three GridFS chunks
    model = repo.store_model(
        campaign,
        iteration=1,
        member=0,
        seed=7,
        weights=weights,
        hyperparameters={"r_max": 5.0},
        training_set=["a" * 24],
    )
    assert repo.load_model_weights(model.id) == weights
    chunks = database()["fs.chunks"]
    assert chunks.count_documents({"files_id": model.weights_file}) == 3
    # flip one byte of a stored chunk: loading must refuse it
    chunk = chunks.find_one({"files_id": model.weights_file, "n": 1})
    data = bytearray(chunk["data"])
    data[10] ^= 0xFF
    chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})
    with pytest.raises(BlobIntegrityError, match="sha256"):
        repo.load_model_weights(model.id)


def test_large_arrays_leave_the_document(campaign):
    n = INLINE_LIMIT // 24 + 1000  # positions just over the inline limit
    rng = np.random.default_rng(3)
    rec = StructureRecord(
        numbers=np.ones(n, dtype=int),
        positions=rng.random((n, 3)) * 100,
        cell=np.eye(3) * 100,
        pbc=[True] * 3,
        system="big",
        origin="imported",
    )
    sid = repo.insert_structures(campaign, [rec]).ids[0]
    raw = Structure._get_collection().find_one({"_id": sid})
    assert "blob" in raw["positions"] and "data" not in raw["positions"]
    import bson

    assert len(bson.encode(raw)) < INLINE_LIMIT  # numbers stay inline, positions do not
    back = repo.load_atoms([sid])[0]
    assert back.positions.tobytes() == rec.positions.tobytes()


def test_statistics_are_aggregated_in_the_database(campaign):
    devs = [0.01, 0.02, 0.1, 0.2, 0.3, 0.6, 0.9]
    verdicts = ["accurate", "accurate", "candidate", "candidate", "candidate", "failed", "failed"]
    recs = []
    for a, d, v in zip(_frames(len(devs)), devs, verdicts, strict=True):
        recs += _records([a], iteration=2, uncertainty={"force_dev_max": d}, verdict=v)
    repo.insert_structures(campaign, recs)
    repo.insert_structures(campaign, _records(_frames(2, seed=5), iteration=3, verdict="accurate"))
    assert repo.verdict_counts(campaign, 2) == {
        "water": {"accurate": 2, "candidate": 3, "failed": 2}
    }
    assert repo.deviation_histogram(campaign, 2, "water", [0.0, 0.05, 0.5]) == [2, 3, 2]
    sid = repo.insert_structures(campaign, _records(_frames(1, seed=11), iteration=2)).ids[0]
    repo.record_label(campaign, LabelRecord(sid, "s", "ok", wall_time=2.5, iteration=2))
    repo.record_label(
        campaign,
        LabelRecord(
            recs[0].hash and repo.insert_structures(campaign, recs[:1]).ids[0],
            "s",
            "failed",
            wall_time=1.0,
            iteration=2,
        ),
    )
    assert repo.label_summary(campaign) == {"2": {"ok": 1, "failed": 1, "wall_time": 3.5}}
    listed = {c["name"]: c for c in repo.list_campaigns()}
    assert listed["water-test"]["structures"] == 10
    assert listed["water-test"]["labels_ok"] == 1


def test_stage_transitions_are_checked(campaign):
    it = repo.get_or_create_iteration(campaign, 0)
    assert {s.status for s in it.stages.values()} == {"pending"}
    with pytest.raises(repo.StageTransitionError, match="'pending', cannot become 'done'"):
        repo.set_stage(it, "train", "done")
    repo.set_stage(it, "train", "running")
    repo.set_stage(it, "train", "failed", error="CUDA out of memory")
    assert it.stages["train"].error == "CUDA out of memory"
    repo.set_stage(it, "train", "running")  # a failed stage may be retried
    repo.set_stage(it, "train", "done")
    assert it.stages["train"].attempts == 2 and it.stages["train"].error is None
    with pytest.raises(repo.StageTransitionError):
        repo.set_stage(it, "train", "running")
    # creating it again returns the same document, untouched
    again = repo.get_or_create_iteration(campaign, 0)
    assert again.id == it.id and again.stages["train"].status == "done"
    repo.update_iteration_stats(it, {"sampled": 40, "accurate_ratio": 0.5})
    assert it.stats == {"sampled": 40, "accurate_ratio": 0.5}


def test_changing_a_campaign_config_is_refused_unless_allowed(campaign):
    with pytest.raises(repo.ConfigChangeRefused, match="--allow-config-change"):
        repo.get_or_create_campaign("water-test", {"campaign": "water-test", "x": 1}, "g" * 64)
    same, created = repo.get_or_create_campaign("water-test", {"campaign": "water-test"}, "h" * 64)
    assert same.id == campaign.id and not created
    changed, _ = repo.get_or_create_campaign("water-test", {"x": 1}, "g" * 64, allow_change=True)
    assert changed.config_hash == "g" * 64
    assert changed.config_changes[0]["from_hash"] == "h" * 64
    assert changed.config_changes[0]["previous_config"] == {"campaign": "water-test"}


def test_verdicts_are_set_in_one_bulk_write(campaign):
    ids = repo.insert_structures(campaign, _records(_frames(3), verdict="candidate")).ids
    changed = repo.set_verdicts([(ids[0], "selected", None), (ids[1], "rejected", "not diverse")])
    assert changed == 2
    got = {s.id: (s.verdict, s.verdict_reason) for s in Structure.objects(id__in=ids)}
    assert got == {
        ids[0]: ("selected", None),
        ids[1]: ("rejected", "not diverse"),
        ids[2]: ("candidate", None),
    }
    assert repo.set_verdicts([]) == 0
