"""PySCF through the ASE calculator: energies, forces and units against references.

Tolerances: energies agree with a direct PySCF run to 1e-8 Ha (the only difference is
ASE's vs PySCF's Bohr constant, ~5e-10 relative, on the geometry); forces agree with
central finite differences (h = 1e-3 Å, O(h^2) error ~1e-6 eV/Å) to 1e-4 eV/Å for HF and
1e-3 eV/Å for DFT and periodic DFT, where the integration grid (no grid response) and the
FFT mesh add ~4e-4 and ~2e-4 eV/Å of their own (measured).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import InputError

from dft.calculator import PySCFCalculator
from dft.settings import LabelSettings
from dft.units import BOHR_ANG, HARTREE_EV

HF_STO3G = LabelSettings(method="HF", basis="sto-3g", conv_tol=1e-11)

# Crawford group, "Programming Projects", Project #3 (Hartree-Fock SCF): water in STO-3G
# at this geometry (Bohr) has E(SCF) = -74.942079928192 Ha.
CRAWFORD_WATER_BOHR = [
    ("O", (0.000000000000, -0.143225816552, 0.000000000000)),
    ("H", (1.638036840407, 1.136548822547, -0.000000000000)),
    ("H", (-1.638036840407, 1.136548822547, -0.000000000000)),
]
CRAWFORD_WATER_E_HA = -74.942079928192


def distorted_water() -> Atoms:
    w = molecule("H2O")
    w.positions[1] += [0.05, 0.02, -0.03]
    return w


def finite_difference_forces(atoms, calc, coords, h=1e-3):
    out = []
    for i, k in coords:
        energies = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions[i, k] += sign * h
            a.calc = calc
            energies.append(a.get_potential_energy())
        out.append(-(energies[0] - energies[1]) / (2 * h))
    return np.array(out)


def test_published_water_hf_sto3g_energy():
    atoms = Atoms(
        [s for s, _ in CRAWFORD_WATER_BOHR],
        positions=np.array([p for _, p in CRAWFORD_WATER_BOHR]) * BOHR_ANG,
    )
    atoms.calc = PySCFCalculator(HF_STO3G)
    assert atoms.get_potential_energy() / HARTREE_EV == pytest.approx(CRAWFORD_WATER_E_HA, abs=1e-6)


def test_energy_equals_a_direct_pyscf_run():
    from pyscf import gto, scf

    atoms = distorted_water()
    atoms.calc = PySCFCalculator(HF_STO3G)
    ours = atoms.get_potential_energy()
    mol = gto.M(
        atom=[
            (s, tuple(p))
            for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
        ],
        basis="sto-3g",
        unit="Angstrom",
        verbose=0,
    )
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-11
    direct = mf.kernel()
    assert ours / HARTREE_EV == pytest.approx(direct, abs=1e-8)


def test_hf_forces_are_minus_the_energy_gradient():
    atoms = distorted_water()
    calc = PySCFCalculator(HF_STO3G)
    a = atoms.copy()
    a.calc = calc
    forces = a.get_forces()
    coords = [(i, k) for i in range(3) for k in range(3)]
    numeric = finite_difference_forces(atoms, calc, coords)
    analytic = np.array([forces[i, k] for i, k in coords])
    np.testing.assert_allclose(analytic, numeric, atol=1e-4)
    np.testing.assert_allclose(forces.sum(axis=0), 0, atol=1e-6)  # no net force


def test_dft_forces_match_finite_differences():
    settings = LabelSettings(method="DFT", xc="pbe", basis="sto-3g", conv_tol=1e-11)
    atoms = distorted_water()
    calc = PySCFCalculator(settings)
    a = atoms.copy()
    a.calc = calc
    forces = a.get_forces()
    coords = [(1, 0), (1, 2), (2, 1)]
    numeric = finite_difference_forces(atoms, calc, coords)
    np.testing.assert_allclose([forces[i, k] for i, k in coords], numeric, atol=1e-3)


@pytest.mark.slow
def test_periodic_lih_gth_forces_match_finite_differences():
    cell = Atoms("LiH", positions=[[0, 0, 0], [2.1, 1.9, 2.05]], cell=np.eye(3) * 4.0, pbc=True)
    settings = LabelSettings(
        method="DFT", xc="pbe", periodic=True, ke_cutoff_hartree=60, conv_tol=1e-10
    )
    calc = PySCFCalculator(settings)
    a = cell.copy()
    a.calc = calc
    forces = a.get_forces()
    assert np.abs(forces).max() > 5e-3  # a displaced H: a real force to compare
    numeric = finite_difference_forces(cell, calc, [(1, 0), (1, 1)])
    np.testing.assert_allclose(forces[1, :2], numeric, atol=1e-3)
    assert calc.stress_note is not None and "multigrid" in calc.stress_note  # forces only


def test_open_shell_uses_unrestricted_and_reports_s2():
    atoms = molecule("OH")
    calc = PySCFCalculator(LabelSettings(method="DFT", xc="pbe", basis="sto-3g"), multiplicity=2)
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.s2 == pytest.approx(0.75, abs=0.02)


def test_impossible_spin_is_an_input_error():
    atoms = molecule("H2O")
    atoms.calc = PySCFCalculator(HF_STO3G, multiplicity=2)
    with pytest.raises(InputError, match="cannot build"):
        atoms.get_potential_energy()


def test_missing_dispersion_package_is_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("pyscf.dispersion") is not None:
        pytest.skip("pyscf-dispersion is installed here")
    atoms = molecule("H2O")
    settings = LabelSettings(method="DFT", basis="sto-3g", dispersion="d3bj")
    atoms.calc = PySCFCalculator(settings)
    with pytest.raises(InputError, match="pip install pyscf-dispersion"):
        atoms.get_potential_energy()
