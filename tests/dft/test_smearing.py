"""Smeared periodic labels store the energy their forces differentiate: the free energy.

PySCF 2.14's smeared SCF (pbc.scf.addons.smearing_, Fermi-Dirac): ``e_tot`` is the
internal energy E of the smeared density, ``e_free`` = E - sigma*S the Mermin free
energy and ``e_zero`` = E - sigma*S/2 the sigma -> 0 extrapolation. Its analytic forces are
-dF/dx: on H2 stretched to 1.8 Å in a 4 Å cell (sigma 0.03 Ha, ke_cutoff 40 Ha) finite
differences of F agree to 1e-4 eV/Å, while those of E differ by 0.36 eV/Å (measured, both
multigrid and FFTDF).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aloop.vocabulary import LabelStatus, Stability
from dft.calculator import PySCFCalculator
from dft.label import label_structure
from dft.settings import LabelSettings

H = 1e-3  # Å; central differences, O(h^2) ~ 1e-6 eV/Å


def stretched_h2_cell() -> Atoms:
    return Atoms("H2", positions=[[0.3, 0.2, 0.1], [2.1, 0.4, 0.3]], cell=np.eye(3) * 4.0, pbc=True)


def settings(sigma: float) -> LabelSettings:
    return LabelSettings(
        method="DFT",
        xc="pbe",
        periodic=True,
        ke_cutoff_hartree=40,
        conv_tol=1e-10,
        multigrid=True,
        smearing_hartree=sigma,
    )


def test_smeared_label_energy_is_the_free_energy_its_forces_differentiate():
    s = settings(0.03)
    rec = label_structure("h2", stretched_h2_cell(), s)
    assert rec.status == LabelStatus.OK
    assert rec.internal_energy is not None
    assert rec.internal_energy - rec.energy > 0.1  # sigma*S: a real difference (eV)
    assert rec.stability is Stability.NOT_ANALYSED and "smeared" in rec.stability_note
    energies, internals = [], []
    for sign in (1, -1):
        a = stretched_h2_cell()
        a.positions[1, 0] += sign * H
        r = label_structure("h2", a, s)
        energies.append(r.energy)
        internals.append(r.internal_energy)
    fd_free = -(energies[0] - energies[1]) / (2 * H)
    fd_internal = -(internals[0] - internals[1]) / (2 * H)
    assert rec.forces[1, 0] == pytest.approx(fd_free, abs=1e-3)
    # storing the internal energy (as before) would pair forces with another surface
    assert abs(rec.forces[1, 0] - fd_internal) > 0.1


def test_calculator_follows_ase_energy_conventions_when_smeared():
    calc = PySCFCalculator(settings(0.03))
    a = stretched_h2_cell()
    a.calc = calc
    free = a.get_potential_energy(force_consistent=True)
    extrapolated = a.get_potential_energy()
    internal = calc.internal_energy
    # E - sigma*S/2 lies halfway between E and E - sigma*S
    assert extrapolated == pytest.approx((internal + free) / 2, abs=1e-8)
    assert free < extrapolated < internal


def test_without_smearing_energy_and_free_energy_are_one():
    calc = PySCFCalculator(settings(0.0))
    a = stretched_h2_cell()
    a.calc = calc
    assert a.get_potential_energy() == a.get_potential_energy(force_consistent=True)
    assert calc.internal_energy is None
    rec = label_structure("h2", stretched_h2_cell(), settings(0.0))
    assert rec.internal_energy is None
    assert rec.energy == pytest.approx(a.get_potential_energy(), abs=1e-8)
