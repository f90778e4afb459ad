"""Training with stress, for real: a committee trained on cells whose labels carry
REF_stress predicts the stress of cells it never saw; the same committee trained on the
same energies and forces without the stress does not.

The labels come from ASE's EMT potential for copper, not DFT: what is tested is how MACE
is trained on whatever labels a cell carries, and EMT gives a consistent energy, forces
and stress for hundreds of strained cells in a second (CP2K labels are tested in
tests/dft/test_cp2k.py and end to end in tests/flows/test_periodic_campaign.py).
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from aloop.config import ModelConfig
from aloop.models.committee import Committee
from aloop.models.io import load_model
from aloop.models.train import train_committee
from aloop.records import REF_ENERGY, REF_FORCES, REF_STRESS

CONFIG = ModelConfig(
    committee_size=2,
    num_channels=8,
    max_L=0,
    r_max=4.0,
    num_interactions=1,
    epochs=40,
    batch_size=4,
    patience=100,
    stress_weight=100.0,
)
#: EMT's copper atom alone, the E0 its cells are measured from (EMT's zero is the bulk).
CU_E0 = {29: 3.51}


def _cells(n: int, seed: int) -> list:
    """Copper cells strained (isotropic and shear, up to 6 %) and rattled, EMT-labelled."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True)
        strain = np.eye(3) + rng.uniform(-0.06, 0.06, (3, 3)) * np.array(
            [[1, 0.3, 0.3], [0.3, 1, 0.3], [0.3, 0.3, 1]]
        )
        a.set_cell(a.cell @ strain, scale_atoms=True)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.calc = EMT()
        labelled = a.copy()
        labelled.info[REF_ENERGY] = a.get_potential_energy()
        labelled.arrays[REF_FORCES] = a.get_forces()
        labelled.info[REF_STRESS] = a.get_stress()
        out.append(labelled)
    return out


def _stress_rmse(members, cells) -> float:
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    predicted = committee.evaluate(cells, stress=True).stress
    reference = np.array([c.info[REF_STRESS] for c in cells])
    return float(np.sqrt(np.mean((predicted - reference) ** 2)))


def test_a_committee_trained_on_stress_predicts_the_stress_of_new_cells(tmp_path):
    train = _cells(40, seed=0)
    test = _cells(20, seed=1)
    ids = [f"cu{i}" for i in range(len(train))]
    with_stress = train_committee(train, ids, CONFIG, tmp_path / "s", atomic_energies=CU_E0)
    assert all(m.hyperparameters["stress"] for m in with_stress)
    without = []
    for c in train:
        d = c.copy()
        d.info = {k: v for k, v in c.info.items() if k != REF_STRESS}
        d.arrays[REF_FORCES] = c.arrays[REF_FORCES]
        without.append(d)
    plain = train_committee(without, ids, CONFIG, tmp_path / "p", atomic_energies=CU_E0)
    assert not any(m.hyperparameters["stress"] for m in plain)
    trained, untrained = _stress_rmse(with_stress, test), _stress_rmse(plain, test)
    spread = np.std([c.info[REF_STRESS] for c in test])
    # the stress loss makes the prediction several times better than fitting the
    # energies alone, and better than knowing nothing (the spread of the stress)
    assert trained < 0.5 * untrained, (trained, untrained)
    assert trained < 0.6 * spread, (trained, spread)
