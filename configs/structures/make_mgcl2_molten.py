"""Write mgcl2-molten.extxyz: 8 MgCl2 units packed at the melt density (1.68 g/cm^3).

A random, charge-ordered packing with minimum-image distances of at least 2.3 Å
(Mg-Cl) and 2.8 Å (like ions); exploration at 1000-1600 K melts it within picoseconds.
Run: python configs/structures/make_mgcl2_molten.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses
from ase.io import write
from ase.units import _amu

UNITS = 8
DENSITY_G_CM3 = 1.68


def main() -> None:
    rng = np.random.default_rng(1600)
    symbols = ["Mg"] * UNITS + ["Cl"] * (2 * UNITS)
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
                limit = 2.3 if other_sym != sym else 2.8
                if np.linalg.norm(d) < limit:
                    ok = False
                    break
            if ok:
                placed.append(trial)
                break
        else:
            raise RuntimeError("could not pack the cell; lower the distance limits")
    atoms = Atoms(symbols, positions=placed, cell=[edge] * 3, pbc=True)
    atoms.info["comment"] = f"random MgCl2 packing at {DENSITY_G_CM3} g/cm^3, seed 1600"
    write(Path(__file__).with_name("mgcl2-molten.extxyz"), atoms)


if __name__ == "__main__":
    main()
