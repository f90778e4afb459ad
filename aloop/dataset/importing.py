"""Reading an existing labelled extxyz (or any file ase.io reads) for import.

Energies and forces are read from configurable keys (``info`` for the energy and stress,
``arrays`` for per-atom forces, or a calculator's results when the keys are ``energy`` /
``forces``). Units: eV, eV/Å and eV/Å^3 (``units="eV"``, the extxyz convention), or
Hartree, Hartree/Bohr and Hartree/Bohr^3 (``units="hartree"``), converted with ASE's
CODATA constants. A frame without an energy or without forces comes back unlabelled.

:func:`load_frames` reads and checks every frame before anything is stored (an import
is refused whole, naming the frame): a label must be finite, complete (an energy and
forces, or neither), of the system's composition, in a plausible unit, and keys that
find nothing on any frame are an error, not "unlabelled" (see :mod:`.import_checks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aloop.errors import UserError

UNITS = ("eV", "hartree")


class ImportRefused(UserError):
    """The import would poison the campaign, or leave structures it will never label."""


@dataclass
class ImportedFrame:
    """One frame of the source file: geometry and, when present, its label (eV, Å)."""

    index: int
    atoms: Any
    energy: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None
    #: Label-looking keys the frame carries (info, arrays, calculator results).
    label_keys: tuple[str, ...] = ()

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


def _label_keys(atoms: Any) -> tuple[str, ...]:
    """Keys of ``atoms`` that look like labels, to name when the requested ones are absent."""
    calc = atoms.calc
    keys = [*atoms.info, *(k for k in atoms.arrays if k not in ("numbers", "positions"))]
    keys += list(getattr(calc, "results", {}) if calc is not None else {})
    return tuple(k for k in dict.fromkeys(keys) if "energ" in k.lower() or "force" in k.lower())


def _array(frame: int, name: str, value: Any, shape: tuple[int, ...] | None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
        return arr.reshape(shape) if shape else arr.ravel()
    except (TypeError, ValueError):
        got = np.shape(value)
        raise ImportRefused(
            f"frame {frame}: {name} of shape {got} is not {shape or 'numbers'}"
        ) from None


def _frame(
    i: int, atoms: Any, keys: tuple[str, str, str], scales: tuple[float, ...]
) -> ImportedFrame:
    energy = _lookup(atoms, keys[0], per_atom=False)
    forces = _lookup(atoms, keys[1], per_atom=True)
    stress = _lookup(atoms, keys[2], per_atom=False)
    if energy is not None:
        try:
            energy = float(energy) * scales[0]
        except (TypeError, ValueError):
            raise ImportRefused(
                f"frame {i}: energy {keys[0]!r} is not a number: {energy!r}"
            ) from None
    if forces is not None:
        forces = _array(i, f"forces {keys[1]!r}", forces, (len(atoms), 3)) * scales[1]
    if stress is not None:
        stress = _array(i, f"stress {keys[2]!r}", stress, None)
        if stress.size == 9:
            from ase.stress import full_3x3_to_voigt_6_stress

            stress = full_3x3_to_voigt_6_stress(stress.reshape(3, 3))
        elif stress.size != 6:
            raise ImportRefused(
                f"frame {i}: stress {keys[2]!r} has {stress.size} values, not 6 or 9"
            )
        stress = stress * scales[2]
    bare = atoms.copy()
    bare.calc = None
    return ImportedFrame(i, bare, energy, forces, stress, _label_keys(atoms))


def read_frames(
    path: Path | str,
    *,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    stress_key: str = "REF_stress",
    units: str = "eV",
    index: str = ":",
) -> Iterator[ImportedFrame]:
    """Stream the frames of ``path`` with their labels converted to eV, eV/Å, eV/Å^3.

    Raises :class:`ImportRefused` for a label that is not a number or has the wrong shape.
    """
    from ase.io import iread

    scales = _scales(units)
    keys = (energy_key, forces_key, stress_key)
    for i, atoms in enumerate(iread(str(path), index=index)):
        yield _frame(i, atoms, keys, scales)
