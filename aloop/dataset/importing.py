"""Reading an existing labelled extxyz (or any file ase.io reads) for import.

Energies and forces are read from configurable keys (``info`` for the energy and stress,
``arrays`` for per-atom forces, or a calculator's results when the keys are ``energy`` /
``forces``). Units: eV, eV/Å and eV/Å^3 (``units="eV"``, the extxyz convention), or
Hartree, Hartree/Bohr and Hartree/Bohr^3 (``units="hartree"``), converted with ASE's
CODATA constants. A frame without an energy or without forces comes back unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

UNITS = ("eV", "hartree")


@dataclass
class ImportedFrame:
    """One frame of the source file: geometry and, when present, its label (eV, Å)."""

    index: int
    atoms: Any
    energy: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None

    @property
    def labelled(self) -> bool:
        """Both an energy and forces were found."""
        return self.energy is not None and self.forces is not None


def _scales(units: str) -> tuple[float, float, float]:
    from ase.units import Bohr, Hartree

    if units == "eV":
        return 1.0, 1.0, 1.0
    if units == "hartree":
        return Hartree, Hartree / Bohr, Hartree / Bohr**3
    raise ValueError(f"units must be one of {', '.join(UNITS)}, not {units!r}")


def _lookup(atoms: Any, key: str, per_atom: bool) -> Any:
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store[key]
    calc = atoms.calc
    if calc is not None and key in getattr(calc, "results", {}):
        return calc.results[key]
    return None


def read_frames(
    path: Path | str,
    *,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    stress_key: str = "REF_stress",
    units: str = "eV",
    index: str = ":",
) -> Iterator[ImportedFrame]:
    """Stream the frames of ``path`` with their labels converted to eV, eV/Å, eV/Å^3."""
    from ase.io import iread

    e_scale, f_scale, s_scale = _scales(units)
    for i, atoms in enumerate(iread(str(path), index=index)):
        energy = _lookup(atoms, energy_key, per_atom=False)
        forces = _lookup(atoms, forces_key, per_atom=True)
        stress = _lookup(atoms, stress_key, per_atom=False)
        if forces is not None:
            forces = np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3)
        if stress is not None:
            stress = np.asarray(stress, dtype=np.float64).ravel()
            if stress.size == 9:
                from ase.stress import full_3x3_to_voigt_6_stress

                stress = full_3x3_to_voigt_6_stress(stress.reshape(3, 3))
        bare = atoms.copy()
        bare.calc = None
        yield ImportedFrame(
            index=i,
            atoms=bare,
            energy=None if energy is None else float(energy) * e_scale,
            forces=None if forces is None else forces * f_scale,
            stress=None if stress is None else stress * s_scale,
        )
