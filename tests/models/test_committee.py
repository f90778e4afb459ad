"""MACE committee: training with provenance, hash-checked loading, batched inference.

Committee results are compared with mace's own MACECalculator evaluating each member
separately; float64 models agree to 1e-8 eV (energies) and 1e-8 eV/Å (forces), the
spread of summation order between one batch and single structures.
"""

from __future__ import annotations

import numpy as np
import pytest

from aloop.config import ModelConfig
from aloop.models.committee import Committee, CommitteeCalculator
from aloop.models.io import ModelHashMismatch, load_model
from aloop.models.train import model_architecture, train_committee

TINY = ModelConfig(
    committee_size=3,
    num_channels=8,
    max_L=0,
    r_max=4.0,
    epochs=6,
    batch_size=5,
    warm_start="previous",
    patience=50,
)


@pytest.fixture(scope="module")
def trained(water_dataset, water_e0s, tmp_path_factory):
    frames, ids = water_dataset
    members = train_committee(
        frames, ids, TINY, tmp_path_factory.mktemp("train"), atomic_energies=water_e0s
    )
    return frames, ids, members


def test_committee_trains_with_provenance(trained):
    _, ids, members = trained
    assert [m.seed for m in members] == [0, 1, 2]
    assert len({m.sha256 for m in members}) == 3  # different seeds, different models
    for m in members:
        assert sorted(m.training_ids + m.valid_ids) == sorted(ids)
        assert set(m.training_ids).isdisjoint(m.valid_ids)
        assert m.epochs == TINY.epochs
        assert m.hyperparameters["num_channels"] == 8 and m.device == "cpu"
        # what is stored is what the trained model is, read back from it
        used = model_architecture(load_model(m.weights, m.sha256))
        assert {k: m.hyperparameters[k] for k in used} == used
        assert used["r_max"] == TINY.r_max and used["max_L"] == TINY.max_L
        assert m.hyperparameters["heads"] == ["Default"] and "foundation" not in m.hyperparameters
        assert m.head == "Default"
        assert m.code_versions["mace-torch"] != "absent"
        for split in ("train", "valid"):
            assert 0 < m.metrics[split]["forces_rmse"] < 5.0
        assert m.parent_sha256 is None
    # every member validates on the same frames, so their errors compare
    assert len({tuple(m.valid_ids) for m in members}) == 1


def test_committee_matches_mace_calculator_per_member(trained):
    from mace.calculators import MACECalculator

    frames, _, members = trained
    models = [load_model(m.weights, m.sha256) for m in members]
    committee = Committee(models)
    sample = frames[:7]
    res = committee.evaluate(sample, per_member=True)
    calc = MACECalculator(
        models=[load_model(m.weights, m.sha256) for m in members],
        device="cpu",
        default_dtype="float64",
    )
    for i, atoms in enumerate(sample):
        a = atoms.copy()
        a.calc = calc
        energy = a.get_potential_energy()
        forces = a.get_forces()
        assert res.energy[i] == pytest.approx(energy, abs=1e-8)
        np.testing.assert_allclose(res.forces[i], forces, atol=1e-8)
        assert res.energy_std[i] ** 2 == pytest.approx(calc.results["energy_var"], abs=1e-10)
        members_f = calc.results["forces_comm"]
        np.testing.assert_allclose(res.forces_members[i], members_f, atol=1e-8)
        dev = np.linalg.norm(members_f.std(axis=0), axis=1)
        np.testing.assert_allclose(res.force_std[i], dev, atol=1e-8)
        assert res.force_dev_max[i] == pytest.approx(dev.max(), abs=1e-8)
        assert res.force_dev_mean[i] == pytest.approx(dev.mean(), abs=1e-8)


def test_stress_deviation_is_the_largest_voigt_std_over_members(trained):
    """Against MACE's calculator per member: the committee-mean stress and, per cell,
    the max over the six Voigt components of the members' standard deviation."""
    from mace.calculators import MACECalculator

    frames, _, members = trained
    cells = []
    for k, a in enumerate(frames[:3]):
        b = a.copy()
        b.cell, b.pbc = np.eye(3) * (4.5 + 0.3 * k), True  # images within r_max: a real stress
        cells.append(b)
    res = Committee([load_model(m.weights, m.sha256) for m in members]).evaluate(cells, stress=True)
    for i, cell in enumerate(cells):
        per_member = []
        for m in members:
            a = cell.copy()
            a.calc = MACECalculator(
                models=[load_model(m.weights, m.sha256)], device="cpu", default_dtype="float64"
            )
            per_member.append(a.get_stress())
        per_member = np.array(per_member)
        np.testing.assert_allclose(res.stress[i], per_member.mean(axis=0), atol=1e-10)
        assert res.stress_dev[i] == pytest.approx(per_member.std(axis=0).max(), abs=1e-10)
        assert res.stress_dev[i] > 0
    assert Committee([load_model(members[0].weights, members[0].sha256)] * 2).evaluate(
        cells, stress=True
    ).stress_dev == pytest.approx(0.0, abs=1e-12)


def test_committee_calculator_and_descriptors(trained):
    frames, _, members = trained
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    a = frames[0].copy()
    a.calc = CommitteeCalculator(committee)
    a.get_potential_energy()
    assert a.calc.results["forces_comm"].shape == (3, 3, 3)
    assert a.calc.results["force_dev_max"] == pytest.approx(a.calc.results["force_std"].max())
    res = committee.evaluate([frames[0], frames[0].copy(), frames[1]], descriptors=True)
    d = res.descriptors
    assert d.shape[0] == 3 and d.shape[1] >= 8
    np.testing.assert_allclose(d[0], d[1])
    assert np.abs(d[0] - d[2]).max() > 1e-6


def test_hash_mismatch_refuses_to_load(trained):
    _, _, members = trained
    data = bytearray(members[0].weights)
    data[len(data) // 2] ^= 0x01
    with pytest.raises(ModelHashMismatch, match="refusing to load"):
        load_model(bytes(data), members[0].sha256)


def _distance(a, b):
    pa = dict(a.named_parameters())
    num = den = 0.0
    for name, p in b.named_parameters():
        if name in pa and pa[name].shape == p.shape and "interactions" in name:
            num += float(((pa[name] - p) ** 2).sum())
            den += float((p**2).sum())
    return (num / den) ** 0.5


def test_warm_start_starts_from_the_parent(trained, water_e0s, tmp_path):
    frames, ids, members = trained
    one = ModelConfig(
        **{**TINY.model_dump(), "committee_size": 2, "epochs": 1, "lr": 1e-4, "seeds": [7, 8]}
    )
    parents = [m.weights for m in members[:2]]
    warm = train_committee(
        frames, ids, one, tmp_path / "warm", parents=parents, atomic_energies=water_e0s
    )
    cold = train_committee(
        frames,
        ids,
        one.model_copy(update={"warm_start": "none"}),
        tmp_path / "cold",
        atomic_energies=water_e0s,
    )
    assert [w.parent_sha256 for w in warm] == [m.sha256 for m in members[:2]]
    parent = load_model(members[0].weights, members[0].sha256)
    near = _distance(load_model(warm[0].weights, warm[0].sha256), parent)
    far = _distance(load_model(cold[0].weights, cold[0].sha256), parent)
    assert near < 0.05 < far
    # one epoch from the parent is already as good as the parent; from scratch it is not
    assert warm[0].metrics["valid"]["forces_rmse"] < cold[0].metrics["valid"]["forces_rmse"]


def test_neighbour_skin_and_moved_positions_change_nothing(trained):
    """A batch built with a skin (extra edges past r_max) and then moved in place gives
    what a fresh batch gives: MACE's cutoff envelope zeroes edges beyond r_max."""
    from ase.build import molecule

    _, _, members = trained
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    pair = molecule("H2O") + molecule("H2O")
    pair.positions[3:] += [4.6, 0.3, 0.0]  # some O-H pairs between r_max and r_max + skin
    frames = [pair, molecule("H2O")]
    skinned = committee.batch(frames, skin=2.0)
    assert skinned["edge_index"].shape[1] > committee.batch(frames)["edge_index"].shape[1]
    moved = [a.copy() for a in frames]
    for a in moved:
        a.positions += np.random.default_rng(1).normal(scale=0.1, size=a.positions.shape)
    committee.move(skinned, moved)
    fresh = committee.evaluate(moved)
    cached = committee.evaluate(moved, batch=skinned)
    np.testing.assert_allclose(cached.energy, fresh.energy, atol=1e-10)
    for f_c, f_f in zip(cached.forces, fresh.forces, strict=True):
        np.testing.assert_allclose(f_c, f_f, atol=1e-10)
    np.testing.assert_allclose(cached.force_dev_max, fresh.force_dev_max, atol=1e-10)


def test_ema_decay_trains_the_moving_average_of_the_weights(trained, water_e0s, tmp_path):
    from functools import partial

    from aloop.models.train import mace_arguments

    frames, ids, members = trained
    ema = TINY.model_copy(update={"ema_decay": 0.99})
    argv = partial(
        mace_arguments,
        name="m",
        seed=0,
        train_file=tmp_path / "t.xyz",
        valid_file=tmp_path / "v.xyz",
        workdir=tmp_path,
        device="cpu",
        epochs=1,
        atomic_energies=water_e0s,
    )
    assert argv(ema)[-2:] == ["--ema", "--ema_decay=0.99"]
    assert "--ema" not in argv(TINY)
    # MACE itself accepts it: same seed and split as member 0, a different saved model
    (member,) = train_committee(
        frames, ids, ema, tmp_path / "ema", members=[0], atomic_energies=water_e0s
    )
    assert member.hyperparameters["ema_decay"] == 0.99
    assert members[0].hyperparameters["ema_decay"] is None
    assert member.training_ids == members[0].training_ids
    assert member.sha256 != members[0].sha256
    load_model(member.weights, member.sha256)


def test_min_updates_raises_the_epochs_of_a_small_training_set():
    from aloop.models.train import epochs_for

    cfg = TINY.model_copy(update={"epochs": 20, "batch_size": 4, "min_updates": 200})
    # 7 frames are 2 batches an epoch: 100 epochs give 200 optimizer steps
    assert epochs_for(cfg, 7) == 100
    # a set large enough for 200 steps in 20 epochs keeps the configured epochs
    assert epochs_for(cfg, 40) == 20 and epochs_for(cfg, 400) == 20
    assert epochs_for(TINY, 7) == TINY.epochs  # off by default


def test_a_batch_moved_to_a_new_cell_gives_what_a_fresh_batch_gives(trained):
    """An NPT walker's cell changes every step: the cached batch takes the new cell, every
    periodic edge's shift follows it, and energy, forces and stress are those of a batch
    built afresh."""
    from ase.build import molecule

    _, _, members = trained
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    box = molecule("H2O") + molecule("H2O")
    box.positions[3:] += [2.2, 0.4, 0.3]
    box.set_cell([4.6, 4.8, 5.0])
    box.pbc = True  # small enough that edges cross the faces
    frames = [box, box.copy()]
    batch = committee.batch(frames, skin=1.0)
    assert batch["unit_shifts"].abs().sum() > 0
    strained = [a.copy() for a in frames]
    strains = [np.diag([0.02, -0.01, 0.015]), np.array([[0, 0.01, 0], [0.01, 0, 0], [0, 0, 0]])]
    for a, eps in zip(strained, strains, strict=True):
        a.set_cell(a.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    import torch

    # the new positions alone, in the old cell with the old shifts: what moving
    # positions only would evaluate
    new_positions = np.concatenate([a.positions for a in strained])
    batch["positions"] = torch.as_tensor(new_positions, dtype=batch["positions"].dtype)
    stale = committee.evaluate(strained, batch=batch, stress=True)
    committee.move(batch, strained)
    cached = committee.evaluate(strained, batch=batch, stress=True)
    fresh = committee.evaluate(strained, stress=True)
    np.testing.assert_allclose(cached.energy, fresh.energy, atol=1e-10)
    np.testing.assert_allclose(cached.stress, fresh.stress, atol=1e-12)
    for f_c, f_f in zip(cached.forces, fresh.forces, strict=True):
        np.testing.assert_allclose(f_c, f_f, atol=1e-10)
    # a batch that kept the old cell, with the new positions, is wrong
    assert not np.allclose(stale.energy, fresh.energy, rtol=0, atol=1e-6)
