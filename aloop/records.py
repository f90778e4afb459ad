"""Plain records that the science code hands to the data layer (and gets back)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aloop.structures import content_hash

#: MACE's namespaced reference keys: an extxyz written with them feeds mace_run_train
#: (--energy_key REF_energy --forces_key REF_forces --stress_key REF_stress) unchanged.
REF_ENERGY = "REF_energy"
REF_FORCES = "REF_forces"
REF_STRESS = "REF_stress"


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

    def labelled_atoms(self, atoms: Any) -> Any:
        """A copy of ``atoms`` carrying this label under MACE's REF_ keys.

        Raises
        ------
        ValueError
            The label is not ``ok`` (a failed label has no numbers to attach).
        """
        if self.status != "ok":
            raise ValueError(f"label of {self.structure_id} is {self.status}: {self.error}")
        out = atoms.copy()
        out.calc = None
        out.info[REF_ENERGY] = float(self.energy)
        out.arrays[REF_FORCES] = np.asarray(self.forces, dtype=np.float64).copy()
        if self.stress is not None:
            out.info[REF_STRESS] = np.asarray(self.stress, dtype=np.float64).copy()
        return out
