"""Periodic stress against the strain derivative of the energy, and where there is none.

The finite-difference reference: ε symmetric, cell and positions deformed by (I + ε)
(ASE's ``set_cell(..., scale_atoms=True)``), sigma_ij = (1/V) dE/dε_ij in eV/Å³; for i != j
the step moves ε_ij and ε_ji together, so the difference quotient holds 2 sigma_ij.

Step and tolerance: h = 1e-3. The analytic-minus-FD difference was measured at 2e-9
Ha/Bohr³ (4e-7 eV/Å³) for h = 1e-3 and 1.6e-10 for h = 3e-4, so it is the O(h²)
truncation of the difference, not an error of the analytic stress; SCF noise at
conv_tol 1e-11 Ha adds ~1e-11 / (2h V) ~ 3e-11 Ha/Bohr³. The tolerance, 1e-5 eV/Å³
(1.6 MPa), is 25 times the measured difference and 1/1000 of the smallest component
checked, so a wrong unit (PySCF's ASE calculator's 1/Bohr² = 3.57x), a wrong sign, a
lost factor 2 on the shear or a stress of the wrong energy all fail by orders of
magnitude. The FFT mesh is pinned to the unstrained cell's: the analytic stress is the
derivative at a fixed mesh, and ke_cutoff alone would change it mid-difference (it does
at h = 3e-3 here).

The cell: H2 in a 3 Å sheared box with the molecule tilted, so no component vanishes
by symmetry (2 AOs in gth-szv, one SCF well under a second).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import CalculationFailed
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import GPa

from dft.scf import build_system, make_mean_field
from dft.settings import LabelSettings
from dft.stress import (
    NO_STRESS_MULTIGRID,
    periodic_stress,
    stress_unavailable,
    to_voigt,
)
from dft.units import HARTREE_EV, STRESS_AU_EV_ANG3

STEP = 1e-3
TOL_EV_ANG3 = 1e-5


def h2_box() -> Atoms:
    cell = [[3.0, 0.0, 0.0], [0.3, 3.0, 0.0], [0.2, -0.25, 3.0]]
    return Atoms("H2", positions=[[0.3, 0.4, 0.5], [0.85, 0.75, 0.9]], cell=cell, pbc=True)


def fftdf(**kw) -> LabelSettings:
    base = {
        "periodic": True,
        "multigrid": False,
        "xc": "PBE",
        "ke_cutoff_hartree": 30.0,
        "conv_tol": 1e-11,
    }
    return LabelSettings(**{**base, **kw})


def converged(atoms: Atoms, settings: LabelSettings, mult: int, mesh=None, dm0=None):
    cell = build_system(atoms, settings, 0, mult)
    if mesh is not None:
        cell.mesh = np.asarray(mesh)
    mf = make_mean_field(cell, settings)
    mf.kernel(dm0)
    assert mf.converged
    if mesh is not None:
        assert list(mf.with_df.mesh) == list(mesh)
    return mf


def energy_ev(mf) -> float:
    # A smeared SCF's forces and stress belong to the free energy (Mermin), not e_tot.
    e_free = getattr(mf, "e_free", None)
    return float(e_free if e_free is not None else mf.e_tot) * HARTREE_EV


def fd_stress(atoms, settings, mult, mf0, components) -> dict:
    """Central-difference (1/V) dE/dε_ij (eV/Å³) for each (i, j) in components."""
    mesh, dm0 = mf0.cell.mesh, mf0.make_rdm1()  # same mesh; the density as a guess
    volume = atoms.get_volume()
    out = {}
    for i, j in components:
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = STEP
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
            energies.append(energy_ev(converged(strained, settings, mult, mesh, dm0)))
        out[i, j] = (energies[0] - energies[1]) / (2 * STEP) / volume / (1 if i == j else 2)
    return out


def assert_matches_fd(analytic: np.ndarray, fd: dict) -> None:
    diffs = {ij: analytic[ij] - value for ij, value in fd.items()}
    worst = max(abs(d) for d in diffs.values())
    assert worst < TOL_EV_ANG3, f"analytic {analytic}, fd {fd}, diff {diffs}"
    # every component checked is far from zero, so agreeing with it says something
    assert min(abs(v) for v in fd.values()) > 100 * TOL_EV_ANG3


@pytest.mark.slow
def test_restricted_stress_is_the_strain_derivative_of_the_energy():
    atoms, settings = h2_box(), fftdf()
    mf = converged(atoms, settings, 1)
    stress = periodic_stress(mf, settings)
    assert stress.shape == (3, 3)
    np.testing.assert_array_equal(stress, stress.T)
    assert_matches_fd(stress, fd_stress(atoms, settings, 1, mf, [(0, 0), (2, 2), (0, 1), (1, 2)]))
    # the stored form is ASE's Voigt order, as atoms.get_stress() would give it
    np.testing.assert_allclose(to_voigt(stress), full_3x3_to_voigt_6_stress(stress))


@pytest.mark.slow
def test_open_shell_stress_is_the_strain_derivative_of_the_energy():
    atoms, settings = h2_box(), fftdf()
    mf = converged(atoms, settings, 3)  # triplet H2: KUKS
    assert type(mf).__name__ == "KUKS"
    assert stress_unavailable(settings) is None
    stress = periodic_stress(mf, settings)
    assert_matches_fd(stress, fd_stress(atoms, settings, 3, mf, [(1, 1), (0, 2)]))


@pytest.mark.slow
def test_smeared_stress_is_the_strain_derivative_of_the_free_energy():
    # a large width so the occupations are far from 2/0 and e_tot and e_free differ
    atoms, settings = h2_box(), fftdf(smearing_hartree=0.2)
    mf = converged(atoms, settings, 1)
    occupations = np.concatenate(mf.mo_occ)
    assert np.any((occupations > 0.05) & (occupations < 1.95))
    stress = periodic_stress(mf, settings)
    assert_matches_fd(stress, fd_stress(atoms, settings, 1, mf, [(0, 0), (1, 2)]))


def test_stress_factor_is_hartree_per_bohr_cubed():
    from ase.units import Bohr, Hartree

    assert pytest.approx(Hartree / Bohr**3, rel=1e-15) == STRESS_AU_EV_ANG3
    # PySCF's ASE calculator uses the force factor: 3.57 times too small
    assert Hartree / Bohr / STRESS_AU_EV_ANG3 == pytest.approx(Bohr**2, rel=1e-12)
    assert STRESS_AU_EV_ANG3 / GPa == pytest.approx(29421.0, rel=1e-4)  # 1 au = 29.4 TPa


def test_methods_without_stress_say_why():
    assert stress_unavailable(fftdf()) is None
    assert stress_unavailable(fftdf(xc="LDA")) is None
    assert stress_unavailable(fftdf(xc="r2SCAN")) is None
    assert stress_unavailable(fftdf(smearing_hartree=0.01)) is None
    assert "Hartree-Fock" in stress_unavailable(fftdf(method="HF"))
    assert "hybrid" in stress_unavailable(fftdf(xc="PBE0"))
    assert "hybrid" in stress_unavailable(fftdf(xc="HSE06"))  # range-separated too
    assert "non-local" in stress_unavailable(fftdf(xc="B97M-V"))
    assert stress_unavailable(fftdf(multigrid=True)) == NO_STRESS_MULTIGRID
    assert "multigrid false" in NO_STRESS_MULTIGRID
    assert "dispersion" in stress_unavailable(fftdf(dispersion="d3bj"))
    # PySCF turns a -D3/-D4 suffix of the functional's name into the same correction
    assert "d3bj" in stress_unavailable(fftdf(xc="PBE-D3BJ"))
    assert "molecule" in stress_unavailable(LabelSettings(periodic=False))
    with pytest.raises(CalculationFailed, match="hybrid"):
        periodic_stress(None, fftdf(xc="PBE0"))


@pytest.mark.parametrize(
    "kw",
    [{"multigrid": True}, {"xc": "PBE0"}, {"method": "HF"}],
    ids=["multigrid", "PBE0", "HF"],
)
def test_this_pyscf_really_has_no_stress_there(kw):
    """If a PySCF upgrade adds one, this fails: then stress_unavailable must let it in."""
    import pyscf.pbc.grad  # noqa: F401

    settings = fftdf(conv_tol=1e-8, ke_cutoff_hartree=20.0, **kw)
    mf = converged(h2_box(), settings, 1)
    assert stress_unavailable(settings) is not None
    with pytest.raises((NotImplementedError, AssertionError, AttributeError)):
        mf.Gradients().get_stress()


def test_mace_reads_the_stored_voigt_back_as_the_same_tensor():
    import torch
    from mace.tools.torch_tools import voigt_to_matrix

    s = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]])
    voigt = to_voigt(s)
    np.testing.assert_array_equal(voigt, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(voigt_to_matrix(torch.tensor(voigt)).numpy(), s)
