"""Training with explicit isolated-atom E0s (and stress): MACE's command line, the model it
builds, and what each member stores about them."""

from __future__ import annotations

import ast
from functools import partial

import numpy as np
import pytest

from aloop.config import ModelConfig
from aloop.models.io import load_model
from aloop.models.train import hyperparameters, mace_arguments, train_committee
from aloop.records import REF_STRESS
from aloop.vocabulary import E0Source

TINY = ModelConfig(
    committee_size=2, num_channels=8, max_L=0, r_max=4.0, epochs=2, batch_size=5, patience=50
)


def _argv(tmp_path):
    return partial(
        mace_arguments,
        name="m",
        seed=0,
        train_file=tmp_path / "t.xyz",
        valid_file=tmp_path / "v.xyz",
        workdir=tmp_path,
        device="cpu",
        epochs=1,
    )


def _flag(argv, name):
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) <= 1
    return values[0] if values else None


def test_isolated_atom_e0s_go_to_mace_as_an_exact_dict_by_atomic_number(tmp_path):
    argv = _argv(tmp_path)(TINY, atomic_energies={8: -2035.123456789012, 1: -12.48})
    value = _flag(argv, "E0s")
    assert value == "{1: -12.48, 8: -2035.123456789012}"
    assert ast.literal_eval(value) == {1: -12.48, 8: -2035.123456789012}  # MACE's reader
    with pytest.raises(ValueError, match="no isolated-atom energies"):
        _argv(tmp_path)(TINY)
    # average is kept as an explicit choice (and needs no energies)
    average = TINY.model_copy(update={"e0s": E0Source.AVERAGE})
    assert _flag(_argv(tmp_path)(average), "E0s") == "average"
    assert _flag(_argv(tmp_path)(average, atomic_energies={1: -1.0}), "E0s") == "average"


def test_stress_is_trained_with_mace_stress_loss_only_when_the_frames_carry_it(tmp_path):
    cfg = TINY.model_copy(update={"stress_weight": 0.25})
    with_stress = _argv(tmp_path)(cfg, atomic_energies={1: -1.0}, stress=True)
    assert _flag(with_stress, "loss") == "stress"  # MACE's "weighted" ignores stress
    assert _flag(with_stress, "stress_key") == REF_STRESS
    assert _flag(with_stress, "stress_weight") == "0.25"
    without = _argv(tmp_path)(cfg, atomic_energies={1: -1.0})
    assert _flag(without, "loss") is None and _flag(without, "stress_weight") is None
    assert hyperparameters(cfg)["stress_weight"] == 0.25
    assert hyperparameters(cfg)["e0s"] == E0Source.ISOLATED_ATOMS == "isolated_atoms"


def test_members_train_on_the_isolated_atom_energies_and_store_them(
    water_dataset, water_e0s, tmp_path
):
    frames, ids = water_dataset
    frames, ids = frames[:12], ids[:12]
    with pytest.raises(ValueError, match=r"no isolated-atom energy \(E0\) for O"):
        train_committee(frames, ids, TINY, tmp_path / "x", atomic_energies={1: water_e0s[1]})
    with pytest.raises(ValueError, match="needs atomic_energies"):
        train_committee(frames, ids, TINY, tmp_path / "y")
    (member,) = train_committee(
        frames, ids, TINY, tmp_path / "e0", members=[0], atomic_energies=water_e0s
    )
    model = load_model(member.weights, member.sha256)
    # The model's own atomic energies are the labelled atoms', element by element.
    zs = [int(z) for z in model.atomic_numbers]
    stored = model.atomic_energies_fn.atomic_energies.detach().cpu().numpy().ravel()
    assert zs == [1, 8]
    np.testing.assert_allclose(stored, [water_e0s[1], water_e0s[8]], rtol=0, atol=1e-9)
    hp = member.hyperparameters
    assert hp["e0s"] == "isolated_atoms" and hp["stress"] is False
    assert hp["atomic_energies"] == {"H": water_e0s[1], "O": water_e0s[8]}
    # An isolated H atom's energy is what the model predicts for it (no interactions).
    from aloop.isolated_atoms import isolated_atom
    from aloop.models.committee import Committee

    alone = Committee([model]).evaluate([isolated_atom("H", periodic=False)])
    assert alone.energy[0] == pytest.approx(water_e0s[1], abs=1e-6)


def test_a_mixed_set_with_stress_on_some_cells_trains(water_dataset, water_e0s, tmp_path):
    """Molecules and cells without a stress get MACE's stress weight 0: MACE accepts the
    set and the member records that it trained on stress."""
    frames, ids = water_dataset
    mixed = []
    rng = np.random.default_rng(0)
    for i, a in enumerate(frames[:10]):
        b = a.copy()
        if i % 2 == 0:
            b.cell, b.pbc = np.eye(3) * 8.0, True
            if i % 4 == 0:  # some cells carry a stress (any number: MACE's input contract)
                b.info[REF_STRESS] = rng.normal(scale=1e-3, size=6)
        mixed.append(b)
    (member,) = train_committee(
        mixed, ids[:10], TINY, tmp_path / "s", members=[0], atomic_energies=water_e0s
    )
    assert member.hyperparameters["stress"] is True
    assert member.learning_curve and np.isfinite(member.metrics["valid"]["forces_rmse"])
