"""Iteration 0: the starting structures and labelled perturbations of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aloop.vocabulary import Origin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ase import Atoms

    from aloop.config import InitialConfig


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


def strained_copies(
    atoms: Atoms, n: int, max_volumetric: float, max_shear: float, stdev: float, seed: int
) -> list[Atoms]:
    """``n`` strained and rattled copies of the periodic cell ``atoms``.

    Copy k's cell is ``cell @ (1 + e)`` with the atoms carried along in fractional
    coordinates: ``e`` is an isotropic strain drawn from [-max_volumetric, max_volumetric]
    on the diagonal plus a symmetric shear, each off-diagonal component from
    [-max_shear, max_shear]; its positions are then rattled by ``stdev`` Å, so each copy
    also has forces to learn from. Seeded by ``seed`` and k, like :func:`rattled_copies`.
    """
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k, 1])
        shear = np.triu(rng.uniform(-max_shear, max_shear, size=(3, 3)), k=1)
        strain = np.eye(3) * (1 + rng.uniform(-max_volumetric, max_volumetric)) + shear + shear.T
        copy = atoms.copy()
        copy.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        copy.positions = copy.positions + rng.normal(scale=stdev, size=atoms.positions.shape)
        out.append(copy)
    return out


def seed_structures(
    starts: Sequence[Atoms], initial: InitialConfig
) -> list[tuple[Atoms, Origin, int | None]]:
    """``(atoms, origin, parent index)`` for the starting structures and their copies.

    Origin is ``initial`` for a starting structure (parent None), ``rattled`` for a
    perturbation and ``strained`` for a strained cell (periodic starts only); parent is
    the index of the copy's starting structure in ``starts``.
    """
    out: list[tuple[Atoms, Origin, int | None]] = []
    for i, atoms in enumerate(starts):
        seed = initial.seed + 7919 * i
        out.append((atoms, Origin.INITIAL, None))
        for copy in rattled_copies(
            atoms, initial.rattled_per_structure, initial.rattle_stdev, seed
        ):
            out.append((copy, Origin.RATTLED, i))
        if atoms.pbc.all():
            for copy in strained_copies(
                atoms,
                initial.strained_per_structure,
                initial.max_volumetric_strain,
                initial.max_shear_strain,
                initial.rattle_stdev,
                seed,
            ):
                out.append((copy, Origin.STRAINED, i))
    return out
