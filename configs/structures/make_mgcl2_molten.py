"""Write MgCl2 cells packed at the melt density (1.68 g/cm^3).

A random packing with minimum-image distances of at least ``unlike`` Å (Mg-Cl) and
``like`` Å (like ions); exploration at 1000-1600 K melts it within picoseconds.

- mgcl2-molten.extxyz (production example): 8 units, 2.3 / 2.8 Å.
- mgcl2-demo.extxyz (the runnable demo): 3 units, 2.35 / 3.2 Å. A 9-atom cell has few
  neighbours to screen a close like pair, so the like-ion limit is nearer the melt's
  first Mg-Mg and Cl-Cl shells (about 3.5 Å): a closer pair starts MD far from
  equilibrium with forces of tens of eV/Å.

Run: python configs/structures/make_mgcl2_molten.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses
from ase.io import write
from ase.units import _amu

DENSITY_G_CM3 = 1.68


def packed_cell(units: int, unlike: float, like: float, seed: int = 1600) -> Atoms:
    """``units`` MgCl2 placed at random in a cube at the melt density."""
    rng = np.random.default_rng(seed)
    symbols = ["Mg"] * units + ["Cl"] * (2 * units)
    mass_g = sum(atomic_masses[z] for z in Atoms(symbols).numbers) * _amu * 1e3
    edge = (mass_g / DENSITY_G_CM3 * 1e24) ** (1 / 3)
    placed: list[np.ndarray] = []
    for sym in symbols:
        for _ in range(100_000):
            trial = rng.random(3) * edge
            ok = True
            for other_sym, pos in zip(symbols, placed, strict=False):
                d = trial - pos
                d -= edge * np.round(d / edge)
                limit = unlike if other_sym != sym else like
                if np.linalg.norm(d) < limit:
                    ok = False
                    break
            if ok:
                placed.append(trial)
                break
        else:
            raise RuntimeError("could not pack the cell; lower the distance limits")
    atoms = Atoms(symbols, positions=placed, cell=[edge] * 3, pbc=True)
    atoms.info["comment"] = f"random MgCl2 packing at {DENSITY_G_CM3} g/cm^3, seed {seed}"
    return atoms


def main() -> None:
    here = Path(__file__).parent
    write(here / "mgcl2-molten.extxyz", packed_cell(8, unlike=2.3, like=2.8))
    write(here / "mgcl2-demo.extxyz", packed_cell(3, unlike=2.35, like=3.2))


if __name__ == "__main__":
    main()
