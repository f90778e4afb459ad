"""aloop export writes the campaign's isolated atoms into train.xyz as MACE's
``config_type=IsolatedAtom`` frames (the E0s) and lists them in the manifest, apart from
the dataset's frames, splits and curation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from typer.testing import CliRunner

from aloop.cli import app
from aloop.records import REF_ENERGY, REF_FORCES, LabelRecord
from aloop.vocabulary import LabelStatus
from db import campaigns, connection, isolated_atoms, labels
from tests.dataset.conftest import SETTINGS, run_mace_train

runner = CliRunner()


def _export(uri: str, out: Path, *extra: str):
    result = runner.invoke(app, ["export", "exp", "--out", str(out), "--db", uri, *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def with_atoms(labelled_campaign, water_e0s):
    """The labelled campaign plus its H and O isolated atoms labelled at its settings
    (and a carbon atom at other settings, which no frame of the export needs)."""
    uri = labelled_campaign[0]
    connection.connect(uri)
    try:
        campaign = campaigns.get_campaign("exp")
        ids = isolated_atoms.store_isolated_atoms(campaign.id, [1, 8], False, iteration=1)
        for z, sid in ids.items():
            labels.record_label(
                campaign.id,
                LabelRecord(
                    structure_id=sid,
                    settings_hash=SETTINGS.settings_hash(),
                    settings=SETTINGS.result_fields(),
                    status=LabelStatus.OK,
                    energy=water_e0s[z],
                    forces=np.zeros((1, 3)),
                    iteration=1,
                ),
            )
        (carbon,) = isolated_atoms.store_isolated_atoms(campaign.id, [6], False, 1).values()
        labels.record_label(
            campaign.id,
            LabelRecord(carbon, "other", LabelStatus.OK, energy=-1.0, forces=np.zeros((1, 3))),
        )
        label_ids = {
            lab.symbol: lab.label_id
            for lab in isolated_atoms.campaign_isolated_atom_labels(campaign.id)
        }
    finally:
        connection.disconnect()
    return (*labelled_campaign, ids, label_ids)


def test_isolated_atoms_go_into_train_xyz_and_the_manifest_not_into_the_dataset(
    with_atoms, water_e0s, tmp_path
):
    uri, _, by_id, _, ids, label_ids = with_atoms
    manifest = _export(uri, tmp_path / "ds")
    # The dataset's counts, splits and curation are the frames' alone.
    assert manifest["counts"] == {"train": 40, "valid": 5, "test": 5}
    assert manifest["removed"]["duplicates"] == {}
    train = read(tmp_path / "ds" / "train.xyz", ":")
    atoms = [a for a in train if a.info["config_type"] == "IsolatedAtom"]
    assert len(train) == 42 and len(atoms) == 2
    assert {a.info["structure_id"].removeprefix("s-") for a in train if len(a) == 3} <= set(by_id)
    for a in atoms:
        z = int(a.numbers[0])
        assert len(a) == 1 and a.info[REF_ENERGY] == water_e0s[z]  # bit for bit
        assert a.info["structure_id"] == "s-" + ids[z]
        assert a.info["multiplicity"] == {1: 2, 8: 3}[z]
        assert np.array_equal(a.arrays[REF_FORCES], np.zeros((1, 3)))
    for split in ("valid", "test"):
        assert all(len(a) == 3 for a in read(tmp_path / "ds" / f"{split}.xyz", ":"))
    entry = manifest["isolated_atoms"]
    assert entry["written_to"] == "train.xyz" and entry["not_written_because"] is None
    assert set(entry["E0s"]) == {"H", "O"}  # carbon: no frame needs it
    for sym, z in (("H", 1), ("O", 8)):
        e0 = entry["E0s"][sym]
        assert e0["energy_eV"] == water_e0s[z] and e0["label_id"] == label_ids[sym]
        assert e0["structure_id"] == ids[z] and e0["settings_hash"] == SETTINGS.settings_hash()
    (train_file,) = [f for f in manifest["files"] if f["name"] == "train.xyz"]
    assert train_file["frames"] == 40 and train_file["isolated_atom_frames"] == 2
    # MACE takes the E0s from train.xyz's IsolatedAtom frames: no --E0s on the line.
    assert "--E0s" not in manifest["mace_run_train"]

    # A query on one system still carries the E0s of its elements.
    one = _export(uri, tmp_path / "one", "--system", "water")
    assert one["counts"] == {"train": 24, "valid": 3, "test": 3}
    assert set(one["isolated_atoms"]["E0s"]) == {"H", "O"}


def test_an_export_without_the_atoms_says_so_and_trains_with_average(labelled_campaign, tmp_path):
    manifest = _export(labelled_campaign[0], tmp_path / "ds")
    entry = manifest["isolated_atoms"]
    assert entry["written_to"] is None and entry["E0s"] == {}
    assert "H has no isolated-atom label" in entry["not_written_because"]
    assert "--E0s=average" in manifest["mace_run_train"]
    assert all(
        a.info["config_type"] != "IsolatedAtom" for a in read(tmp_path / "ds" / "train.xyz", ":")
    )


@pytest.mark.slow
def test_mace_trains_on_the_export_with_its_isolated_atom_e0s(with_atoms, water_e0s, tmp_path):
    """The real consumer: mace_run_train on the files as written, without --E0s."""
    uri = with_atoms[0]
    out = tmp_path / "m"
    _export(uri, out, "--format", "extxyz")
    run = run_mace_train(out, tmp_path / "mace", "--max_num_epochs=1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert "Using isolated atom energies from training file" in log
    assert "train=40, valid=5" in log  # the isolated atoms are not training frames
    assert f"1: {water_e0s[1]}" in log and f"8: {water_e0s[8]}" in log
