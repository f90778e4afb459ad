"""PySCF as an ASE calculator: energy in eV, forces in eV/Å."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ase.calculators.calculator import Calculator, all_changes

from aloop.vocabulary import SpinTreatment, Stability
from dft.scf import SCFFailed, build_system, gradient, run_ladder, spin_contamination
from dft.settings import LabelSettings
from dft.stress import periodic_stress, stress_unavailable, to_voigt
from dft.units import FORCE_AU_EV_ANG, HARTREE_EV


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
    <S^2> for unrestricted solutions, ``stability`` / ``stability_note`` /
    ``spin_treatment`` say what the SCF solution is (:mod:`dft.scf`), and ``stress_note``
    says why stress is absent.

    Energies follow ASE's contract. ``free_energy`` is the energy whose derivative the
    forces are: for a smeared periodic SCF the Mermin free energy E - sigma*S (PySCF's
    ``e_free``); ``energy`` is then the sigma -> 0 extrapolation E - sigma*S/2 (``e_zero``,
    what ASE's VASP and GPAW calculators give), and ``internal_energy`` the internal
    energy E of the smeared density (``e_tot``). Without smearing all three are one
    number and ``internal_energy`` is None. A label stores ``free_energy``
    (``get_potential_energy(force_consistent=True)``), so its energy and forces are one
    surface.
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

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]
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
        self.stability: Stability | None = None
        self.stability_note: str | None = None
        self.spin_treatment: SpinTreatment | None = None
        self.internal_energy: float | None = None

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
        self.stability = self.stability_note = self.spin_treatment = None
        self.internal_energy = None
        system = build_system(atoms, self.settings, charge, mult)
        try:
            result = run_ladder(system, self.settings, deadline=deadline)
        except Exception as exc:
            tried = getattr(exc, "attempts", [])
            self.scf_attempts = [a.as_dict() for a in tried]
            if isinstance(exc, SCFFailed) and any(
                a.stability is Stability.INTERNAL_UNSTABLE for a in tried
            ):
                self.stability = Stability.INTERNAL_UNSTABLE  # why no rung gave a label
            raise
        mf = result.mf
        self.scf_attempts = [a.as_dict() for a in result.attempts]
        self.stability = result.stability
        self.stability_note = result.stability_note
        self.spin_treatment = result.spin_treatment
        grad = gradient(mf, self.settings)
        self.s2 = spin_contamination(mf)
        # A periodic label has stress wherever this PySCF computes it, and says why not
        # elsewhere (HF, hybrids, multigrid): zeros would lie. (Voigt, eV/Å³, ASE's sign.)
        stress = None
        self.stress_note = stress_unavailable(self.settings) if self.settings.periodic else None
        if self.settings.periodic and self.stress_note is None:
            stress = to_voigt(periodic_stress(mf, self.settings))
        energy = free = float(mf.e_tot) * HARTREE_EV
        if getattr(mf, "sigma", None) and getattr(mf, "e_free", None) is not None:
            # PySCF's smeared e_tot is the internal energy; its forces differentiate e_free
            self.internal_energy = energy
            free = float(mf.e_free) * HARTREE_EV
            energy = float(mf.e_zero) * HARTREE_EV
        self.results = {
            "energy": energy,
            "free_energy": free,
            "forces": -grad * FORCE_AU_EV_ANG,
        }
        if stress is not None:
            self.results["stress"] = stress
        self.wall_time = time.perf_counter() - start
