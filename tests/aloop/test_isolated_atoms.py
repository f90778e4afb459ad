"""Isolated atoms: ground-state multiplicities, the structures labelled for the E0s, and
which label each element of a training set takes its E0 from."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import chemical_symbols

from aloop.isolated_atoms import (
    SUPPORTED,
    E0Unavailable,
    IsolatedAtomLabel,
    UnsupportedElement,
    electron_configuration,
    ground_state_multiplicity,
    isolated_atom,
    isolated_system_name,
    reference_energies,
)
from aloop.vocabulary import LabelStatus

#: Ground-state terms of the neutral atoms (NIST Atomic Spectra Database), as 2S+1.
NIST = {
    "H": 2, "He": 1, "Li": 2, "Be": 1, "B": 2, "C": 3, "N": 4, "O": 3, "F": 2, "Ne": 1,
    "Na": 2, "Mg": 1, "Al": 2, "Si": 3, "P": 4, "S": 3, "Cl": 2, "Ar": 1, "K": 2, "Ca": 1,
    "Sc": 2, "Ti": 3, "V": 4, "Cr": 7, "Mn": 6, "Fe": 5, "Co": 4, "Ni": 3, "Cu": 2,
    "Zn": 1, "Ga": 2, "Ge": 3, "As": 4, "Se": 3, "Br": 2, "Kr": 1,
    "Rb": 2, "Sr": 1, "Y": 2, "Zr": 3, "Nb": 6, "Mo": 7, "Tc": 6, "Ru": 5, "Rh": 4,
    "Pd": 1, "Ag": 2, "Cd": 1, "In": 2, "Sn": 3, "Sb": 4, "Te": 3, "I": 2, "Xe": 1,
    "Cs": 2, "Ba": 1, "La": 2, "Hf": 3, "Ta": 4, "W": 5, "Re": 6, "Os": 5, "Ir": 4,
    "Pt": 3, "Au": 2, "Hg": 1, "Tl": 2, "Pb": 3, "Bi": 4, "Po": 3, "At": 2, "Rn": 1,
}  # fmt: skip


def test_every_tabulated_element_has_its_nist_ground_state_multiplicity():
    assert {chemical_symbols[z] for z in SUPPORTED} == set(NIST)
    got = {sym: ground_state_multiplicity(sym) for sym in NIST}
    assert got == NIST
    assert ground_state_multiplicity(26) == ground_state_multiplicity("Fe") == 5


def test_configurations_follow_the_known_exceptions_to_madelung():
    assert electron_configuration("Cr")[(3, 2)] == 5 and electron_configuration("Cr")[(4, 0)] == 1
    assert (5, 0) not in electron_configuration("Pd")  # 4d10, no 5s
    assert electron_configuration("Pt")[(5, 2)] == 9 and electron_configuration("Pt")[(6, 0)] == 1
    assert (4, 3) not in electron_configuration("La")  # 5d1 6s2, not 4f1
    for sym in NIST:  # neutral: as many electrons as protons
        z = chemical_symbols.index(sym)
        assert sum(electron_configuration(sym).values()) == z


@pytest.mark.parametrize("element", ["Ce", "Gd", "Lu", "U", 0, 119, "Xx"])
def test_an_element_outside_the_table_is_an_error_naming_it(element):
    with pytest.raises(UnsupportedElement) as err:
        ground_state_multiplicity(element)
    text = str(err.value)
    assert str(element) in text or "Z=" in text
    if element in ("Ce", "U"):
        assert "model.e0s: average" in text


def test_isolated_atoms_are_a_single_atom_or_the_atom_alone_in_a_periodic_box():
    mol = isolated_atom("O", periodic=False)
    assert list(mol.numbers) == [8] and not mol.pbc.any() and not mol.cell.any()
    assert mol.info == {"charge": 0, "multiplicity": 3}
    box = isolated_atom("Cl", periodic=True)
    assert box.pbc.all()
    edges = box.cell.lengths()
    np.testing.assert_allclose(box.cell.array, np.diag(edges))
    np.testing.assert_allclose(box.positions[0], edges / 2)
    # not a cube: an open-shell atom's p shell must not stay degenerate (CP2K's OT stalls)
    assert len(set(np.round(edges, 6))) == 3
    assert box.info["multiplicity"] == 2
    assert edges.min() >= 10.0  # GTH densities vanish within ~4 Å of the nucleus
    # The system name cannot be a campaign's (':' is not allowed there).
    assert isolated_system_name(1) == "isolated_atom:H"


def _label(z, settings_hash="h1", status=LabelStatus.OK, energy=-1.0):
    return IsolatedAtomLabel(
        z=z,
        structure_id=f"s{z}{settings_hash}",
        label_id=f"l{z}",
        settings_hash=settings_hash,
        status=status,
        energy=energy if status is LabelStatus.OK else None,
        error=None if status is LabelStatus.OK else "SCF not converged",
        multiplicity=ground_state_multiplicity(z),
        periodic=False,
    )


def test_each_element_takes_the_atom_labelled_at_its_frames_settings():
    labels = [_label(1, energy=-13.6), _label(8, energy=-2040.0), _label(1, "h2", energy=-12.0)]
    chosen = reference_energies({"h1": {1, 8}}, labels)
    assert {z: lab.energy for z, lab in chosen.items()} == {1: -13.6, 8: -2040.0}
    assert reference_energies({"h2": {1}}, labels)[1].energy == -12.0


def test_a_failed_missing_or_ambiguous_e0_is_an_error_naming_the_element():
    labels = [_label(1), _label(8, status=LabelStatus.FAILED), _label(1, "h2")]
    with pytest.raises(E0Unavailable, match=r"O: its isolated atom's label failed: SCF"):
        reference_energies({"h1": {1, 8}}, labels)
    with pytest.raises(E0Unavailable, match=r"C: no isolated-atom label"):
        reference_energies({"h1": {1, 6}}, labels)
    with pytest.raises(E0Unavailable, match=r"H: its frames are labelled at 2 settings"):
        reference_energies({"h1": {1}, "h2": {1}}, labels)
