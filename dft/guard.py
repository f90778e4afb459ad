"""Checks that reject a structure before any DFT is spent on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aloop.structures import close_contact, electron_count, impossible_spin, pair_distances

if TYPE_CHECKING:
    from ase import Atoms


def guard_reason(
    atoms: Atoms, charge: int = 0, multiplicity: int = 1, min_distance_factor: float = 0.5
) -> str | None:
    """Why ``atoms`` must not be labelled, or None when it may.

    Rejects non-finite coordinates or cell, a charge and multiplicity that no electron
    count can match, and any pair of atoms closer than ``min_distance_factor`` times the
    sum of their covalent radii (minimum image for periodic cells).
    """
    if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        return "non-finite coordinates or cell"
    problem = impossible_spin(atoms, charge, multiplicity)
    if problem == "charge" or multiplicity < 1:
        return f"charge {charge} / multiplicity {multiplicity} impossible for this structure"
    if problem == "multiplicity":
        electrons = electron_count(atoms, charge)
        return f"multiplicity {multiplicity} does not match {electrons} electrons (charge {charge})"
    if len(atoms) < 2:
        return None
    contact = close_contact(*pair_distances(atoms), min_distance_factor)
    if contact is None:
        return None
    i, j = contact.i, contact.j
    sym = atoms.get_chemical_symbols()
    return (
        f"atoms {i} ({sym[i]}) and {j} ({sym[j]}) are {contact.distance:.3f} Å apart, below "
        f"{min_distance_factor:g} x covalent sum ({contact.limit:.3f} Å)"
    )
