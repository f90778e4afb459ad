"""A solution with no orbital rotation to make (one basis function per spin) is stable:
the isolated H atom of every minimal-basis campaign is labelled, not failed."""

from __future__ import annotations

from ase import Atoms

from aloop.vocabulary import LabelStatus, Stability
from dft.label import label_structure
from dft.settings import LabelSettings


def test_an_h_atom_in_a_minimal_basis_is_stable():
    label = label_structure("h", Atoms("H"), LabelSettings(method="HF", basis="sto-3g"), 0, 2)
    assert label.status == LabelStatus.OK, label.error
    assert label.stability == Stability.STABLE
    assert abs(label.energy - -12.69634) < 1e-4  # UHF/STO-3G: -0.466582 Ha
