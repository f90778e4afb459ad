"""Uncertainty-driven dynamics: the bias on the committee's energy variance is a surface
(its forces are its gradient), bounded, and it takes walkers where the committee
disagrees. The real water committee runs; nothing is mocked."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from aloop.config import ConfigError, parse_config
from aloop.explore.bias import UncertaintyBias
from aloop.explore.walkers import MDSettings, WalkerSpec, run_walkers
from aloop.models.committee import Committee
from aloop.models.io import load_model
from tests.aloop.test_config import with_change


@pytest.fixture
def committee(water_committee):
    _, _, members = water_committee
    return Committee([load_model(m.weights, m.sha256) for m in members])


def _bias_of(committee, bias, atoms):
    res = committee.evaluate([atoms], per_member=True)
    return bias.energy_forces(res.energy_members[0], res.forces_members[0])


def test_the_bias_forces_are_the_gradient_of_the_bias_energy(committee):
    atoms = molecule("H2O")
    atoms.positions += np.random.default_rng(0).normal(scale=0.08, size=atoms.positions.shape)
    # the width where the bias is steepest here: var(E) / (N B^2) = 1/2
    spread = committee.evaluate([atoms]).energy_std[0]
    bias = UncertaintyBias(strength_ev=0.5, width_ev=spread * np.sqrt(2 / len(atoms)))
    energy, forces = _bias_of(committee, bias, atoms)
    assert energy == pytest.approx(0.5 * (np.exp(-0.5) - 1))
    assert np.abs(forces).max() > 1e-3
    h = 1e-4
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            numeric[i, c] = -(
                _bias_of(committee, bias, plus)[0] - _bias_of(committee, bias, minus)[0]
            ) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-10)  # no net push


def test_a_committee_that_agrees_feels_no_bias():
    bias = UncertaintyBias(strength_ev=1.0, width_ev=0.05)
    same = np.tile(np.random.default_rng(1).normal(size=(1, 3, 3)), (4, 1, 1))
    energy, forces = bias.energy_forces(np.full(4, -100.0), same)
    assert energy == 0.0 and not forces.any()
    # where the members disagree by far more than the width, it saturates at -A
    energy, _ = bias.energy_forces(np.array([-100.0, -90.0, -110.0, -100.0]), same)
    assert energy == pytest.approx(-1.0)


def test_biased_walkers_go_where_the_committee_disagrees(committee):
    """Same walkers, same seeds: with the bias on, the sampled frames' committee energy
    deviation (what the bias acts on) is higher. What a frame stores is the committee's
    own deviation, not the biased surface's.

    This committee's members differ by a near-constant energy offset (0.84 eV at the
    start geometry, 0.82 on average over plain MD), so only a deep bias moves the
    walkers: A = 10 eV with the width where the bias is steepest at the start. (At 30 eV
    the walkers are driven into close contacts and stop: UDD's known failure mode.)
    """
    specs = [WalkerSpec("water", molecule("H2O"), 300.0, seed=i, walker=i) for i in range(4)]
    plain = MDSettings(steps=300, sample_interval=10, stop_force_dev=1e9, max_bond_stretch=4.0)
    start = committee.evaluate([molecule("H2O")]).energy_std[0]
    width = start * np.sqrt(2 / 3)  # var / (N B^2) = 1/2 at the start
    biased = MDSettings(**{**plain.__dict__, "bias": UncertaintyBias(10.0, width)})
    deviation = {}
    for name, md in (("plain", plain), ("biased", biased)):
        results, _ = run_walkers(committee, specs, md)
        assert all(r.completed for r in results)
        frames = [f for r in results for f in r.frames]
        deviation[name] = np.mean([f.energy_dev for f in frames])
        check = committee.evaluate([frames[-1].atoms])
        assert frames[-1].energy_dev == pytest.approx(check.energy_std[0])
    assert deviation["biased"] > deviation["plain"] + 0.02, deviation


def test_the_bias_is_refused_for_npt_walkers(committee):
    from ase.build import bulk

    cell = bulk("Cu", cubic=True)
    specs = [WalkerSpec("cell", cell, 300.0, pressure_gpa=0.0)]
    md = MDSettings(ensemble="npt", steps=2, bias=UncertaintyBias(1.0, 0.1))
    with pytest.raises(ValueError, match="cannot drive NPT walkers"):
        run_walkers(committee, specs, md)
    data = with_change("explore.uncertainty_bias", {"strength_ev": 0.5, "width_ev": 0.01})
    assert parse_config(data).explore.uncertainty_bias.width_ev == 0.01
    data["explore"] |= {"ensemble": "npt", "pressures_gpa": [0.0]}
    with pytest.raises(ConfigError, match="uncertainty_bias: it has no stress term"):
        parse_config(data)
