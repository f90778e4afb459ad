"""aloop import (round trip with export, unlabelled frames) and aloop show (lineage)."""

from __future__ import annotations

import numpy as np
import yaml
from ase.build import molecule
from ase.io import write
from typer.testing import CliRunner

from aloop.cli import app
from aloop.records import REF_ENERGY, REF_FORCES, StructureRecord
from aloop.structures import atoms_hash
from aloop.vocabulary import Origin, Stage, StageStatus, Verdict
from db import campaigns, connection, iterations, labels, models, structures
from db.documents import Campaign, Label, Structure
from dft.label import label_structure
from tests.dataset.conftest import SETTINGS

runner = CliRunner()


def _config(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "campaign": name,
                "systems": [{"name": "water", "molecule": "H2O"}],
                "dft": {"method": "HF", "basis": "sto-3g"},
            }
        )
    )
    return str(path)


def test_export_then_import_is_bit_identical(labelled_campaign, tmp_path):
    uri, _, by_id, _ = labelled_campaign
    out = tmp_path / "ds"
    args = ["export", "exp", "--out", str(out), "--split", "1,0,0", "--format", "extxyz"]
    assert runner.invoke(app, [*args, "--db", uri]).exit_code == 0
    result = runner.invoke(
        app, ["import", _config(tmp_path, "imp"), str(out / "train.xyz"), "--db", uri]
    )
    assert result.exit_code == 0, result.output
    assert "50 new structures, 50 labels, 0 to label" in result.output

    connection.connect(uri)
    try:
        imp = Campaign.objects.get(name="imp")
        stored = {s.hash: s for s in Structure.objects(campaign=imp.id)}
        labels = {lab.structure.id: lab for lab in Label.objects(campaign=imp.id)}
        assert len(stored) == len(labels) == 50
        for ref in by_id.values():
            s = stored[atoms_hash(ref)]
            assert np.array_equal(s.positions, ref.positions)  # bit for bit
            assert s.origin == "imported" and s.lineage.source_file.endswith("train.xyz")
            lab = labels[s.id]
            assert lab.energy == ref.info[REF_ENERGY]
            assert np.array_equal(lab.forces, ref.arrays[REF_FORCES])
            assert lab.settings_hash == SETTINGS.settings_hash()
            assert len(lab.settings["source_sha256"]) == 64
    finally:
        connection.disconnect()


def test_unlabelled_frames_become_structures_to_label(tmp_path):
    uri = f"embedded://{tmp_path / 'db'}"
    frames = []
    for i in range(3):
        a = molecule("H2O")
        a.positions += np.random.default_rng(i).normal(scale=0.05, size=(3, 3))
        frames.append(a)
    source = tmp_path / "plain.xyz"
    write(source, frames)
    config = _config(tmp_path, "fresh")
    result = runner.invoke(app, ["import", config, str(source), "--db", uri])
    assert result.exit_code == 0, result.output
    assert "3 new structures, 0 labels, 3 to label" in result.output
    connection.connect(uri)
    try:
        camp = Campaign.objects.get(name="fresh")
        docs = list(Structure.objects(campaign=camp.id))
        assert {(d.origin, d.iteration, d.verdict) for d in docs} == {("imported", 0, "selected")}
        # Once iteration 0 is labelled, unlabelled imports would never be labelled.
        it0 = iterations.get_or_create_iteration(camp.id, 0)
        iterations.set_stage(it0, Stage.LABEL, StageStatus.RUNNING)
        iterations.set_stage(it0, Stage.LABEL, StageStatus.DONE)
    finally:
        connection.disconnect()
    write(source, [f.copy() for f in frames[:1]])
    refused = runner.invoke(app, ["import", config, str(source), "--db", uri])
    assert refused.exit_code == 2 and "finished labelling" in refused.output
    # Hartree units and other keys are converted to eV.
    labelled = frames[0].copy()
    labelled.positions[0] += 0.01
    labelled.info["e_ha"] = -75.0
    labelled.arrays["f_hb"] = np.ones((3, 3))
    write(source, [labelled])
    result = runner.invoke(
        app,
        [
            "import",
            config,
            str(source),
            "--db",
            uri,
            "--units",
            "hartree",
            "--energy-key",
            "e_ha",
            "--forces-key",
            "f_hb",
        ],
    )
    assert result.exit_code == 0, result.output
    connection.connect(uri)
    try:
        lab = Label.objects.get(campaign=Campaign.objects.get(name="fresh").id)
        assert lab.energy == -75.0 * 27.211386024367243
        assert np.allclose(lab.forces, 27.211386024367243 / 0.5291772105638411)
    finally:
        connection.disconnect()
    bad = runner.invoke(app, ["import", config, str(tmp_path / "none.xyz"), "--db", uri])
    assert bad.exit_code == 2 and "file not found" in bad.output


def test_show_prints_a_structures_history(labelled_campaign, tmp_path):
    uri, _, _, failed_id = labelled_campaign
    connection.connect(uri)
    try:
        camp = campaigns.get_campaign("exp")
        atoms = molecule("H2O")
        atoms.positions[0] += 0.02
        sid = structures.insert_structures(
            camp.id,
            [
                StructureRecord.from_atoms(
                    atoms,
                    "water",
                    Origin.MD,
                    iteration=2,
                    lineage={"walker": 3, "temperature": 600.0, "md_step": 40},
                    uncertainty={
                        "force_dev_max": 0.123,
                        "force_dev_mean": 0.05,
                        "energy_dev": 0.01,
                    },
                    verdict=Verdict.SELECTED,
                    verdict_reason="diverse candidate (fps)",
                )
            ],
        ).ids[0]
        labels.record_label(camp.id, label_structure(sid, atoms, SETTINGS))
        models.store_model(
            camp,
            iteration=3,
            member=1,
            seed=1,
            weights=b"w",
            hyperparameters={},
            training_set=[sid],
        )
    finally:
        connection.disconnect()
    shown = runner.invoke(app, ["show", sid, "--db", uri], env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    for text in (
        "exp / water",
        "md, iteration 2",
        "walker 3, 600.0 K, step 40",
        "max force dev 0.1230 eV/Å",
        "selected: diverse candidate (fps)",
        "label ok at HF/sto-3g",
        "diis",
        "iteration 3 member 1",
    ):
        assert text in shown.output, shown.output
    as_in_files = runner.invoke(app, ["show", f"s-{sid}", "--db", uri], env={"COLUMNS": "160"})
    assert as_in_files.exit_code == 0 and "md, iteration 2" in as_in_files.output
    failed = runner.invoke(app, ["show", failed_id, "--db", uri], env={"COLUMNS": "160"})
    assert "label failed" in failed.output and "SCF did not converge" in failed.output
    missing = runner.invoke(app, ["show", "0" * 24, "--db", uri])
    assert missing.exit_code == 2 and "no structure" in missing.output
