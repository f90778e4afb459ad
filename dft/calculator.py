"""PySCF as an ASE calculator: energy in eV, forces in eV/Å."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ase.calculators.calculator import Calculator, all_changes

from dft.scf import build_system, gradient, run_ladder, spin_contamination
from dft.settings import LabelSettings
from dft.units import FORCE_AU_EV_ANG, HARTREE_EV

#: Why a periodic label carries no stress: this PySCF's stress code (pbc.grad.rks_stress)
#: fails for the Gamma-point multigrid objects that give us forces; zeros would lie.
STRESS_NOT_AVAILABLE = "not available: PySCF has no stress for this Gamma-point method"


class PySCFCalculator(Calculator):
    """Single-point PySCF calculations through ASE's calculator interface.

    Parameters
    ----------
    settings
        Method, basis and SCF options (:class:`dft.settings.LabelSettings`).
    charge, multiplicity
        Total charge and spin multiplicity; default to ``atoms.info['charge']`` and
        ``atoms.info['multiplicity']`` (then 0 and 1).

    After a calculation, ``scf_attempts`` lists the recovery-ladder attempts, ``s2`` holds
    <S^2> for unrestricted methods and ``stress_note`` says why stress is absent.
    Failures raise ASE's errors: ``SCFError`` (ladder exhausted; ``attempts`` attached),
    ``InputError`` (impossible charge/spin, missing dispersion package) or
    ``CalculationFailed`` (timeout, no analytic gradient).

    Examples
    --------
    >>> from ase.build import molecule
    >>> atoms = molecule("H2O")
    >>> atoms.calc = PySCFCalculator(LabelSettings(method="HF", basis="sto-3g"))
    >>> round(atoms.get_potential_energy(), 2)
    -2039.89
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]
    discard_results_on_any_change = True

    def __init__(
        self,
        settings: LabelSettings | None = None,
        charge: int | None = None,
        multiplicity: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings or LabelSettings()
        self.charge = charge
        self.multiplicity = multiplicity
        self.scf_attempts: list[dict] = []
        self.s2: float | None = None
        self.stress_note: str | None = None
        self.wall_time: float | None = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        charge = self.charge if self.charge is not None else atoms.info.get("charge", 0)
        mult = (
            self.multiplicity
            if self.multiplicity is not None
            else atoms.info.get("multiplicity", 1)
        )
        start = time.perf_counter()
        deadline = time.monotonic() + self.settings.timeout_s
        self.scf_attempts = []
        system = build_system(atoms, self.settings, charge, mult)
        try:
            mf, attempts = run_ladder(system, self.settings, deadline=deadline)
        except Exception as exc:
            self.scf_attempts = [a.as_dict() for a in getattr(exc, "attempts", [])]
            raise
        self.scf_attempts = [a.as_dict() for a in attempts]
        grad = gradient(mf, self.settings)
        self.s2 = spin_contamination(mf)
        self.stress_note = STRESS_NOT_AVAILABLE if self.settings.periodic else None
        energy = float(mf.e_tot) * HARTREE_EV
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": -grad * FORCE_AU_EV_ANG,
        }
        self.wall_time = time.perf_counter() - start
