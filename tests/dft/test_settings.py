"""Label settings: the hash is pinned (it only changes on purpose) and complete (every
input that changes a label's numbers changes it)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from aloop.config import load_config
from dft.settings import LabelSettings

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: settings_hash() of each shipped config's label settings (molecular, then periodic), at
#: PySCF 2.14.0 and label protocol 2 (issue 18: stability analysis, smeared free energy,
#: def2 ECPs, spin policy). A change here means every stored label gets relabelled.
PINNED = {
    "demo-water.yaml": (
        "fa38c6a106b97a161a93717d56b9c2049a72aeb0d2b0e0ed1e7a1355e8416a44",
        "1fb5b9b6ac08cdfea06c517c18f41181a02af3a36e43c232a54c7311abfec408",
    ),
    "ethanol.yaml": (
        "07112f054bb03ceae45e88bdc58800c013a4a5509221faeda09bf3239659770b",
        "60903b2486fb0ecd6dd7ae369f998b905b9e8c23985d436c88bc44198f47ef87",
    ),
    "mgcl2-molten.yaml": (
        "b4cfb09c1c0f1828c448bd8529d28baeb80e9093631f039539f013963910a0b5",
        "221a05d5a9259aa233f4934312cf0c19725e596354f784afd9e380706d74ca01",
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_settings_hash_of_shipped_configs_is_pinned(name):
    dft = load_config(CONFIGS / name).dft
    for periodic, expected in zip((False, True), PINNED[name], strict=True):
        settings = LabelSettings.from_config(dft, periodic=periodic)
        pinned = dataclasses.replace(settings, pyscf_version="2.14.0")
        assert pinned.settings_hash() == expected


def test_demo_water_result_fields_are_pinned():
    settings = LabelSettings.from_config(load_config(CONFIGS / "demo-water.yaml").dft)
    assert dataclasses.replace(settings, pyscf_version="2.14.0").result_fields() == {
        "auxbasis": None,
        "basis": "6-31g",
        "conv_tol": 1e-09,
        "density_fit": False,
        "dispersion": None,
        "ecp": None,
        "label_protocol": 2,
        "method": "HF",
        "periodic": False,
        "pyscf_version": "2.14.0",
        "spin": "restricted",
    }
    assert settings.timeout_s == 120.0


def test_default_settings_hash_is_pinned():
    default = dataclasses.replace(LabelSettings(), pyscf_version="2.0.0")
    assert default.settings_hash() == (
        "31e562032c3941c826bd4f107bf51f58feea649ee530b8cfef0751b74333a9db"
    )


def test_defaults_are_the_configs_defaults():
    from aloop.config import DFTConfig

    assert LabelSettings() == LabelSettings.from_config(DFTConfig())
    assert dataclasses.asdict(dataclasses.replace(LabelSettings(), pyscf_version="x")) == {
        "method": "DFT",
        "xc": "PBE",
        "basis": "def2-SVP",
        "density_fit": False,
        "auxbasis": None,
        "grid_level": 3,
        "dispersion": None,
        "ecp": "auto",
        "spin": "restricted",
        "conv_tol": 1e-09,
        "periodic": False,
        "pbc_basis": "gth-szv",
        "pbc_pseudo": "gth-pade",
        "ke_cutoff_hartree": None,
        "multigrid": True,
        "smearing_hartree": 0.0,
        "max_cycle": 100,
        "recovery": ("diis", "damping_levelshift", "newton", "initial_guess"),
        "damping": 0.5,
        "level_shift_hartree": 0.25,
        "stability_rounds": 3,
        "timeout_s": 3600.0,
        "min_distance_factor": 0.5,
        "engine": "pyscf",
        "cp2k_basis": "DZVP-MOLOPT-SR-GTH",
        "cp2k_potential": "GTH-PBE",
        "cp2k_basis_file": "BASIS_MOLOPT",
        "cp2k_potential_file": "GTH_POTENTIALS",
        "cutoff_ry": 300.0,
        "rel_cutoff_ry": 40.0,
        "eps_scf": 1e-06,
        "cp2k_max_scf": 30,
        "cp2k_outer_max_scf": 10,
        "cp2k_command": "cp2k_shell",
        "cp2k_kinds": (),
        "pyscf_version": "x",
    }


#: One change per input that alters a label's numbers, molecular then periodic.
MOLECULAR_CHANGES = {
    "method": "HF",
    "xc": "B3LYP",
    "basis": "def2-TZVP",
    "density_fit": True,
    "auxbasis": "def2-universal-jkfit",
    "grid_level": 5,
    "dispersion": "d3bj",
    "ecp": "none",
    "spin": "broken_symmetry",
    "conv_tol": 1e-7,
    "pyscf_version": "9.9.9",
}
PERIODIC_CHANGES = {
    "xc": "PBE0",
    "pbc_basis": "gth-dzvp",
    "pbc_pseudo": "gth-pbe",
    "ke_cutoff_hartree": 80.0,
    "multigrid": False,
    "smearing_hartree": 0.005,
    "spin": "broken_symmetry",
    "conv_tol": 1e-7,
}
#: Inputs that only decide how hard to try: every label records how its SCF went.
EFFORT = {
    "max_cycle": 300,
    "recovery": ("newton",),
    "damping": 0.2,
    "level_shift_hartree": 0.5,
    "timeout_s": 10.0,
    "stability_rounds": 5,
    "min_distance_factor": 0.3,
}


#: The CP2K engine's number-changing inputs (tests/dft/test_cp2k.py checks the basis
#: file's content too); its version is read from the installed binary.
CP2K_CHANGES = {
    "engine": "pyscf",
    "xc": "BLYP",
    "cp2k_basis": "SZV-MOLOPT-SR-GTH",
    "cp2k_potential": "GTH-BLYP",
    "cp2k_basis_file": "BASIS_MOLOPT_UZH",
    "cp2k_potential_file": "POTENTIAL",
    "cutoff_ry": 400.0,
    "rel_cutoff_ry": 60.0,
    "eps_scf": 1e-7,
    "cp2k_kinds": (("H", "DZVP-MOLOPT-GTH", "GTH-PBE", "BASIS_MOLOPT", "GTH_POTENTIALS"),),
}
#: What only decides how hard CP2K tries (or where it is found).
CP2K_EFFORT = {
    "cp2k_max_scf": 60,
    "cp2k_outer_max_scf": 20,
    "cp2k_command": str(shutil.which("cp2k_shell")),  # the same program, by its path
}
NEEDS_CP2K = pytest.mark.skipif(shutil.which("cp2k_shell") is None, reason="no cp2k_shell")


@NEEDS_CP2K
@pytest.mark.parametrize(("name", "value"), sorted(CP2K_CHANGES.items()))
def test_each_cp2k_input_changes_the_hash(name, value):
    base = LabelSettings(engine="cp2k", periodic=True)
    assert dataclasses.replace(base, **{name: value}).settings_hash() != base.settings_hash()


@NEEDS_CP2K
@pytest.mark.parametrize(("name", "value"), sorted(CP2K_EFFORT.items()))
def test_cp2k_effort_settings_leave_the_hash_alone(name, value):
    base = LabelSettings(engine="cp2k", periodic=True)
    assert dataclasses.replace(base, **{name: value}).settings_hash() == base.settings_hash()


@pytest.mark.parametrize(("name", "value"), sorted(MOLECULAR_CHANGES.items()))
def test_each_molecular_input_changes_the_hash(name, value):
    base = LabelSettings(density_fit=name == "auxbasis")
    assert dataclasses.replace(base, **{name: value}).settings_hash() != base.settings_hash()


@pytest.mark.parametrize(("name", "value"), sorted(PERIODIC_CHANGES.items()))
def test_each_periodic_input_changes_the_hash(name, value):
    base = LabelSettings(periodic=True)
    assert dataclasses.replace(base, **{name: value}).settings_hash() != base.settings_hash()


@pytest.mark.parametrize(("name", "value"), sorted(EFFORT.items()))
def test_effort_settings_leave_the_hash_alone(name, value):
    base = LabelSettings()
    assert dataclasses.replace(base, **{name: value}).settings_hash() == base.settings_hash()


def test_every_setting_is_either_in_the_hash_or_effort():
    names = {f.name for f in dataclasses.fields(LabelSettings)} - {"periodic"}
    assert names == (
        set(MOLECULAR_CHANGES)
        | set(PERIODIC_CHANGES)
        | set(EFFORT)
        | set(CP2K_CHANGES)
        | set(CP2K_EFFORT)
    )


def test_auto_ecp_is_the_def2_sets_own_and_hashes_like_it():
    auto = LabelSettings(basis="def2-SVP")
    assert auto.ecp_name == "def2-SVP"
    assert auto.settings_hash() == dataclasses.replace(auto, ecp="def2-SVP").settings_hash()
    assert LabelSettings(basis="6-31g").ecp_name is None
    assert LabelSettings(basis="def2-SVP", ecp="none").ecp_name is None
