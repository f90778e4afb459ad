"""Shared fixtures: an isolated data dir per test; labelled water and a tiny committee."""

from __future__ import annotations

import os
import tempfile

# Prefect reads its settings when first imported: keep the user's ~/.prefect out of the
# tests, and give the temporary API server time to start on a loaded 2-core machine.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="aloop-test-prefect-")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"

import numpy as np
import pytest
from ase.build import molecule

from dft.batch import LabelTask, label_batch
from dft.settings import LabelSettings


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point ALOOP_DATA_DIR at a temp dir so no test touches the user's data."""
    monkeypatch.setenv("ALOOP_DATA_DIR", str(tmp_path / "aloop-data"))
    monkeypatch.delenv("ALOOP_DB_URI", raising=False)
    return tmp_path


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


@pytest.fixture(scope="session")
def water_e0s():
    """``{atomic number: eV}``: the isolated H and O atoms labelled like the water
    dataset (HF/STO-3G, unrestricted in their ground-state multiplicities), MACE's E0s."""
    from aloop.isolated_atoms import isolated_atom

    tasks = []
    for z in (1, 8):
        atom = isolated_atom(z, periodic=False)
        tasks.append(LabelTask(f"atom{z}", atom, multiplicity=atom.info["multiplicity"]))
    records = label_batch(
        tasks, LabelSettings(method="HF", basis="sto-3g"), workers=2, on_progress=lambda p: None
    )
    assert all(r.energy is not None for r in records), [r.error for r in records]
    return {int(r.structure_id.removeprefix("atom")): r.energy for r in records}


#: The tiny committee that the model and exploration tests share (trained once).
TINY_COMMITTEE = {
    "committee_size": 3,
    "num_channels": 8,
    "max_L": 0,
    "r_max": 4.0,
    "epochs": 6,
    "batch_size": 5,
    "warm_start": "previous",
    "patience": 50,
}


@pytest.fixture(scope="session")
def water_committee(water_dataset, water_e0s, tmp_path_factory):
    """(frames, ids, members): a 3-member MACE committee trained on the water dataset."""
    from aloop.config import ModelConfig
    from aloop.models.train import train_committee

    frames, ids = water_dataset
    members = train_committee(
        frames,
        ids,
        ModelConfig(**TINY_COMMITTEE),
        tmp_path_factory.mktemp("train"),
        atomic_energies=water_e0s,
    )
    return frames, ids, members
