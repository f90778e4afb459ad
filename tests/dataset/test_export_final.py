"""aloop export and the honest end of a campaign: the production committee named in the
manifest (never an exploring one), its members written with --models (and converted for
LAMMPS by mace-torch), and the hold-out structures kept out of train and valid."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from ase.io import read
from typer.testing import CliRunner

from aloop.cli import app
from aloop.records import CampaignRecord
from aloop.stats import FinalStats, HoldoutError, TrainingStats
from aloop.vocabulary import FINAL_STAGES, Stage, StageStatus, Verdict
from db import campaigns, connection, iterations, models, structures

runner = CliRunner()

#: The final iteration's index in the fixture (the loop ran iterations 0 and 1).
FINAL = 2
HOLDOUT_ERROR = HoldoutError(
    n=6, n_new=2, energy_rmse_per_atom=0.0042, forces_rmse=0.051, forces_max_p95=0.12
)


def _export(uri: str, out: Path, *extra: str, campaign: str = "exp"):
    return runner.invoke(app, ["export", campaign, "--out", str(out), "--db", uri, *extra])


def _tiny_mace(seed: int) -> bytes:
    """An untrained MACE model of H and O, saved as mace_run_train saves one: real weights
    for the LAMMPS conversion, in milliseconds instead of a training run."""
    import mace.modules  # first: it lets e3nn load its constants under torch >= 2.6
    import numpy as np
    import torch
    from e3nn import o3

    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(seed)
        block = mace.modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = mace.modules.MACE(
            r_max=4.0,
            num_bessel=4,
            num_polynomial_cutoff=5,
            max_ell=1,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=1,
            num_elements=2,
            hidden_irreps=o3.Irreps("4x0e"),
            MLP_irreps=o3.Irreps("4x0e"),
            atomic_energies=np.array([-13.6, -2040.0]),
            avg_num_neighbors=2.0,
            atomic_numbers=[1, 8],
            correlation=1,
            gate=torch.nn.functional.silu,
            heads=["Default"],
        )
        buf = io.BytesIO()
        torch.save(model, buf)
        return buf.getvalue()
    finally:
        torch.set_default_dtype(dtype)


@pytest.fixture(scope="module")
def tiny_weights():
    return [_tiny_mace(0), _tiny_mace(1)]


def _store(campaign: CampaignRecord, iteration: int, weights: list[bytes]) -> list[str]:
    return [
        str(
            models.store_model(
                campaign,
                iteration=iteration,
                member=k,
                seed=100 * iteration + k,
                weights=w,
                hyperparameters={"num_channels": 4},
            )
        )
        for k, w in enumerate(weights)
    ]


def _holdout(campaign: CampaignRecord, by_id: dict) -> list[str]:
    """Make three labelled iteration-1 frames of each system hold-out; their ids."""
    held = [
        sid
        for system in ("water", "water-hot")
        for sid in [
            s for s in structures.structure_ids(campaign.id, 1, system=system) if s in by_id
        ][:3]
    ]
    structures.set_verdicts((sid, Verdict.HOLDOUT, None) for sid in held)
    return held


def _final_iteration(campaign: CampaignRecord, status: StageStatus = StageStatus.DONE):
    it = iterations.get_or_create_iteration(campaign.id, FINAL, stages=FINAL_STAGES)
    iterations.set_stage(it, Stage.FINAL, StageStatus.RUNNING)
    if status is StageStatus.RUNNING:
        return it
    training = TrainingStats(
        structures=44, members_trained=2, valid_forces_rmse=0.06, valid_energy_rmse_per_atom=0.005
    )
    iterations.merge_stats(it.id, FinalStats(final=training, final_holdout=HOLDOUT_ERROR).to_doc())
    iterations.set_stage(it, Stage.FINAL, status)
    return it


@pytest.fixture
def final_campaign(labelled_campaign, tiny_weights):
    """(uri, by_id, hold-out ids, final model ids, exploring model ids): the labelled
    campaign with hold-out structures, a committee trained at iteration 1 and a done
    final iteration 2 whose two members are tiny real MACE models."""
    uri, _, by_id, _ = labelled_campaign
    connection.connect(uri)
    try:
        campaign = campaigns.get_campaign("exp")
        held = _holdout(campaign, by_id)
        exploring = _store(campaign, 1, list(reversed(tiny_weights)))
        _final_iteration(campaign)
        final = _store(campaign, FINAL, tiny_weights)
    finally:
        connection.disconnect()
    return uri, by_id, held, final, exploring


def test_manifest_names_the_production_committee_and_its_holdout_error(
    final_campaign, tmp_path, tiny_weights
):
    uri, _, _, final_ids, exploring_ids = final_campaign
    out = tmp_path / "ds"
    result = _export(uri, out, "--format", "extxyz")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    (committee,) = manifest["production_committee"]
    assert committee["campaign"] == "exp" and committee["available"] is True
    assert committee["iteration"] == FINAL
    assert committee["not_available_because"] is None
    assert [m["model_id"] for m in committee["members"]] == final_ids
    assert [m["seed"] for m in committee["members"]] == [200, 201]
    assert [m["sha256"] for m in committee["members"]] == [
        hashlib.sha256(w).hexdigest() for w in tiny_weights
    ]
    assert not set(exploring_ids) & {m["model_id"] for m in committee["members"]}
    err = committee["holdout_error"]
    assert err["n"] == 6
    assert err["forces_rmse"] == pytest.approx(0.051)
    assert err["energy_rmse_per_atom"] == pytest.approx(0.0042)
    assert err["forces_max_p95"] == pytest.approx(0.12)
    assert manifest["models"] is None  # no --models: no weights written
    assert not (out / "models").exists()
    assert "production committee of exp: iteration 2, 2 members" in result.output


@pytest.mark.parametrize("state", ["none", "running"])
def test_without_a_final_committee_the_manifest_says_so_and_models_is_refused(
    labelled_campaign, tiny_weights, tmp_path, state
):
    uri, _, _, _ = labelled_campaign
    connection.connect(uri)
    try:
        campaign = campaigns.get_campaign("exp")
        _store(campaign, 1, tiny_weights)  # an exploring committee: never the production one
        if state == "running":
            _final_iteration(campaign, StageStatus.RUNNING)
            _store(campaign, FINAL, tiny_weights[:1])  # a member of an unfinished training
    finally:
        connection.disconnect()
    out = tmp_path / "ds"
    refused = _export(uri, out, "--models")
    assert refused.exit_code == 2, refused.output
    assert "--models" in refused.output and "no final committee yet" in refused.output
    if state == "running":
        assert "final training (iteration 2) is running" in refused.output
    assert not out.exists()  # nothing written, not even half

    result = _export(uri, out, "--format", "extxyz")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    (committee,) = manifest["production_committee"]
    assert committee["available"] is False
    assert committee["members"] == [] and committee["iteration"] is None
    assert "no final committee yet" in committee["not_available_because"]
    assert "no production committee" in result.output


def test_models_writes_the_final_members_with_their_sha256_and_lammps_files(
    final_campaign, tmp_path
):
    import torch

    uri, _, _, final_ids, _ = final_campaign
    out = tmp_path / "ds"
    result = _export(uri, out, "--models", "--format", "extxyz")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    written = manifest["models"]
    assert written["campaign"] == "exp" and written["iteration"] == FINAL
    assert [m["model_id"] for m in written["members"]] == final_ids
    stored = {m["model_id"]: m["sha256"] for m in manifest["production_committee"][0]["members"]}
    sums = {}
    for line in (out / "models" / "SHA256SUMS").read_text().splitlines():
        sha, name = line.split("  ")
        sums[name] = sha
    for k, m in enumerate(written["members"]):
        assert m["file"] == f"models/member{k}.model"
        data = (out / m["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == m["sha256"] == stored[m["model_id"]]
        assert sums[f"member{k}.model"] == m["sha256"]
    lammps = written["lammps"]
    assert lammps["written"] is True, lammps["not_written_because"]
    assert lammps["converter"] == "mace.cli.create_lammps_model"
    for k, m in enumerate(written["members"]):
        assert m["lammps_file"] == f"models/member{k}.model-lammps.pt"
        path = out / m["lammps_file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == m["lammps_sha256"]
        assert sums[f"member{k}.model-lammps.pt"] == m["lammps_sha256"]
        assert torch.jit.load(str(path), map_location="cpu") is not None
    leftovers = [
        p.name for p in (out / "models").iterdir() if p.name.startswith(".") or ".part" in p.name
    ]
    assert leftovers == []


def test_a_failed_lammps_conversion_is_recorded_and_the_models_still_written(
    final_campaign, tmp_path, monkeypatch
):
    import aloop.dataset.export as export

    monkeypatch.setattr(
        export, "_LAMMPS_SCRIPT", "raise SystemExit(\"ModuleNotFoundError: No module named 'x'\")"
    )
    uri = final_campaign[0]
    out = tmp_path / "ds"
    result = _export(uri, out, "--models", "--format", "extxyz")
    assert result.exit_code == 0, result.output
    written = json.loads((out / "manifest.json").read_text())["models"]
    assert written["lammps"]["written"] is False
    assert "No module named 'x'" in written["lammps"]["not_written_because"]
    assert all(m["lammps_file"] is None for m in written["members"])
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        "SHA256SUMS",
        "member0.model",
        "member1.model",
    ]
    assert "no LAMMPS files" in result.output


@pytest.mark.parametrize("split", ["0.8,0.1,0.1", "1,0,0"])
def test_holdout_structures_land_only_in_test(final_campaign, tmp_path, split):
    uri, by_id, held, _, _ = final_campaign
    out = tmp_path / "ds"
    result = _export(uri, out, "--split", split, "--format", "extxyz")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["holdout"]["count"] == 6 and manifest["holdout"]["split"] == "test"
    assert manifest["holdout"]["per_system"] == [
        {"system": "water", "n": 3},
        {"system": "water-hot", "n": 3},
    ]
    ids = {}
    for name in ("train", "valid", "test"):
        frames = read(out / f"{name}.xyz", ":") if (out / f"{name}.xyz").stat().st_size else []
        ids[name] = {a.info["structure_id"].removeprefix("s-"): a for a in frames}
    assert set(held) <= set(ids["test"])
    assert not set(held) & (set(ids["train"]) | set(ids["valid"]))
    assert all(ids["test"][sid].info.get("holdout") is True for sid in held)
    assert not any("holdout" in a.info for s in ("train", "valid") for a in ids[s].values())
    rest = len(by_id) - len(held)
    if split == "1,0,0":
        assert manifest["counts"] == {"train": rest, "valid": 0, "test": len(held)}
        assert set(ids["test"]) == set(held)
    else:  # the fractions split the others (27 water, 17 water-hot); test adds the 6
        assert manifest["counts"] == {"train": 22 + 14, "valid": 3 + 2, "test": 2 + 1 + 6}
