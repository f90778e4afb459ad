"""The one place where Hartree and Bohr are converted (ASE's CODATA values).

Geometries go to PySCF in Bohr converted here and gradients and stresses come back
through the same constants, so forces are exactly minus the derivative of the energy in
eV/Å (and stresses its strain derivative over the volume in eV/Å³), whatever constants
PySCF uses internally for Å input.
"""

from __future__ import annotations

from ase.units import Bohr, Hartree

#: eV per Hartree (ASE's CODATA set).
HARTREE_EV: float = float(Hartree)
#: Å per Bohr (ASE's CODATA set).
BOHR_ANG: float = float(Bohr)
#: eV/Å per Hartree/Bohr.
FORCE_AU_EV_ANG: float = HARTREE_EV / BOHR_ANG
#: eV/Å³ per Hartree/Bohr³: stress is energy per volume, so Bohr enters cubed. PySCF's own
#: ASE calculator (pyscf/pbc/tools/pyscf_ase.py, 2.14) multiplies get_stress() by
#: ``HARTREE2EV / BOHR``, the force factor, which leaves its stress 1/Bohr² = 3.57 times
#: too small; labels are converted with this constant instead.
STRESS_AU_EV_ANG3: float = HARTREE_EV / BOHR_ANG**3
