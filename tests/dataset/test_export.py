"""aloop export: curated, reproducible, MACE-ready files with a manifest and lineage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from typer.testing import CliRunner

from aloop.cli import app
from aloop.dataset.export import sha256_file
from aloop.records import REF_ENERGY, REF_FORCES
from tests.dataset.conftest import OUTLIER, SETTINGS, run_mace_train

runner = CliRunner()


def _export(uri: str, out: Path, *extra: str):
    return runner.invoke(app, ["export", "exp", "--out", str(out), "--db", uri, *extra])


def _split_ids(out: Path) -> dict[str, list[str]]:
    return {
        s: [a.info["structure_id"].removeprefix("s-") for a in read(out / f"{s}.xyz", ":")]
        for s in ("train", "valid", "test")
        if (out / f"{s}.xyz").stat().st_size
    }


def test_export_writes_every_ok_label_with_provenance(labelled_campaign, tmp_path):
    uri, _, by_id, failed_id = labelled_campaign
    out = tmp_path / "ds"
    result = _export(uri, out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 40, "valid": 5, "test": 5}
    assert manifest["counts_per_system"]["train"] == {"water": 24, "water-hot": 16}
    assert list(manifest["label_settings"]) == [SETTINGS.settings_hash()]
    assert manifest["label_settings"][SETTINGS.settings_hash()]["basis"] == "sto-3g"
    for f in manifest["files"]:
        assert sha256_file(out / f["name"]) == f["sha256"]
    frames = [a for s in ("train", "valid", "test") for a in read(out / f"{s}.xyz", ":")]
    assert len(frames) == 50
    # Ids carry "s-" in files, so no hex id can read back as a number.
    assert all(a.info["structure_id"].startswith("s-") for a in frames)
    seen = {a.info["structure_id"].removeprefix("s-") for a in frames}
    assert failed_id not in seen and seen == set(by_id)
    for a in frames:
        ref = by_id[a.info["structure_id"].removeprefix("s-")]
        # Bit for bit what was labelled, under MACE's keys.
        assert np.array_equal(a.positions, ref.positions)
        assert a.info[REF_ENERGY] == ref.info[REF_ENERGY]
        assert np.array_equal(a.arrays[REF_FORCES], ref.arrays[REF_FORCES])
        assert a.info["config_type"] in ("water", "water-hot")
        assert a.info["campaign"] == "exp"
        assert a.info["label_settings_hash"] == SETTINGS.settings_hash()
        assert a.info["origin"] in ("rattled", "md")
        if a.info["origin"] == "md":
            assert a.info["force_dev_max"] > 0
    # An export never silently overwrites another.
    again = _export(uri, out)
    assert again.exit_code == 2 and "--force" in again.output
    assert _export(uri, out, "--force").exit_code == 0


def test_split_is_reproducible_by_seed_and_stratified(labelled_campaign, tmp_path):
    uri = labelled_campaign[0]
    runs = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert _export(uri, tmp_path / name, "--seed", seed, "--format", "extxyz").exit_code == 0
        runs[name] = _split_ids(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    # Stratified: each system split in the requested proportions.
    assert _export(uri, tmp_path / "s", "--split", "0.5,0.5,0", "--format", "extxyz").exit_code == 0
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["counts_per_system"]["train"] == {"water": 15, "water-hot": 10}
    assert manifest["counts_per_system"]["valid"] == {"water": 15, "water-hot": 10}


def test_outliers_are_reported_and_removed_or_kept(labelled_campaign, tmp_path):
    uri, _, by_id, _ = labelled_campaign
    outlier_id = list(by_id)[OUTLIER]
    removed = _export(uri, tmp_path / "r", "--outliers", "6")
    assert removed.exit_code == 0, removed.output
    assert f"outlier removed: {outlier_id}" in removed.output
    assert "robust SDs" in removed.output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert list(manifest["removed"]["outliers"]) == [outlier_id]
    assert sum(manifest["counts"].values()) == 49
    kept = _export(uri, tmp_path / "k", "--outliers", "6", "--keep-outliers")
    assert f"outlier kept: {outlier_id}" in kept.output
    assert sum(json.loads((tmp_path / "k" / "manifest.json").read_text())["counts"].values()) == 50


def test_bad_requests_exit_2_with_a_reason(labelled_campaign, tmp_path):
    uri = labelled_campaign[0]
    for args, message in (
        (["--split", "0.9,0.2,0"], "summing to 1"),
        (["--format", "csv"], "unknown format"),
        (["--system", "nosuch"], "no successfully labelled structure"),
    ):
        result = _export(uri, tmp_path / "x", *args)
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(app, ["export", "nosuch", "--out", str(tmp_path / "y"), "--db", uri])
    assert result.exit_code == 2 and "no campaign named 'nosuch'" in result.output


def test_ase_db_export_opens_with_the_ase_db_command(labelled_campaign, tmp_path):
    uri = labelled_campaign[0]
    assert _export(uri, tmp_path / "d", "--format", "ase-db").exit_code == 0
    ase = shutil.which("ase", path=str(Path(sys.executable).parent))
    assert ase is not None
    shown = subprocess.run(
        [ase, "db", str(tmp_path / "d" / "dataset.db"), "-L", "60"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Rows: 50" in shown.stdout
    for key in ("REF_energy", "config_type", "structure_id", "label_settings_hash", "split"):
        assert key in shown.stdout, shown.stdout
    import ase.db

    row = next(ase.db.connect(str(tmp_path / "d" / "dataset.db")).select(config_type="water"))
    assert row.data[REF_FORCES].shape == (3, 3)


@pytest.mark.slow
def test_mace_run_train_trains_on_the_export_directly(labelled_campaign, tmp_path):
    """The real consumer: mace's own command line, on the files as written."""
    uri = labelled_campaign[0]
    out = tmp_path / "m"
    assert _export(uri, out, "--format", "extxyz").exit_code == 0
    extra = [f"--test_file={out / 'test.xyz'}", "--E0s=average", "--max_num_epochs=2"]
    run = run_mace_train(out, tmp_path / "mace", *extra)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "mace" / "exported.model").is_file()
    # MACE read every split and grouped the test frames by config_type (the system).
    assert "train=40, valid=5, tests=[" in run.stdout
    assert "water_Default: 3" in run.stdout and "water-hot_Default: 2" in run.stdout


def test_fast_embedded_scan_reads_what_the_query_engine_reads(labelled_campaign):
    """The export's direct read of the embedded store's files against its query engine."""
    from bson import ObjectId

    from db import connection
    from db.documents import Campaign
    from db.scan import scan

    uri = labelled_campaign[0]
    connection.connect(uri)
    try:
        cid = Campaign.objects.get(name="exp").id
        for collection, query in (
            ("labels", {"campaign": cid, "status": "ok"}),
            ("structures", {"campaign": cid, "system": {"$in": ["water-hot"]}}),
            ("structures", {"campaign": cid, "$or": [{"origin": "rattled"}, {"iteration": 1}]}),
            ("labels", {"campaign": ObjectId(), "status": "ok"}),
        ):
            fast = list(scan(collection, query, fast=True))
            slow = list(scan(collection, query, fast=False))
            assert [d["_id"] for d in fast] == [d["_id"] for d in slow]
            assert fast == slow
        assert (
            len(list(scan("structures", {"campaign": cid, "system": {"$in": ["water-hot"]}}))) == 20
        )
    finally:
        connection.disconnect()


def test_labels_with_stress_export_to_both_formats(labelled_campaign, tmp_path):
    """A periodic label's stress goes to extxyz (REF_stress) and to the ase.db data."""
    import ase.db
    from ase.build import bulk

    from aloop.records import LabelRecord, StructureRecord
    from aloop.vocabulary import LabelStatus, Origin
    from db import campaigns, connection, labels, structures

    uri = labelled_campaign[0]
    connection.connect(uri)
    try:
        camp = campaigns.get_campaign("exp")
        cell = bulk("Si", "diamond", a=5.43)
        sid = structures.insert_structures(
            camp.id, [StructureRecord.from_atoms(cell, "si", Origin.MD)]
        ).ids[0]
        stress = np.array([0.01, 0.02, 0.03, 0.0, 0.0, 0.001])
        labels.record_label(
            camp.id,
            LabelRecord(
                structure_id=sid,
                settings_hash=SETTINGS.settings_hash(),
                status=LabelStatus.OK,
                energy=-10.0,
                forces=np.zeros((2, 3)),
                stress=stress,
            ),
        )
    finally:
        connection.disconnect()
    out = tmp_path / "st"
    result = _export(uri, out, "--system", "si", "--split", "1,0,0")
    assert result.exit_code == 0, result.output
    frame = read(out / "train.xyz")
    assert np.array_equal(frame.info["REF_stress"], stress)
    row = next(ase.db.connect(str(out / "dataset.db")).select())
    assert np.array_equal(row.data["REF_stress"], stress)
    # the manifest counts the stressed frames and trains on them (MACE's default loss
    # ignores stress); an export of molecules says neither
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames_with_stress"] == 1
    assert "--loss=stress" in manifest["mace_run_train"]
    water = tmp_path / "water"
    assert _export(uri, water, "--system", "water").exit_code == 0
    manifest = json.loads((water / "manifest.json").read_text())
    assert manifest["frames_with_stress"] == 0
    assert "--loss" not in manifest["mace_run_train"]


def test_ids_and_names_that_look_like_numbers_survive_both_formats(tmp_path):
    """About 4 in 100,000 hex ids read as numbers (``1234e5...``); a campaign may be called
    "2024". A small in-test source (instead of a database) feeds the real writers."""
    import ase.db
    from ase.build import molecule

    from aloop.dataset.export import ExportOptions, Summary, export_dataset

    ids = ["38355008229e622760038304", "123456789012345678901234"]

    class Source:
        def summaries(self):
            for i, sid in enumerate(ids):
                yield Summary(sid, "2024", f"hash{i}", "x" * 64, -1.0, 0.1)

        def records(self, wanted):
            for sid in wanted:
                water = molecule("H2O")
                yield {
                    "structure_id": sid, "campaign": "2024", "system": "2024",
                    "numbers": water.numbers, "positions": water.positions,
                    "cell": np.zeros((3, 3)), "pbc": [False] * 3, "iteration": 1,
                    "origin": "md", "energy": -1.0, "forces": np.zeros((3, 3)),
                    "settings_hash": "1" * 64,
                }  # fmt: skip

        def label_settings(self):
            return {}

    export_dataset(Source(), tmp_path, ExportOptions(fractions=(1, 0, 0)), {})
    frames = read(tmp_path / "train.xyz", ":")
    assert sorted(f.info["structure_id"] for f in frames) == sorted(f"s-{i}" for i in ids)
    rows = list(ase.db.connect(str(tmp_path / "dataset.db")).select())
    assert sorted(r.structure_id for r in rows) == sorted(f"s-{i}" for i in ids)
    assert {r.data["campaign"] for r in rows} == {"2024"}  # kept exact, in the row's data


def test_a_split_without_valid_and_test_says_so(labelled_campaign, tmp_path):
    uri, name, _, _ = labelled_campaign
    out = tmp_path / "all-train"
    result = runner.invoke(
        app, ["export", name, "--out", str(out), "--split", "1,0,0", "--db", uri]
    )
    assert result.exit_code == 0, result.output
    assert "warning: valid and test are empty" in result.stderr
    result = runner.invoke(app, ["export", name, "--out", str(tmp_path / "b"), "--db", uri])
    assert "warning" not in result.stderr
