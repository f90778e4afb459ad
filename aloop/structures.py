"""Structures: loading a system's starting geometries and canonical content hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms

    from aloop.config import SystemConfig

#: Positions and cell are rounded to this grid (Å) before hashing. Geometries that agree
#: to this precision are the same structure; MD frames a step apart differ by ~1e-3 Å.
#: 1e-6 puts the 6-decimal coordinates of xyz files and ASE's g2 set exactly on grid
#: points, so float round-off (unit conversions, file round trips) cannot tip a rounding.
HASH_TOLERANCE_ANG = 1e-6


def load_system_structures(system: SystemConfig, base_dir: Path | str = ".") -> list[Atoms]:
    """Starting geometries of a system: an ``ase.build.molecule`` or frames of a file.

    ``pbc`` from the config, when given, overrides what the file says.
    """
    from ase.build import molecule
    from ase.io import read

    if system.molecule is not None:
        try:
            frames = [molecule(system.molecule)]
        except KeyError:
            raise ValueError(f"unknown ase.build.molecule name {system.molecule!r}") from None
    else:
        from aloop.config import resolve_path

        path = resolve_path(system.structure or "", Path(base_dir))
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        try:
            frames = read(path, index=system.index)
        except Exception as exc:  # ase.io raises many unrelated types for bad files
            raise ValueError(f"ase.io cannot read {path}: {exc}") from None
        if not isinstance(frames, list):
            frames = [frames]
        if not frames:
            raise ValueError(f"no frames in {path} at index {system.index!r}")
    for atoms in frames:
        if system.pbc is not None:
            atoms.pbc = system.pbc
        if atoms.pbc.any() and atoms.cell.rank < 3:
            raise ValueError("a periodic structure needs a full 3D cell")
    return frames


def electron_count(atoms: Atoms, charge: int) -> int:
    """Electrons of a neutral-atom count shifted by the total charge."""
    return int(atoms.numbers.sum()) - int(charge)


def content_hash(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    charge: int = 0,
    multiplicity: int = 1,
) -> str:
    """Canonical sha256 of a structure, stable across processes and platforms.

    Positions and cell are rounded to :data:`HASH_TOLERANCE_ANG` and hashed as
    little-endian int64, so the hash does not depend on float formatting. Atom order is
    part of the identity (labels are per atom). The cell only counts for periodic axes,
    so a molecule's hash ignores whatever box a file happened to carry.
    """
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3) * pbc[:, None]
    h = hashlib.sha256()
    h.update(np.asarray(numbers, dtype="<i8").tobytes())
    h.update(_quantized(np.asarray(positions, dtype=np.float64)))
    h.update(_quantized(cell))
    h.update(pbc.astype("u1").tobytes())
    h.update(np.array([charge, multiplicity], dtype="<i8").tobytes())
    return h.hexdigest()


def _quantized(values: np.ndarray) -> bytes:
    """Values on the hash grid as int64 bytes; values off any int64 grid point (blown-up
    or non-finite coordinates) keep their exact float64 bits, flagged, so the hash stays
    defined and identical on every platform."""
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.rint(values / HASH_TOLERANCE_ANG)
    on_grid = np.isfinite(q) & (np.abs(q) < 2.0**62)
    ints = np.where(on_grid, q, 0).astype("<i8")
    raw = np.where(on_grid, 0.0, values).astype("<f8")
    return ints.tobytes() + on_grid.tobytes() + raw.tobytes()


def atoms_hash(atoms: Atoms, charge: int = 0, multiplicity: int = 1) -> str:
    """:func:`content_hash` of an ASE Atoms object."""
    return content_hash(
        atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, charge, multiplicity
    )
