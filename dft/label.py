"""Labelling one structure: guard, calculate, and turn any outcome into a LabelRecord."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

from ase.calculators.calculator import CalculationFailed, InputError, SCFError

from aloop.records import LabelRecord
from aloop.vocabulary import Engine, LabelStatus
from dft.calculator import PySCFCalculator
from dft.guard import guard_reason
from dft.scf import SCFTimeout

if TYPE_CHECKING:
    from ase import Atoms

    from dft.settings import LabelSettings


def label_structure(
    structure_id: str,
    atoms: Atoms,
    settings: LabelSettings,
    charge: int = 0,
    multiplicity: int = 1,
    threads: int | None = None,
) -> LabelRecord:
    """Compute the reference label of one structure; never raises for a bad structure.

    Returns a :class:`aloop.records.LabelRecord` whose ``status`` is ``ok``,
    ``failed`` (SCF not converged, timeout, PySCF error; with the reason) or ``rejected``
    (the geometry guard refused it and no DFT was spent). Energies in eV, forces in eV/Å.

    ``energy`` is the energy the forces are minus the gradient of: the Mermin free energy
    of a smeared SCF, with the internal energy beside it as ``internal_energy`` (None
    without smearing, where the two are one). ``stability`` says whether the SCF
    solution was shown to be a minimum (:class:`aloop.vocabulary.Stability`), and
    ``spin_treatment`` whether it is restricted or unrestricted.
    """
    common = {
        "structure_id": structure_id,
        "settings_hash": settings.settings_hash(),
        "settings": settings.result_fields(),
        "host": socket.gethostname(),
        "threads": threads or _threads(),
        "code_versions": settings.code_versions,
    }
    reason = guard_reason(atoms, charge, multiplicity, settings.min_distance_factor)
    if reason is not None:
        return LabelRecord(status=LabelStatus.REJECTED, error=reason, wall_time=0.0, **common)
    calc = _calculator(settings, charge, multiplicity)
    work = atoms.copy()
    work.calc = calc
    start = time.perf_counter()
    try:
        energy = work.get_potential_energy(force_consistent=True)
        forces = work.get_forces()
    except Exception as exc:  # PySCF raises assorted types; a label failure is data
        return LabelRecord(
            status=LabelStatus.FAILED,
            error=_failure_text(exc, settings),
            stability=calc.stability,
            scf_attempts=calc.scf_attempts,
            wall_time=_since(start),
            **common,
        )
    return LabelRecord(
        status=LabelStatus.OK,
        energy=float(energy),
        internal_energy=calc.internal_energy,
        forces=forces,
        stress=calc.results.get("stress"),
        stress_note=calc.stress_note,
        s2=calc.s2,
        stability=calc.stability,
        stability_note=calc.stability_note,
        spin_treatment=calc.spin_treatment,
        scf_attempts=calc.scf_attempts,
        wall_time=_since(start),
        **common,
    )


def _calculator(settings: LabelSettings, charge: int, multiplicity: int) -> Any:
    """The engine's calculator: a new PySCF one, or this process's CP2K shell."""
    if settings.engine == Engine.CP2K:
        from dft.cp2k import shared_calculator

        return shared_calculator(settings, charge, multiplicity)
    return PySCFCalculator(settings, charge=charge, multiplicity=multiplicity)


def _failure_text(exc: Exception, settings: LabelSettings) -> str:
    """What a failed label's ``error`` says: ASE's errors carry their own words."""
    if isinstance(exc, SCFTimeout):
        return f"timeout after {settings.timeout_s:g} s"
    if isinstance(exc, (SCFError, InputError, CalculationFailed)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:1000]


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 4)


def _threads() -> int:
    from pyscf import lib

    return (
        int(lib.num_threads())
        if hasattr(lib, "num_threads")
        else int(os.environ.get("OMP_NUM_THREADS", "1"))
    )
