"""Shared fixtures: ~50 HF/STO-3G water structures with real PySCF labels."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from dft.batch import LabelTask, label_batch
from dft.settings import LabelSettings


@pytest.fixture(scope="session")
def water_dataset():
    """(frames with REF_ keys, ids): rattled water labelled at HF/STO-3G."""
    rng = np.random.default_rng(42)
    tasks = []
    for i in range(50):
        a = molecule("H2O")
        a.positions += rng.normal(scale=0.08, size=(3, 3))
        tasks.append(LabelTask(f"w{i:02d}", a))
    records = label_batch(
        tasks, LabelSettings(method="HF", basis="sto-3g"), workers=2, on_progress=lambda p: None
    )
    by_id = {r.structure_id: r for r in records}
    frames = [by_id[t.structure_id].labelled_atoms(t.atoms) for t in tasks]
    return frames, [t.structure_id for t in tasks]
