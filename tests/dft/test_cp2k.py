"""The CP2K labelling engine: the real cp2k_shell (Debian's cp2k), never a mock.

The cell is two H2 molecules in a small periodic box with a modest grid: what these
tests check (the label equals CP2K run directly, stress is the strain derivative of the
stored energy, an unconverged SCF is a failed label, every number-changing input is in
the hash) does not depend on the system's size, and this one labels in seconds.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms

from aloop.config import ConfigError, parse_config
from aloop.vocabulary import Engine, LabelStatus
from dft.label import label_structure
from dft.settings import LabelSettings

if shutil.which("cp2k_shell") is None:
    if os.environ.get("ALOOP_REQUIRE_CP2K") == "1":
        pytest.fail("ALOOP_REQUIRE_CP2K=1 but cp2k_shell is not installed", pytrace=False)
    pytest.skip(
        "cp2k_shell is not installed (Debian: apt-get install cp2k)", allow_module_level=True
    )

SETTINGS = LabelSettings(
    engine=Engine.CP2K,
    periodic=True,
    cp2k_basis="SZV-MOLOPT-GTH",
    cutoff_ry=200.0,
    rel_cutoff_ry=30.0,
    eps_scf=1e-7,
    timeout_s=300.0,
)


def _cell() -> Atoms:
    return Atoms(
        "H4",
        positions=[[0.1, 0.0, 0.0], [0.86, 0.05, 0.0], [1.6, 1.7, 1.5], [1.6, 2.45, 1.6]],
        cell=[3.3, 3.4, 3.2],
        pbc=True,
    )


@pytest.fixture(scope="module")
def label():
    return label_structure("h4", _cell(), SETTINGS)


def test_a_cp2k_label_is_one_surface_with_stress_in_ase_units(label):
    assert label.status is LabelStatus.OK, label.error
    assert label.code_versions["cp2k"] == label.settings["cp2k_version"]
    assert label.forces.shape == (4, 3)
    assert label.stress.shape == (6,)
    # the stored energy is the one the forces are minus the gradient of
    h = 2e-3
    energies = []
    for sign in (+1, -1):
        moved = _cell()
        moved.positions[1, 0] += sign * h
        energies.append(label_structure("h4-moved", moved, SETTINGS).energy)
    assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(label.forces[1, 0], abs=0.02)
    assert label.scf_attempts[0]["converged"] is True


def test_the_label_equals_cp2k_run_directly(label):
    from ase.calculators.cp2k import CP2K

    from dft.cp2k import RYDBERG_EV, data_file, scf_input

    atoms = _cell()
    atoms.calc = CP2K(
        command="cp2k_shell",
        directory=str(_tmp("direct")),
        basis_set=SETTINGS.cp2k_basis,
        basis_set_file=str(data_file(SETTINGS.cp2k_basis_file)),
        pseudo_potential=SETTINGS.cp2k_potential,
        potential_file=str(data_file(SETTINGS.cp2k_potential_file)),
        xc="PBE",
        cutoff=SETTINGS.cutoff_ry * RYDBERG_EV,
        stress_tensor=True,
        max_scf=None,
        inp=scf_input(SETTINGS),
    )
    try:
        assert atoms.get_potential_energy() == pytest.approx(label.energy, abs=1e-5)
        np.testing.assert_allclose(atoms.get_forces(), label.forces, atol=1e-4)
        np.testing.assert_allclose(atoms.get_stress(), label.stress, atol=1e-6)
    finally:
        atoms.calc.close()


def test_stress_is_the_strain_derivative_of_the_stored_energy(label):
    eps = 2e-3
    energies = []
    for sign in (+1, -1):
        strained = _cell()
        strain = np.eye(3)
        strain[0, 0] += sign * eps
        strained.set_cell(strained.cell @ strain, scale_atoms=True)
        rec = label_structure("h4-strained", strained, SETTINGS)
        assert rec.status is LabelStatus.OK, rec.error
        energies.append(rec.energy)
    volume = _cell().get_volume()
    finite_difference = (energies[0] - energies[1]) / (2 * eps) / volume
    assert label.stress[0] == pytest.approx(finite_difference, rel=0.05, abs=2e-4)


def test_an_scf_that_does_not_converge_is_a_failed_label_with_the_reason():
    starved = replace(SETTINGS, cp2k_max_scf=2, cp2k_outer_max_scf=1)
    rec = label_structure("h4", _cell(), starved)
    assert rec.status is LabelStatus.FAILED
    assert "not converged" in rec.error
    assert rec.energy is None and rec.forces is None
    assert rec.scf_attempts[0]["converged"] is False


def test_every_input_that_changes_the_numbers_changes_the_hash(tmp_path):
    base = SETTINGS.settings_hash()
    for change in (
        {"cutoff_ry": 250.0},
        {"rel_cutoff_ry": 40.0},
        {"cp2k_basis": "DZVP-MOLOPT-GTH"},
        {"cp2k_potential": "GTH-BLYP"},
        {"xc": "BLYP"},
        {"eps_scf": 1e-6},
    ):
        assert replace(SETTINGS, **change).settings_hash() != base, change
    # the same names read from an edited copy of the basis file are another surface
    from dft.cp2k import data_file

    edited = tmp_path / "BASIS_MOLOPT"
    edited.write_text(data_file("BASIS_MOLOPT").read_text() + "\n# edited\n")
    moved = replace(SETTINGS, cp2k_basis_file=str(edited))
    assert moved.settings_hash() != base
    # how hard to try is not a surface
    patient = replace(SETTINGS, cp2k_max_scf=60)
    assert patient.settings_hash() == base
    # and no PySCF label shares a CP2K hash
    assert LabelSettings(periodic=True).settings_hash() != base


def test_cp2k_config_errors_name_the_key(tmp_path):
    from dft.names import dft_name_problems

    (tmp_path / "cell.extxyz").write_text(
        '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
        "Na 0 0 0\nCl 2 2 2\n"
    )
    system = {"name": "nacl", "structure": "cell.extxyz"}
    with pytest.raises(ConfigError, match="spin 'restricted'"):
        parse_config(
            {
                "campaign": "c",
                "systems": [system],
                "dft": {"engine": "cp2k", "spin": "broken_symmetry"},
            },
            base_dir=tmp_path,
        )
    with pytest.raises(ConfigError, match="smearing"):
        parse_config(
            {
                "campaign": "c",
                "systems": [system],
                "dft": {"engine": "cp2k", "periodic": {"smearing_hartree": 0.01}},
            },
            base_dir=tmp_path,
        )
    cfg = parse_config(
        {
            "campaign": "c",
            "systems": [system],
            "dft": {"engine": "cp2k", "cp2k": {"basis": "NOPE"}},
        },
        base_dir=tmp_path,
    )
    problems = dft_name_problems(cfg, tmp_path)
    assert problems == ["dft.cp2k.basis: BASIS_MOLOPT has no 'NOPE' for Cl, Na"]
    # an element's own names are looked up in its own files
    kinds = {
        "Na": {"basis": "DZVP-MOLOPT-SR-GTH-q2", "potential": "GTH-PBE-q1"},
        "Cl": {"basis": "DZVP-MOLOPT-SR-GTH", "potential": "GTH-PBE-q7", "basis_file": "NONE"},
    }
    cfg = parse_config(
        {"campaign": "c", "systems": [system], "dft": {"engine": "cp2k", "cp2k": {"kinds": kinds}}},
        base_dir=tmp_path,
    )
    problems = dft_name_problems(cfg, tmp_path)
    # CP2K takes an element's basis from the first file naming it: a kind's own file
    # listed after one that names the same basis would not be the one read
    assert problems[0] == (
        "dft.cp2k.kinds.Cl.basis: BASIS_MOLOPT also names 'DZVP-MOLOPT-SR-GTH' for Cl and "
        "CP2K reads it first; name a basis only NONE has"
    )
    assert problems[1].startswith("dft.cp2k.kinds.Cl.basis_file: CP2K data file 'NONE' not found")
    assert problems[2:] == [
        "dft.cp2k.kinds.Na.basis: BASIS_MOLOPT has no 'DZVP-MOLOPT-SR-GTH-q2' for Na",
        "dft.cp2k.kinds.Na.potential: GTH_POTENTIALS has no 'GTH-PBE-q1' for Na",
    ]
    with pytest.raises(ConfigError, match=r"dft\.cp2k\.kinds.*not element symbols: Xx"):
        parse_config(
            {
                "campaign": "c",
                "systems": [system],
                "dft": {"engine": "cp2k", "cp2k": {"kinds": {"Xx": kinds["Na"]}}},
            },
            base_dir=tmp_path,
        )


def _tmp(name: str):
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix=f"aloop-cp2k-test-{name}-"))


def test_one_cp2k_shell_serves_every_label_of_a_worker(label):
    from dft.cp2k import shared_calculator

    calc = shared_calculator(SETTINGS, 0, 1)
    pid = calc._shell()._shell._child.pid
    moved = _cell()
    moved.positions[0, 1] += 0.05
    assert label_structure("h4-again", moved, SETTINGS).status is LabelStatus.OK
    assert shared_calculator(SETTINGS, 0, 1)._shell()._shell._child.pid == pid


def test_the_wall_clock_limit_ends_the_label_and_the_next_one_runs():
    hurried = replace(SETTINGS, timeout_s=0.3, cutoff_ry=600.0)
    rec = label_structure("h4", _cell(), hurried)
    assert rec.status is LabelStatus.FAILED
    assert rec.error == "timeout after 0.3 s"
    from dft.cp2k import shared_calculator

    assert shared_calculator(hurried, 0, 1)._cp2k is None  # the killed shell is dropped
    relaxed = replace(hurried, timeout_s=300.0)
    assert label_structure("h4", _cell(), relaxed).status is LabelStatus.OK


def test_a_label_does_not_depend_on_the_cell_labelled_before_it(label):
    """CP2K keeps a force environment's grids through SET_CELL; each label gets its own."""
    other = _cell()
    other.set_cell(other.cell * 1.15, scale_atoms=True)
    assert label_structure("h4-big", other, SETTINGS).status is LabelStatus.OK
    again = label_structure("h4", _cell(), SETTINGS)
    assert again.energy == pytest.approx(label.energy, abs=1e-5)
    np.testing.assert_allclose(again.stress, label.stress, atol=1e-6)


def test_an_element_kind_is_the_basis_its_element_is_labelled_with(label, tmp_path):
    """``dft.cp2k.kinds``: the element's own basis replaces the section's, exactly as if it
    were every element's, its potential read from its own file; it is its own hash, and
    its files' content is in it."""
    from dft.cp2k import data_file
    from dft.settings import LabelSettings

    own = tmp_path / "MY_POTENTIALS"  # a potential file of the kind's own
    own.write_text(data_file("GTH_POTENTIALS").read_text())
    kinds = (("H", "DZVP-MOLOPT-GTH", "GTH-PBE", "BASIS_MOLOPT", str(own)),)
    by_kind = replace(SETTINGS, cp2k_kinds=kinds)
    whole = replace(SETTINGS, cp2k_basis="DZVP-MOLOPT-GTH")
    a = label_structure("h4", _cell(), by_kind)
    b = label_structure("h4", _cell(), whole)
    assert a.status is b.status is LabelStatus.OK
    assert a.energy == pytest.approx(b.energy, abs=1e-8)
    assert a.energy != pytest.approx(label.energy, abs=1e-3)  # not the SZV surface
    hashes = {s.settings_hash() for s in (SETTINGS, by_kind, whole)}
    assert len(hashes) == 3
    assert by_kind.result_fields()["kinds"][0]["potential_file"] == str(own)
    assert by_kind.result_fields()["kinds"][0]["basis_file_sha256"]
    # built from a campaign's config, sorted by element
    cfg = parse_config(
        {
            "campaign": "c",
            "systems": [{"name": "h", "molecule": "H2"}],
            "dft": {
                "engine": "cp2k",
                "cp2k": {"kinds": {"H": {"basis": "DZVP-MOLOPT-GTH", "potential": "GTH-PBE"}}},
            },
        }
    )
    assert LabelSettings.from_config(cfg.dft, periodic=True).cp2k_kinds == (
        ("H", "DZVP-MOLOPT-GTH", "GTH-PBE", "BASIS_MOLOPT", "GTH_POTENTIALS"),
    )
