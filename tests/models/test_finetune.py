"""Fine-tuning a foundation model the way MACE recommends: multihead replay, offline.

The real mace trainer runs. The foundation is a stand-in (no model hub is reachable
here): a member of the shared water committee, a MACE model trained on HF/STO-3G water,
with part of its training set as the local replay file. The campaign's config asks for
another architecture (32 channels, r_max 5 Å) than the foundation's (8, 4 Å): MACE takes
the foundation's, and that is what must be stored.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import write

from aloop.config import ModelConfig
from aloop.models.committee import Committee
from aloop.models.io import load_model, sha256_bytes
from aloop.models.train import mace_arguments, model_architecture, train_committee
from aloop.vocabulary import FinetuneMode


@pytest.fixture(scope="module")
def foundation(water_committee, tmp_path_factory):
    """(foundation model file, replay extxyz): the stand-in foundation and 30 of the
    frames it was trained on."""
    frames, _, members = water_committee
    folder = tmp_path_factory.mktemp("foundation")
    model = folder / "foundation.model"
    model.write_bytes(members[0].weights)
    replay = folder / "replay.xyz"
    write(replay, frames[:30], format="extxyz")
    return model, replay


def _config(model, replay, **overrides) -> ModelConfig:
    return ModelConfig(
        committee_size=2,
        num_channels=32,
        max_L=0,
        r_max=5.0,
        epochs=2,
        batch_size=5,
        patience=50,
        warm_start="foundation",
        foundation_model=str(model),
        replay_file=str(replay),
        replay_samples=12,
        **overrides,
    )


@pytest.fixture(scope="module")
def finetuned(foundation, water_dataset, water_e0s, tmp_path_factory):
    model, replay = foundation
    frames, ids = water_dataset
    cfg = _config(model, replay)
    members = train_committee(
        frames[30:], ids[30:], cfg, tmp_path_factory.mktemp("ft"), atomic_energies=water_e0s
    )
    return cfg, members


def test_multihead_finetuning_replays_the_local_file_and_stores_what_mace_used(
    foundation, finetuned
):
    model, replay = foundation
    _, members = finetuned
    for m in members:
        trained = load_model(m.weights, m.sha256)
        assert list(trained.heads) == ["pt_head", "Default"]  # a replay head: not naive
        hp = m.hyperparameters
        used = model_architecture(trained)
        assert {k: hp[k] for k in used} == used
        # the foundation's architecture, not the config's 32 channels and 5 Å
        assert (hp["num_channels"], hp["r_max"]) == (8, 4.0)
        # MACE's own multihead learning rate and EMA, not the config's 0.01 and none
        assert hp["lr"] == pytest.approx(1e-4) and hp["ema_decay"] == pytest.approx(0.99999)
        assert hp["heads"] == ["pt_head", "Default"] and m.head == "Default"
        start = hp["foundation"]
        assert start["sha256"] == sha256_bytes(model.read_bytes()) == m.parent_sha256
        assert start["replay_sha256"] == sha256_bytes(replay.read_bytes())
        assert (start["finetune"], start["head"], start["replay_samples"]) == (
            "multihead",
            "Default",
            12,
        )
    # the members replay different subsets of the file (drawn by their seeds)
    subsets = {m.hyperparameters["foundation"]["replay_subset_sha256"] for m in members}
    assert len(subsets) == len(members)


def test_the_committee_evaluates_the_fine_tuned_head(finetuned, water_dataset, tmp_path):
    from mace.calculators import MACECalculator

    _, members = finetuned
    frames, _ = water_dataset
    models = [load_model(m.weights, m.sha256) for m in members]
    committee = Committee(models)
    assert committee.head == "Default"
    sample = frames[30:34]
    res = committee.evaluate(sample, per_member=True)
    path = tmp_path / "member0.model"
    path.write_bytes(members[0].weights)
    for head, same in (("Default", True), ("pt_head", False)):
        calc = MACECalculator(
            model_paths=str(path), device="cpu", default_dtype="float64", head=head
        )
        energies = []
        for a in sample:
            b = a.copy()
            b.calc = calc
            energies.append(b.get_potential_energy())
        assert np.allclose(res.energy_members[:, 0], energies, rtol=0, atol=1e-8) is same, head


def test_multihead_and_naive_fine_tuning_ask_mace_for_what_they_say(foundation, tmp_path):
    model, replay = foundation
    common = {
        "name": "m",
        "seed": 0,
        "train_file": tmp_path / "t.xyz",
        "valid_file": tmp_path / "v.xyz",
        "workdir": tmp_path,
        "device": "cpu",
        "epochs": 1,
        "foundation": model,
        "atomic_energies": {1: -13.0, 8: -2000.0},
    }
    multihead = mace_arguments(_config(model, replay), replay=replay, **common)
    assert "--multiheads_finetuning=True" in multihead
    assert f"--pt_train_file={replay}" in multihead
    naive = mace_arguments(_config(model, replay, finetune="naive"), **common)
    assert "--multiheads_finetuning=False" in naive
    assert not any(a.startswith("--pt_train_file") for a in naive)


def test_multihead_fine_tuning_with_the_campaigns_optimizer(
    foundation, water_dataset, water_e0s, tmp_path
):
    """MACE replaces the learning rate and EMA of a multihead run with its own (1e-4,
    0.99999) unless told otherwise; with ``finetune_optimizer: campaign`` the config's
    are used, and what is stored is what MACE ran with."""
    model, replay = foundation
    frames, ids = water_dataset
    cfg = _config(model, replay, finetune_optimizer="campaign", lr=0.005, ema_decay=0.99)
    (member,) = train_committee(
        frames[30:40], ids[30:40], cfg, tmp_path, members=[0], atomic_energies=water_e0s
    )
    hp = member.hyperparameters
    assert hp["lr"] == pytest.approx(0.005) and hp["ema_decay"] == pytest.approx(0.99)
    assert hp["heads"] == ["pt_head", "Default"]


def test_a_replay_file_without_labels_is_refused_before_mace_runs(
    foundation, water_dataset, water_e0s, tmp_path
):
    from ase.build import molecule

    model, _ = foundation
    frames, ids = water_dataset
    bare = tmp_path / "bare.xyz"
    write(bare, [molecule("H2O")] * 3, format="extxyz")
    with pytest.raises(ValueError, match="frame 0 has no REF_energy and REF_forces"):
        train_committee(
            frames[30:36],
            ids[30:36],
            _config(model, bare),
            tmp_path / "x",
            atomic_energies=water_e0s,
        )


def test_elements_the_foundation_lacks_are_refused_before_mace_runs(
    foundation, water_dataset, water_e0s, tmp_path
):
    """MACE cannot fine-tune an element the foundation has no weights for, and says so
    as an index error in its loader: aloop names the element and the model first."""
    from ase.build import molecule

    model, replay = foundation  # a water model: H and O
    frames, ids = water_dataset
    methane = []
    for i in range(6):
        a = molecule("CH4")
        a.positions += 0.01 * i
        a.info["REF_energy"] = -1000.0
        a.arrays["REF_forces"] = np.zeros((5, 3))
        methane.append(a)
    e0s = dict(water_e0s) | {6: -1000.0}
    with pytest.raises(ValueError, match=r"training frames hold C, which the foundation model "):
        train_committee(
            methane,
            [f"m{i}" for i in range(6)],
            _config(model, replay),
            tmp_path / "a",
            atomic_energies=e0s,
        )
    mixed = tmp_path / "mixed-replay.xyz"
    write(mixed, [*frames[:3], methane[0]], format="extxyz")
    with pytest.raises(ValueError, match=r"replay file mixed-replay.xyz hold C, which .* H, O"):
        train_committee(
            frames[30:36],
            ids[30:36],
            _config(model, mixed),
            tmp_path / "b",
            atomic_energies=water_e0s,
        )
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    with pytest.raises(
        ValueError, match=r"model.foundation_model: .*junk.model is not a MACE model"
    ):
        train_committee(
            frames[30:36],
            ids[30:36],
            _config(junk, replay),
            tmp_path / "c",
            atomic_energies=water_e0s,
        )
    assert not any((tmp_path / d).exists() for d in "abc")  # MACE never started


def test_a_fine_tuned_member_converts_for_lammps_with_its_own_head(finetuned, tmp_path):
    """MACE's converter asks which head of a multihead model on stdin; the export names
    the fine-tuned one instead of failing on a closed stdin."""
    from aloop.dataset.export import convert_for_lammps

    _, members = finetuned
    weights = {"member0.model": members[0].weights}
    account, converted = convert_for_lammps(weights, tmp_path, {"member0.model": "Default"})
    assert set(converted) == {"member0.model"} and converted["member0.model"].is_file(), account


def test_the_foundation_start_resolves_its_files_from_the_campaign_folder(tmp_path):
    """The config names its files relative to the campaign file, as structures are:
    the training stage must not read them relative to wherever aloop was started."""
    from aloop.models.foundation import FoundationStart

    cfg = _config("models/mp.model", "data/replay.xyz")
    start = FoundationStart.from_config(cfg, tmp_path)
    assert start.model == tmp_path / "models" / "mp.model"
    assert start.replay == tmp_path / "data" / "replay.xyz"
    naive = FoundationStart.from_config(
        cfg.model_copy(update={"finetune": FinetuneMode.NAIVE}), tmp_path
    )
    assert naive.replay is None
    assert FoundationStart.from_config(cfg.model_copy(update={"warm_start": "none"})) is None
    with pytest.raises(ValueError, match="needs a replay file"):
        FoundationStart(tmp_path / "mp.model")


def test_validate_checks_the_foundation_and_says_where_members_start(foundation, tmp_path):
    """``aloop validate`` (and ``aloop run``, before any DFT) loads the foundation and
    refuses a campaign with an element it has no weights for; a valid one is summarised
    with its start, its calibrated window and every stopping rule."""
    import yaml
    from typer.testing import CliRunner

    from aloop.cli import app
    from tests.aloop.test_config import with_change

    model, replay = foundation
    data = with_change("model.warm_start", "foundation")
    data["model"] |= {"foundation_model": str(model), "replay_file": str(replay)}
    data["select"] = {"trust": {"lo": 0.1, "hi": 0.5, "calibrated": True}}
    data["stop"] = {"force_error_target": 0.08, "holdout_min_frames": 12, "max_iterations": 7}
    data["explore"] = {"uncertainty_bias": {"strength_ev": 2, "width_ev": 0.1}}
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "trust [0.1, 0.5) eV/Å (calibrated)" in result.output
    assert (
        "foundation foundation.model, multihead fine-tuning replaying 200 frames of "
        "replay.xyz per member" in result.output
    )
    assert "hold-out force RMSE < 0.08 eV/Å (from 12 frames), or 7 iterations" in result.output
    assert "uncertainty bias A 2 eV, B 0.1 eV" in result.output
    data["systems"] = [{"name": "ethanol", "molecule": "CH3CH2OH"}]  # C: not in the model
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model.foundation_model: the campaign's systems hold C, which the foundation" in (
        result.stderr
    )
