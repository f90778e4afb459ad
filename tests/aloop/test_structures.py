"""Content hashing and loading of a system's starting structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from aloop.config import SystemConfig
from aloop.structures import HASH_TOLERANCE_ANG, atoms_hash, load_system_structures


def test_hash_is_stable_under_float_round_off():
    a = molecule("CH3CH2OH")
    b = a.copy()
    b.positions = (b.positions + 0.3) - 0.3  # a translation there and back
    assert not np.array_equal(a.positions, b.positions)  # the round trip did change bits
    assert atoms_hash(a) == atoms_hash(b)
    b.positions += HASH_TOLERANCE_ANG * 1e-4
    assert atoms_hash(a) == atoms_hash(b)


def test_hash_changes_with_geometry_charge_spin_and_order():
    a = molecule("CH3CH2OH")
    moved = a.copy()
    moved.positions[0, 0] += 10 * HASH_TOLERANCE_ANG
    reordered = a[[1, 0, *range(2, len(a))]]
    hashes = {
        atoms_hash(a),
        atoms_hash(moved),
        atoms_hash(reordered),
        atoms_hash(a, charge=1, multiplicity=2),
    }
    assert len(hashes) == 4


def test_molecule_hash_ignores_a_meaningless_box_but_cells_count_when_periodic():
    a = molecule("H2O")
    boxed = a.copy()
    boxed.cell = [10, 10, 10]
    assert atoms_hash(a) == atoms_hash(boxed)
    crystal = bulk("NaCl", "rocksalt", a=5.64)
    strained = crystal.copy()
    strained.set_cell(crystal.cell * 1.01, scale_atoms=False)
    assert atoms_hash(crystal) != atoms_hash(strained)


def test_hash_is_a_known_value():
    """Pinned: a change of the canonical form would silently split every campaign's dedupe."""
    assert atoms_hash(molecule("H2O")) == (
        "9e5d0c39329339c1985046d044e25b7829c358ae7c637a801dc0b48bec0a1011"
    )


def test_hash_is_defined_for_blown_up_and_non_finite_frames():
    a = molecule("H2O")
    a.positions[0] = [1e300, -np.inf, np.nan]
    b = a.copy()
    assert atoms_hash(a) == atoms_hash(b)
    b.positions[0, 0] = 2e300
    assert atoms_hash(a) != atoms_hash(b)


def test_load_from_file_with_pbc_override(tmp_path):
    from ase.io import write

    frames = [molecule("H2O"), molecule("NH3")]
    write(tmp_path / "two.extxyz", frames)
    sys_cfg = SystemConfig(name="x", structure="two.extxyz")
    assert [len(a) for a in load_system_structures(sys_cfg, tmp_path)] == [3, 4]
    one = SystemConfig(name="x", structure="two.extxyz", index="1")
    assert len(load_system_structures(one, tmp_path)) == 1
    with pytest.raises(ValueError, match="full 3D cell"):
        load_system_structures(SystemConfig(name="x", structure="two.extxyz", pbc=True), tmp_path)
