"""Batch labelling persisted through the data layer: resumable without redoing DFT."""

from __future__ import annotations

import numpy as np
from ase.build import molecule

from aloop.records import StructureRecord
from aloop.vocabulary import Origin
from db import campaigns, labels, structures
from db.documents import Label
from dft.batch import LabelTask, label_batch
from dft.settings import LabelSettings

SETTINGS = LabelSettings(method="HF", basis="sto-3g")


def test_interrupted_batch_resumes_with_only_the_missing_structures(backend):
    campaign, _ = campaigns.get_or_create_campaign("resume", {"campaign": "resume"}, "r" * 64)
    rng = np.random.default_rng(4)
    frames = []
    for _ in range(4):
        a = molecule("H2O")
        a.positions += rng.normal(scale=0.03, size=(3, 3))
        frames.append(a)
    ids = structures.insert_structures(
        campaign.id, [StructureRecord.from_atoms(a, "water", Origin.MD) for a in frames]
    ).ids
    tasks = [LabelTask(sid, a) for sid, a in zip(ids, structures.load_atoms(ids), strict=True)]

    def persist(rec):
        labels.record_label(campaign.id, rec)

    # first run "crashes" after two structures: only they were handed to the batch
    label_batch(tasks[:2], SETTINGS, workers=1, on_result=persist, on_progress=lambda p: None)
    done = labels.labelled_ids(ids, SETTINGS.settings_hash())
    assert done == set(ids[:2])

    computed = []
    label_batch(
        tasks,
        SETTINGS,
        workers=2,
        skip=done,
        on_result=lambda r: (computed.append(r.structure_id), persist(r)),
        on_progress=lambda p: None,
    )
    assert sorted(computed) == sorted(ids[2:])
    assert Label.objects(campaign=campaign.id).count() == 4
    label = Label.objects.get(structure=ids[3])
    assert label.status == "ok" and label.forces.shape == (3, 3)
    assert label.scf_attempts[0].strategy == "diis"
