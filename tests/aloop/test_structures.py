"""Content hashing and loading of a system's starting structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule

from aloop.config import SystemConfig
from aloop.structures import (
    HASH_TOLERANCE_ANG,
    atoms_hash,
    close_contact,
    impossible_spin,
    load_system_structures,
    pair_distances,
    resolve_path,
)


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


@pytest.mark.parametrize(
    ("charge", "multiplicity", "problem"),
    [
        (0, 1, None),
        (0, 3, None),  # triplet water: 10 electrons, 2 unpaired
        (1, 2, None),
        (0, 2, "multiplicity"),
        (0, 13, "multiplicity"),
        (0, 0, "multiplicity"),
        (11, 1, "charge"),
        (10, 1, "charge"),  # no electrons: nothing for an SCF to compute
    ],
)
def test_impossible_spin_names_the_key_at_fault(charge, multiplicity, problem):
    assert impossible_spin(molecule("H2O"), charge, multiplicity) == problem


def test_close_contact_is_the_closest_pair_relative_to_its_covalent_sum():
    from ase import Atoms

    water = molecule("H2O")
    assert close_contact(*pair_distances(water), 0.5) is None
    squashed = Atoms("H2O", positions=[[0, 0, 0], [0, 0, 0.9], [0, 0, 0.3]])
    contact = close_contact(*pair_distances(squashed), 0.5)
    assert (contact.i, contact.j) == (0, 2)
    assert contact.distance == pytest.approx(0.3)
    assert contact.limit == pytest.approx(0.5 * (0.31 + 0.66))
    # across the boundary of a periodic box: the minimum image counts
    pair = Atoms("H2", positions=[[0.1, 0, 0], [4.8, 0, 0]], cell=[5, 5, 5])
    assert close_contact(*pair_distances(pair), 0.5) is None
    pair.pbc = True
    assert close_contact(*pair_distances(pair), 0.5).distance == pytest.approx(0.3)
    assert close_contact(*pair_distances(Atoms("H")), 0.5) is None


def test_paths_are_relative_to_the_config_folder(tmp_path):
    assert resolve_path("a/b.xyz", tmp_path) == tmp_path / "a" / "b.xyz"
    assert resolve_path(str(tmp_path / "c.xyz"), Path("elsewhere")) == tmp_path / "c.xyz"


def test_structures_do_not_import_the_config():
    import subprocess
    import sys

    code = "import sys, aloop.structures; assert 'aloop.config' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
