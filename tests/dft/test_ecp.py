"""def2 basis sets carry their ECPs beyond Kr: an iodine atom is labelled with 25
electrons and the energy PySCF gives with the ECP, not all-electron in a valence basis."""

from __future__ import annotations

import pytest
from ase import Atoms
from ase.units import Bohr, Hartree

from aloop.vocabulary import LabelStatus
from dft.ecp import ecp_map
from dft.label import label_structure
from dft.scf import build_system
from dft.settings import LabelSettings

HI = Atoms("HI", positions=[[0, 0, 0], [0, 0, 1.61]])
HF_DEF2 = LabelSettings(method="HF", basis="def2-SVP")


def test_def2_gives_iodine_its_ecp_and_only_iodine():
    mol = build_system(HI, HF_DEF2, charge=0, multiplicity=1)
    assert mol.nelectron == 1 + 53 - 28  # def2's ECP replaces iodine's 28 core electrons
    assert set(mol._ecp) == {"I"}
    all_electron = build_system(
        HI, LabelSettings(method="HF", basis="def2-SVP", ecp="none"), charge=0, multiplicity=1
    )
    assert all_electron.nelectron == 54


def test_the_label_is_pyscfs_energy_with_the_ecp():
    from pyscf import gto, scf

    label = label_structure("hi", HI, HF_DEF2)
    assert label.status == LabelStatus.OK, label.error
    assert label.settings["ecp"] == "def2-SVP"
    mol = gto.M(
        atom=[("H", (0, 0, 0)), ("I", (0, 0, 1.61 / Bohr))],
        unit="Bohr",
        basis="def2-SVP",
        ecp="def2-SVP",
        verbose=0,
    )
    reference = scf.RHF(mol)
    reference.conv_tol = 1e-9
    assert label.energy == pytest.approx(reference.kernel() * Hartree, abs=1e-6)


def test_an_unknown_ecp_is_an_input_error_naming_it():
    from ase.calculators.calculator import InputError

    with pytest.raises(InputError, match="no ECP set 'def2-nonsense'"):
        ecp_map("def2-nonsense", ["I"])
    assert ecp_map(None, ["I"]) == {}
    assert ecp_map("def2-SVP", ["H", "O"]) == {}
