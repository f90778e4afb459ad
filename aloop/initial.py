"""Iteration 0: the starting structures and labelled perturbations of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aloop.vocabulary import Origin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ase import Atoms


def rattled_copies(atoms: Atoms, n: int, stdev: float, seed: int) -> list[Atoms]:
    """``n`` copies of ``atoms`` with Gaussian displacements of ``stdev`` Å per coordinate.

    Each copy's generator is seeded from ``seed`` and its index, so the set is the same on
    every run (a resumed campaign regenerates identical structures, which then dedupe).
    """
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        copy = atoms.copy()
        copy.positions = atoms.positions + rng.normal(scale=stdev, size=atoms.positions.shape)
        out.append(copy)
    return out


def seed_structures(
    starts: Sequence[Atoms], n_rattled: int, stdev: float, seed: int
) -> list[tuple[Atoms, Origin, int | None]]:
    """``(atoms, origin, parent index)`` for the starting structures and their rattles.

    Origin is ``initial`` for a starting structure (parent None) and ``rattled`` for a
    perturbation (parent: the index of its starting structure in ``starts``).
    """
    out: list[tuple[Atoms, Origin, int | None]] = []
    for i, atoms in enumerate(starts):
        out.append((atoms, Origin.INITIAL, None))
        for copy in rattled_copies(atoms, n_rattled, stdev, seed + 7919 * i):
            out.append((copy, Origin.RATTLED, i))
    return out
