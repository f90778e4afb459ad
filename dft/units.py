"""The one place where Hartree and Bohr are converted (ASE's CODATA values).

Geometries go to PySCF in Bohr converted here and gradients come back through the same
constants, so forces are exactly minus the derivative of the energy in eV/Å, whatever
constants PySCF uses internally for Å input.
"""

from __future__ import annotations

from ase.units import Bohr, Hartree

#: eV per Hartree (ASE's CODATA set).
HARTREE_EV: float = float(Hartree)
#: Å per Bohr (ASE's CODATA set).
BOHR_ANG: float = float(Bohr)
#: eV/Å per Hartree/Bohr.
FORCE_AU_EV_ANG: float = HARTREE_EV / BOHR_ANG
