"""Plain records that the science code hands to the data layer (and gets back)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aloop.structures import content_hash


@dataclass
class StructureRecord:
    """A structure to store: geometry plus lineage, as plain data."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: Sequence[bool]
    system: str
    origin: str
    charge: int = 0
    multiplicity: int = 1
    iteration: int = 0
    lineage: dict = field(default_factory=dict)
    uncertainty: dict | None = None
    verdict: str | None = None
    verdict_reason: str | None = None
    tags: list[str] = field(default_factory=list)

    @classmethod
    def from_atoms(cls, atoms: Any, system: str, origin: str, **kw: Any) -> StructureRecord:
        """A record from an ASE Atoms object."""
        return cls(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell.array,
            pbc=[bool(p) for p in atoms.pbc],
            system=system,
            origin=origin,
            **kw,
        )

    @property
    def hash(self) -> str:
        """Canonical content hash (see :func:`aloop.structures.content_hash`)."""
        return content_hash(
            self.numbers, self.positions, self.cell, self.pbc, self.charge, self.multiplicity
        )


@dataclass
class LabelRecord:
    """A finished (or failed) reference calculation, as plain data from dft/."""

    structure_id: str
    settings_hash: str
    status: str
    settings: dict = field(default_factory=dict)
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    stress_note: str | None = None
    s2: float | None = None
    scf_attempts: list[dict] = field(default_factory=list)
    error: str | None = None
    wall_time: float | None = None
    host: str = field(default_factory=socket.gethostname)
    threads: int | None = None
    code_versions: dict = field(default_factory=dict)
    iteration: int = 0
