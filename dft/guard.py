"""Checks that reject a structure before any DFT is spent on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase.data import covalent_radii

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
    pos = atoms.positions
    if not np.all(np.isfinite(pos)) or not np.all(np.isfinite(atoms.cell.array)):
        return "non-finite coordinates or cell"
    electrons = int(atoms.numbers.sum()) - int(charge)
    unpaired = int(multiplicity) - 1
    if electrons < 0 or multiplicity < 1:
        return f"charge {charge} / multiplicity {multiplicity} impossible for this structure"
    if unpaired > electrons or (electrons - unpaired) % 2:
        return f"multiplicity {multiplicity} does not match {electrons} electrons (charge {charge})"
    if len(atoms) < 2:
        return None
    dist = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    radii = covalent_radii[atoms.numbers]
    limit = min_distance_factor * (radii[:, None] + radii[None, :])
    np.fill_diagonal(dist, np.inf)
    ratio = dist / limit
    i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
    if ratio[i, j] < 1.0:
        sym = atoms.get_chemical_symbols()
        return (
            f"atoms {i} ({sym[i]}) and {j} ({sym[j]}) are {dist[i, j]:.3f} Å apart, below "
            f"{min_distance_factor:g} x covalent sum ({limit[i, j]:.3f} Å)"
        )
    return None
