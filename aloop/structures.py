"""Structures: reading a system's starting geometries, the checks every geometry must
pass (electron count, close contacts), and canonical content hashing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms

    from aloop.config import SystemConfig

#: Positions and cell are rounded to this grid (Å) before hashing. Geometries that agree
#: to this precision are the same structure; MD frames a step apart differ by ~1e-3 Å.
#: 1e-6 puts the 6-decimal coordinates of xyz files and ASE's g2 set exactly on grid
#: points, so float round-off (unit conversions, file round trips) cannot tip a rounding.
HASH_TOLERANCE_ANG = 1e-6


def resolve_path(path: str, base_dir: Path) -> Path:
    """A path from the config, relative to the config file's folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def load_system_structures(system: SystemConfig, base_dir: Path | str = ".") -> list[Atoms]:
    """Starting geometries of a system: an ``ase.build.molecule`` or frames of a file.

    ``pbc`` from the config, when given, overrides what the file says.
    """
    if system.molecule is not None:
        frames = [_named_molecule(system.molecule)]
    else:
        frames = _read_frames(resolve_path(system.structure or "", Path(base_dir)), system.index)
    for atoms in frames:
        if system.pbc is not None:
            atoms.pbc = system.pbc
        if atoms.pbc.any() and atoms.cell.rank < 3:
            raise ValueError("a periodic structure needs a full 3D cell")
    return frames


def _named_molecule(name: str) -> Atoms:
    from ase.build import molecule

    try:
        return molecule(name)
    except KeyError:
        raise ValueError(f"unknown ase.build.molecule name {name!r}") from None


def _read_frames(path: Path, index: str) -> list[Atoms]:
    from ase.io import read

    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a structure file")
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():  # a FIFO or a device: ase.io would block or read forever
        raise ValueError(f"{path} is not a regular file")
    try:
        frames = read(path, index=index)
    except Exception as exc:  # ase.io raises many unrelated types for bad files
        raise ValueError(f"ase.io cannot read {path}: {exc}") from None
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise ValueError(f"no frames in {path} at index {index!r}")
    return frames


def check_system_structures(
    system: SystemConfig, where: str, base_dir: Path, min_distance_factor: float = 0.5
) -> None:
    """Load a system's starting geometries once: they must exist, its charge and
    multiplicity must fit each of them, and each must pass the geometry guard that
    labelling applies (finite coordinates, no two atoms closer than
    ``min_distance_factor`` times their covalent sum).

    Raises
    ------
    ValueError
        The message starts with the key at fault under ``where`` (``systems.0.charge:``).
    """
    key = "molecule" if system.molecule is not None else "structure"
    try:
        frames = load_system_structures(system, base_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}.{key}: {exc}") from None
    for k, atoms in enumerate(frames):
        problem = impossible_spin(atoms, system.charge, system.multiplicity)
        electrons = electron_count(atoms, system.charge)
        if problem == "charge":
            raise ValueError(
                f"{where}.charge: {system.charge} leaves {electrons} electrons; "
                "at least one is needed"
            )
        if problem == "multiplicity":
            raise ValueError(
                f"{where}.multiplicity: {system.multiplicity} is impossible with "
                f"{electrons} electrons (charge {system.charge}); parity must match"
            )
        geometry = geometry_problem(atoms, min_distance_factor)
        if geometry:
            frame = f", frame {k}" if len(frames) > 1 else ""
            raise ValueError(f"{where}.{key}: system {system.name!r}{frame}: {geometry}")


def geometry_problem(atoms: Atoms, min_distance_factor: float) -> str | None:
    """Why the geometry guard would reject ``atoms``, or None.

    Non-finite coordinates or cell, or the pair of atoms closest relative to
    ``min_distance_factor`` times its covalent sum when closer than that. Pairs come
    from a neighbour list (minimum image in periodic cells), so a large cell costs
    memory in proportion to its atoms, not their square.
    """
    if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        bad = np.flatnonzero(~np.all(np.isfinite(atoms.positions), axis=1))
        atoms_text = f"atom {int(bad[0])}" if bad.size else "the cell"
        return f"non-finite coordinates ({atoms_text})"
    contact = _closest_contact(atoms, min_distance_factor)
    if contact is None:
        return None
    sym = atoms.get_chemical_symbols()
    return (
        f"atoms {contact.i} ({sym[contact.i]}) and {contact.j} ({sym[contact.j]}) are "
        f"{contact.distance:.3f} Å apart, below {min_distance_factor:g} x covalent sum "
        f"({contact.limit:.3f} Å)"
    )


def _closest_contact(atoms: Atoms, factor: float) -> Contact | None:
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    if len(atoms) < 2:
        return None
    radii = factor * covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, list(radii), self_interaction=False)
    keep = i < j
    i, j, d = i[keep], j[keep], d[keep]
    if not i.size:
        return None
    limit = radii[i] + radii[j]
    k = int(np.argmin(d / limit))
    return Contact(int(i[k]), int(j[k]), float(d[k]), float(limit[k]))


def electron_count(atoms: Atoms, charge: int) -> int:
    """Electrons of a neutral-atom count shifted by the total charge."""
    return int(atoms.numbers.sum()) - int(charge)


def impossible_spin(
    atoms: Atoms, charge: int, multiplicity: int
) -> Literal["charge", "multiplicity"] | None:
    """Which of ``charge`` and ``multiplicity`` no electron count of ``atoms`` can match.

    ``"charge"`` when the charge leaves no electron (or a negative number of them),
    ``"multiplicity"`` when the unpaired electrons (multiplicity - 1) are negative, more
    than the electrons, or of the other parity; None when both fit.
    """
    electrons = electron_count(atoms, charge)
    if electrons <= 0:
        return "charge"
    unpaired = int(multiplicity) - 1
    if unpaired < 0 or unpaired > electrons or (electrons - unpaired) % 2:
        return "multiplicity"
    return None


@dataclass(frozen=True)
class Contact:
    """Two atoms closer than ``limit``: a factor times the sum of their covalent radii."""

    i: int
    j: int
    distance: float
    limit: float


def pair_distances(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """(distances, sums of covalent radii) of every pair of atoms, in Å.

    Distances use the minimum image in periodic cells; an atom's distance to itself is
    infinite, so it is never a contact.
    """
    from ase.data import covalent_radii

    dist = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    np.fill_diagonal(dist, np.inf)
    radii = covalent_radii[atoms.numbers]
    return dist, radii[:, None] + radii[None, :]


def close_contact(dist: np.ndarray, bond: np.ndarray, factor: float) -> Contact | None:
    """The pair closest relative to ``factor`` times its covalent sum, when closer than
    that; None when no pair is (``dist``, ``bond``: from :func:`pair_distances`)."""
    if dist.size == 0:
        return None
    limit = factor * bond
    ratio = dist / limit
    i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
    if ratio[i, j] < 1.0:
        return Contact(int(i), int(j), float(dist[i, j]), float(limit[i, j]))
    return None


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
