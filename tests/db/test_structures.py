"""The structure aggregate on every backend: dedupe by content, bit-identical arrays,
blobs for large ones, verdicts, and the queries the loop's stages make."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aloop.records import LabelRecord, StructureRecord
from aloop.vocabulary import LabelStatus, Origin, Verdict
from db import labels, structures
from db.arrays import INLINE_LIMIT
from db.documents import Label, Structure
from tests.db.factories import frames, new_campaign, records


@pytest.fixture
def campaign(backend):
    return new_campaign()


def test_insert_dedupes_by_content_within_a_campaign(campaign):
    some = frames(5)
    first = structures.insert_structures(campaign.id, records(some))
    assert first.inserted == 5
    # same geometries again, plus one repeated inside the call, plus a new one
    again = structures.insert_structures(campaign.id, records([*some[:3], some[0], *frames(1, 9)]))
    assert again.new == [False, False, False, False, True]
    assert again.ids[:3] == first.ids[:3]
    assert again.ids[3] == first.ids[0]
    assert Structure.objects(campaign=campaign.id).count() == 6


def test_same_geometry_is_distinct_per_campaign_charge_and_spin(campaign):
    other = new_campaign("other", "x" * 64)
    frame = frames(1)
    a = structures.insert_structures(campaign.id, records(frame))
    b = structures.insert_structures(other.id, records(frame))
    c = structures.insert_structures(campaign.id, records(frame, charge=1, multiplicity=2))
    assert b.inserted == 1 and c.inserted == 1
    assert len({a.ids[0], b.ids[0], c.ids[0]}) == 3


def test_raw_document_passes_the_document_schema(campaign):
    """The fast insert path writes exactly what the Document class accepts."""
    rec = records(
        frames(1),
        uncertainty={"force_dev_max": 0.2},
        verdict=Verdict.CANDIDATE,
        lineage={"walker": 3, "temperature": 300.0, "md_step": 40},
    )[0]
    sid = structures.insert_structures(campaign.id, [rec]).ids[0]
    doc = Structure.objects.get(id=sid)
    doc.validate()
    assert doc.lineage.walker == 3 and doc.uncertainty.force_dev_max == pytest.approx(0.2)
    assert doc.verdict == "candidate" and doc.origin == "md"
    np.testing.assert_array_equal(doc.positions, rec.positions)


def test_md_frame_records_pass_the_document_schema(campaign):
    """Every lineage key the walkers write (the flag on the frame before an uncertainty
    stop included) is a field: what the fast path stored reads back as a Document."""
    from aloop.explore.walkers import Frame, frame_records

    atoms = frames(2)
    kept = [
        Frame("water", 1, 600.0, None, step, a, 0.4, 0.1, 0.02, before_stop=step == 7)
        for step, a in zip((5, 7), atoms, strict=True)
    ]
    ids = structures.insert_structures(
        campaign.id, frame_records(kept, [Verdict.CANDIDATE] * 2, iteration=1)
    ).ids
    docs = [Structure.objects.get(id=sid) for sid in ids]
    for doc in docs:
        doc.validate()
    assert [d.lineage.before_stop for d in docs] == [None, True]
    assert [d.lineage.md_step for d in docs] == [5, 7]


def test_bad_records_are_refused_and_nothing_is_written(campaign):
    rec = records(frames(1))[0]
    rec.origin = "teleported"
    with pytest.raises(ValueError, match="origin 'teleported'"):
        structures.insert_structures(campaign.id, [rec])
    rec = records(frames(1))[0]
    rec.positions = rec.positions[:2]
    with pytest.raises(ValueError, match="inconsistent structure"):
        structures.insert_structures(campaign.id, [rec])
    assert Structure.objects.count() == 0


def test_arrays_round_trip_bit_identical(campaign):
    atoms = frames(1)[0]
    tricky = np.array([np.pi, -0.0, 5e-324, 1.7976931348623157e308, np.nextafter(1.0, 2.0)])
    atoms.positions[:, 0] = tricky[:3]
    atoms.positions[:, 1] = tricky[2:]
    sid = structures.insert_structures(campaign.id, records([atoms]))
    back = structures.load_atoms(sid.ids)[0]
    assert back.positions.tobytes() == atoms.positions.tobytes()
    forces = np.random.default_rng(1).normal(size=(3, 3))
    labels.record_label(
        campaign.id,
        LabelRecord(sid.ids[0], "s1", LabelStatus.OK, energy=-2080.1234567890123, forces=forces),
    )
    label = Label.objects.get(structure=sid.ids[0])
    assert label.forces.tobytes() == forces.tobytes()
    assert label.energy == -2080.1234567890123
    raw = Label._get_collection().find_one({"_id": label.id})
    assert raw["forces"]["dtype"] == "<f8" and raw["forces"]["shape"] == [3, 3]


def test_large_arrays_leave_the_document(campaign):
    n = INLINE_LIMIT // 24 + 1000  # positions just over the inline limit
    rng = np.random.default_rng(3)
    rec = StructureRecord(
        numbers=np.ones(n, dtype=int),
        positions=rng.random((n, 3)) * 100,
        cell=np.eye(3) * 100,
        pbc=[True] * 3,
        system="big",
        origin=Origin.IMPORTED,
    )
    sid = structures.insert_structures(campaign.id, [rec]).ids[0]
    raw = Structure._get_collection().find_one({"_id": sid})
    assert "blob" in raw["positions"] and "data" not in raw["positions"]
    import bson

    assert len(bson.encode(raw)) < INLINE_LIMIT  # numbers stay inline, positions do not
    back = structures.load_atoms([sid])[0]
    assert back.positions.tobytes() == rec.positions.tobytes()
    streamed = list(structures.iter_structures(campaign.id, system="big"))
    assert [d["_id"] for d in streamed] == [sid]
    assert streamed[0]["positions"].tobytes() == rec.positions.tobytes()  # decoded


def test_verdicts_are_set_in_one_bulk_write(campaign):
    ids = structures.insert_structures(
        campaign.id, records(frames(3), verdict=Verdict.CANDIDATE)
    ).ids
    changed = structures.set_verdicts(
        [(ids[0], Verdict.SELECTED, None), (ids[1], Verdict.REJECTED, "not diverse")]
    )
    assert changed == 2
    got = {s.id: (s.verdict, s.verdict_reason) for s in Structure.objects(id__in=ids)}
    assert got == {
        ids[0]: ("selected", None),
        ids[1]: ("rejected", "not diverse"),
        ids[2]: ("candidate", None),
    }
    assert structures.set_verdicts([]) == 0


def test_an_iterations_structures_by_verdict_origin_and_system(campaign):
    md = structures.insert_structures(
        campaign.id,
        records(frames(3), iteration=2, verdict=Verdict.CANDIDATE)
        + records(frames(2, seed=1), iteration=2, verdict=Verdict.SELECTED)
        + records(frames(1, seed=2), system="ice", iteration=2, verdict=Verdict.SELECTED),
    ).ids
    seed = structures.insert_structures(
        campaign.id, records(frames(1, seed=3), Origin.RATTLED, iteration=2)
    ).ids
    structures.insert_structures(campaign.id, records(frames(1, seed=4), iteration=3))
    assert structures.structure_ids(campaign.id, 2) == sorted(md + seed)
    assert structures.structure_ids(campaign.id, 2, verdicts=[Verdict.SELECTED]) == sorted(md[3:])
    assert structures.structure_ids(
        campaign.id, 2, verdicts=[Verdict.SELECTED], system="water"
    ) == sorted(md[3:5])
    assert structures.structure_ids(campaign.id, 2, origins=[Origin.RATTLED]) == seed
    assert structures.structure_ids(campaign.id, 4) == []


def test_frame_info_gives_hash_system_and_deviation(campaign):
    recs = records(frames(1), uncertainty={"force_dev_max": 0.25}) + records(
        frames(1, seed=1), system="ice"
    )
    ids = structures.insert_structures(campaign.id, recs).ids
    info = structures.frame_info(ids)
    assert set(info) == set(ids)
    assert (info[ids[0]].hash, info[ids[0]].system) == (recs[0].hash, "water")
    assert info[ids[0]].force_dev_max == pytest.approx(0.25)
    assert info[ids[1]].system == "ice" and math.isnan(info[ids[1]].force_dev_max)


def test_only_unlabelled_md_frames_of_the_iteration_are_deleted(campaign):
    md = structures.insert_structures(campaign.id, records(frames(3), iteration=1)).ids
    seeds = structures.insert_structures(
        campaign.id, records(frames(1, seed=1), Origin.RATTLED, iteration=1)
    ).ids
    later = structures.insert_structures(campaign.id, records(frames(1, seed=2), iteration=2)).ids
    labels.record_label(campaign.id, LabelRecord(md[0], "s", LabelStatus.OK, energy=-1.0))
    assert structures.delete_unlabelled_frames(campaign.id, 1) == 2
    left = {s.id for s in Structure.objects(campaign=campaign.id)}
    assert left == {md[0], *seeds, *later}
    assert structures.delete_unlabelled_frames(campaign.id, 1) == 0
