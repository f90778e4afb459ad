"""A periodic label carries stress from the same surface as its energy and forces: for a
smeared FFTDF cell the stored stress is the strain derivative of the stored (free)
energy; where PySCF has no stress the label says why and stores none."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aloop.vocabulary import LabelStatus
from dft.label import label_structure
from dft.settings import LabelSettings

STEP = 1e-3

pytestmark = pytest.mark.slow


def h2_box() -> Atoms:
    cell = [[3.0, 0.0, 0.0], [0.3, 3.0, 0.0], [0.2, -0.25, 3.0]]
    return Atoms("H2", positions=[[0.3, 0.4, 0.5], [0.85, 0.75, 0.9]], cell=cell, pbc=True)


SMEARED = LabelSettings(
    xc="PBE",
    periodic=True,
    multigrid=False,
    ke_cutoff_hartree=30.0,
    smearing_hartree=0.2,
    conv_tol=1e-11,
)


def _energy(atoms: Atoms) -> float:
    label = label_structure("strained", atoms, SMEARED)
    assert label.status == LabelStatus.OK, label.error
    return label.energy


def test_stored_stress_is_the_strain_derivative_of_the_stored_energy():
    atoms = h2_box()
    label = label_structure("h2", atoms, SMEARED)
    assert label.status == LabelStatus.OK, label.error
    assert label.stress_note is None and label.stress.shape == (6,)
    assert label.internal_energy != pytest.approx(label.energy)  # smeared: two energies
    assert label.labelled_atoms(atoms).info["REF_stress"].tolist() == label.stress.tolist()
    voigt = {(0, 0): 0, (1, 1): 1, (0, 1): 5}
    for (i, j), k in voigt.items():
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = STEP
        e = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
            e.append(_energy(strained))
        fd = (e[0] - e[1]) / (2 * STEP) / atoms.get_volume() / (1 if i == j else 2)
        assert abs(fd) > 1e-2  # a real stress to compare
        assert label.stress[k] == pytest.approx(fd, abs=2e-5), (i, j)


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (LabelSettings(xc="PBE", periodic=True, ke_cutoff_hartree=30.0), "multigrid"),
        (
            LabelSettings(method="HF", periodic=True, multigrid=False, ke_cutoff_hartree=30.0),
            "HF",
        ),
    ],
)
def test_no_stress_where_pyscf_has_none_and_the_label_says_why(settings, why):
    label = label_structure("h2", h2_box(), settings)
    assert label.status == LabelStatus.OK, label.error
    assert label.stress is None and why in label.stress_note
    assert "REF_stress" not in label.labelled_atoms(h2_box()).info
