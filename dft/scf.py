"""Building PySCF mean-field objects and running the SCF recovery ladder.

The ladder tries its strategies in order until one converges to a *stable* solution: a
converged SCF is checked with the orbital-Hessian stability analysis (:mod:`dft.stability`)
and, when it is a saddle point, followed downhill and re-converged up to
``settings.stability_rounds`` times. A rung whose solution stays unstable counts as failed
and the next rung is tried. The first stable solution ends the ladder, so an ordinary
molecule costs one SCF and one analysis; the ladder does not search for a distant, lower
minimum. A closed-shell restricted solution is also checked towards the unrestricted
space, and ``settings.spin`` decides what an instability there means (see
:func:`run_ladder`).

Everything here works in atomic units except :attr:`Attempt.energy` (eV, as stored);
:mod:`dft.calculator` converts at the boundary.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import CalculationFailed, InputError, SCFError

from aloop.vocabulary import SpinPolicy, SpinTreatment, Stability
from dft import stability as stab
from dft.ecp import ecp_map
from dft.units import BOHR_ANG, HARTREE_EV

if TYPE_CHECKING:
    from ase import Atoms

    from dft.settings import LabelSettings


class SCFTimeout(CalculationFailed):
    """The calculation ran past its wall-clock limit and was stopped."""


@dataclass
class Attempt:
    """One rung of the recovery ladder as it was tried (plain data for the Label)."""

    strategy: str
    converged: bool
    cycles: int = 0
    energy_change: float | None = None
    seconds: float = 0.0
    error: str | None = None
    #: The attempt's last SCF energy in eV (the free energy when smeared), converged or
    #: not; None when PySCF produced none or a non-finite one.
    energy: float | None = None
    spin_treatment: SpinTreatment | None = None
    #: The verdict on this attempt's solution; None when it did not converge.
    stability: Stability | None = None
    #: How many times an internal instability was followed and the SCF re-converged.
    stability_rounds: int = 0
    #: Wall time of the stability analyses (``seconds`` is the SCF's).
    stability_seconds: float = 0.0

    def as_dict(self) -> dict:
        """Plain dict, as stored in the Label's ``scf_attempts`` (enums as strings)."""
        d = asdict(self)
        for key in ("spin_treatment", "stability"):
            if d[key] is not None:
                d[key] = str(d[key].value)
        return d


@dataclass
class SCFResult:
    """The solution a label is computed from, and what is known about it."""

    mf: Any
    attempts: list[Attempt]
    stability: Stability
    #: What the analysis found (lowest eigenvalues), or why there was none.
    stability_note: str
    spin_treatment: SpinTreatment


class SCFFailed(SCFError):
    """Every strategy of the ladder failed; ``attempts`` says how."""

    def __init__(self, message: str, attempts: list[Attempt]):
        super().__init__(message)
        self.attempts = attempts


def build_system(atoms: Atoms, settings: LabelSettings, charge: int, multiplicity: int) -> Any:
    """A ``pyscf.gto.Mole`` (or ``pyscf.pbc.gto.Cell`` for periodic settings) in Bohr."""
    spin = int(multiplicity) - 1
    atom = [
        (s, tuple(p / BOHR_ANG))
        for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
    ]
    try:
        if settings.periodic:
            from pyscf.pbc import gto as pbcgto

            cell = pbcgto.Cell()
            cell.atom = atom
            cell.a = atoms.cell.array / BOHR_ANG
            cell.unit = "Bohr"
            cell.basis = settings.pbc_basis
            cell.pseudo = settings.pbc_pseudo
            cell.charge = int(charge)
            cell.spin = spin
            if settings.ke_cutoff_hartree:
                cell.ke_cutoff = settings.ke_cutoff_hartree
            cell.verbose = 0
            cell.build()
            return cell
        from pyscf import gto

        ecp = ecp_map(settings.ecp_name, atoms.get_chemical_symbols())
        return gto.M(
            atom=atom,
            unit="Bohr",
            basis=settings.basis,
            ecp=ecp,
            charge=int(charge),
            spin=spin,
            verbose=0,
        )
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InputError(f"PySCF cannot build this system: {exc}") from None


def make_mean_field(system: Any, settings: LabelSettings, unrestricted: bool | None = None) -> Any:
    """The mean-field object for the settings: HF or KS, options set; restricted for a
    closed shell and unrestricted for an open one unless ``unrestricted`` says otherwise
    (a broken-symmetry singlet)."""
    open_shell = system.spin != 0 if unrestricted is None else unrestricted
    if settings.dispersion and importlib.util.find_spec("pyscf.dispersion") is None:
        raise InputError(
            f"dispersion {settings.dispersion!r} needs pyscf-dispersion "
            "(pip install pyscf-dispersion)"
        )
    if settings.periodic:
        mf = _periodic_mean_field(system, settings, open_shell)
    else:
        from pyscf import dft, scf

        if settings.method == "HF":
            mf = scf.UHF(system) if open_shell else scf.RHF(system)
        else:
            mf = dft.UKS(system) if open_shell else dft.RKS(system)
            mf.xc = settings.xc
            mf.grids.level = settings.grid_level
        if settings.density_fit:
            mf = mf.density_fit(auxbasis=settings.auxbasis)
    if settings.dispersion:
        mf.disp = settings.dispersion
    mf.conv_tol = settings.conv_tol
    mf.max_cycle = settings.max_cycle
    mf.verbose = 0
    return mf


def _periodic_mean_field(cell: Any, settings: LabelSettings, open_shell: bool) -> Any:
    """Gamma-point mean field whose analytic gradients this PySCF supports.

    KS with multigrid: ``pbc.dft.RKS/UKS`` on ``MultiGridNumInt2`` (the only Gamma-point
    KS gradients in PySCF 2.14). Otherwise (HF, or multigrid off): the k-point code at
    the single k-point 0, whose FFTDF gradients exist for RHF/UHF/RKS/UKS.
    """
    from pyscf.pbc import dft as pbcdft
    from pyscf.pbc import scf as pbcscf

    gamma = np.zeros((1, 3))
    if settings.method == "DFT" and settings.multigrid:
        from pyscf.pbc.dft import multigrid

        mf = pbcdft.UKS(cell, xc=settings.xc) if open_shell else pbcdft.RKS(cell, xc=settings.xc)
        mf._numint = multigrid.MultiGridNumInt2(cell)
    elif settings.method == "DFT":
        mf = (pbcdft.KUKS if open_shell else pbcdft.KRKS)(cell, kpts=gamma)
        mf.xc = settings.xc
    else:
        mf = (pbcscf.KUHF if open_shell else pbcscf.KRHF)(cell, kpts=gamma)
    if settings.smearing_hartree > 0:
        mf = pbcscf.addons.smearing_(mf, sigma=settings.smearing_hartree, method="fermi")
    return mf


def _apply_strategy(mf: Any, strategy: str, settings: LabelSettings) -> Any:
    """Configure ``mf`` for one rung of the ladder.

    Smearing is no rung: a smeared SCF is another surface (its forces are free-energy
    derivatives), so it is a setting of every label (``dft.periodic.smearing_hartree``).
    """
    if strategy == "diis":
        return mf
    if strategy == "damping_levelshift":
        mf.damp = settings.damping
        mf.level_shift = settings.level_shift_hartree
        mf.diis_start_cycle = 3
        mf.max_cycle = max(settings.max_cycle, 200)
        return mf
    if strategy == "newton":
        return mf.newton()
    if strategy == "initial_guess":
        mf.init_guess = "atom"
        mf.level_shift = settings.level_shift_hartree
        return mf
    raise ValueError(f"unknown SCF strategy {strategy!r}")


#: The rungs that re-solve a broken-symmetry singlet unrestricted, from the orbitals the
#: RHF->UHF analysis returns: plain DIIS first, second-order SCF when DIIS fails.
BROKEN_SYMMETRY_RUNGS = ("diis", "newton")


@dataclass
class Found:
    """The stability verdict reached on one attempt's solution."""

    stability: Stability
    note: str
    external: stab.Check | None = None


def run_ladder(system: Any, settings: LabelSettings, deadline: float | None = None) -> SCFResult:
    """Run the recovery ladder until one strategy converges to a stable solution.

    Each strategy starts from a fresh mean-field object, so a failed rung leaves nothing
    behind. ``deadline`` (``time.monotonic()`` seconds) is checked every SCF cycle and
    every Hessian product of the analysis.

    A closed-shell restricted solution unstable towards an unrestricted one is kept and
    flagged ``EXTERNAL_UNSTABLE`` under ``SpinPolicy.RESTRICTED``; under
    ``SpinPolicy.BROKEN_SYMMETRY`` it is re-solved unrestricted from the unstable
    orbitals, and that solution (checked internally stable) is the label's.

    Raises
    ------
    SCFFailed
        No strategy gave a converged solution that is not internally unstable (or the
        broken-symmetry re-solve failed).
    SCFTimeout
        The deadline passed; the attempts so far are on the exception.
    """
    attempts: list[Attempt] = []
    try:
        for strategy in settings.recovery:
            mf = _apply_strategy(make_mean_field(system, settings), strategy, settings)
            attempt = Attempt(strategy=strategy, converged=False, spin_treatment=_treatment(mf))
            attempts.append(attempt)
            _run_attempt(mf, attempt, deadline)
            if not attempt.converged:
                continue
            found = settle(mf, attempt, settings, deadline)
            if found.stability is Stability.INTERNAL_UNSTABLE:
                continue
            if found.external is None or found.external.stable:
                return SCFResult(mf, attempts, found.stability, found.note, _treatment(mf))
            if settings.spin is SpinPolicy.BROKEN_SYMMETRY:
                return _broken_symmetry(system, settings, mf, found, attempts, deadline)
            note = (
                f"{found.note}; kept restricted (dft.spin: {SpinPolicy.RESTRICTED}): an "
                "unrestricted broken-symmetry solution lies lower"
            )
            return SCFResult(mf, attempts, Stability.EXTERNAL_UNSTABLE, note, _treatment(mf))
    except _DeadlinePassed:
        exc = SCFTimeout("wall-clock limit reached during SCF")
        exc.attempts = attempts  # type: ignore[attr-defined]
        raise exc from None
    raise SCFFailed(_failure_message(attempts), attempts)


def _failure_message(attempts: list[Attempt]) -> str:
    tried = ", ".join(a.strategy for a in attempts) or "none applicable"
    unstable = [a.strategy for a in attempts if a.stability is Stability.INTERNAL_UNSTABLE]
    if not unstable:
        return f"SCF did not converge with any strategy ({tried})"
    return (
        f"SCF gave no stable solution with any strategy ({tried}): converged but "
        f"internally unstable with {', '.join(unstable)}"
    )


def _broken_symmetry(
    system: Any,
    settings: LabelSettings,
    restricted: Any,
    found: Found,
    attempts: list[Attempt],
    deadline: float | None,
) -> SCFResult:
    """Re-solve unrestricted from the orbitals of the RHF->UHF instability."""
    ext = found.external
    e_restricted = _energy_ha(restricted)
    for rung in BROKEN_SYMMETRY_RUNGS:
        umf = make_mean_field(system, settings, unrestricted=True)
        if rung == "newton":
            umf = umf.newton()
        attempt = Attempt(
            strategy=f"{SpinPolicy.BROKEN_SYMMETRY}/{rung}",
            converged=False,
            spin_treatment=SpinTreatment.UNRESTRICTED,
        )
        attempts.append(attempt)
        _run_attempt(umf, attempt, deadline, dm0=umf.make_rdm1(ext.mo, ext.occ))
        if not attempt.converged:
            continue
        ufound = settle(umf, attempt, settings, deadline)
        if ufound.stability is Stability.INTERNAL_UNSTABLE:
            continue
        below = (e_restricted - _energy_ha(umf)) * HARTREE_EV
        note = (
            f"restricted solution: {found.note}; re-solved unrestricted (dft.spin: "
            f"{SpinPolicy.BROKEN_SYMMETRY}), {below:.4f} eV below it; {ufound.note}"
        )
        return SCFResult(umf, attempts, ufound.stability, note, SpinTreatment.UNRESTRICTED)
    raise SCFFailed(
        "the restricted solution is unstable towards an unrestricted one, and no "
        f"broken-symmetry unrestricted SCF (dft.spin: {SpinPolicy.BROKEN_SYMMETRY}) "
        "converged to a stable solution",
        attempts,
    )


def settle(mf: Any, attempt: Attempt, settings: LabelSettings, deadline: float | None) -> Found:
    """Analyse a converged solution; follow internal instabilities downhill.

    Sets ``attempt.stability`` (and, when the solution stays unstable or a re-converging
    SCF fails, ``attempt.error``). The RHF->UHF check runs on closed-shell restricted
    solutions once they are internally stable.
    """
    reason = stab.unavailable(mf)
    if reason is not None:
        attempt.stability = Stability.NOT_ANALYSED
        return Found(Stability.NOT_ANALYSED, reason)

    def guard() -> None:
        if deadline is not None and time.monotonic() > deadline:
            attempt.error = "timeout"
            raise _DeadlinePassed

    space = "UHF/UKS" if stab.is_unrestricted(mf) else "RHF/RKS"
    while True:
        started = time.perf_counter()
        fock = stab.fock(mf)
        check = stab.internal(mf, fock, guard)
        _add_seconds(attempt, started)
        if check.stable:
            break
        if attempt.stability_rounds >= settings.stability_rounds:
            attempt.stability = Stability.INTERNAL_UNSTABLE
            attempt.error = (
                f"internally unstable after {attempt.stability_rounds} rounds of following "
                f"the instability (lowest {space} orbital-Hessian eigenvalue "
                f"{check.lowest:.2e} Ha)"
            )
            return Found(Stability.INTERNAL_UNSTABLE, attempt.error)
        attempt.stability_rounds += 1
        _run_attempt(mf, attempt, deadline, dm0=mf.make_rdm1(check.mo, check.occ))
        if not attempt.converged:
            attempt.error = (
                f"did not re-converge after following an internal instability "
                f"(round {attempt.stability_rounds})"
            )
            # an unconverged density is no solution: the rung failed
            attempt.stability = Stability.INTERNAL_UNSTABLE
            return Found(Stability.INTERNAL_UNSTABLE, attempt.error)
    note = f"lowest {space} orbital-Hessian eigenvalue {check.lowest:.3g} Ha"
    if attempt.stability_rounds:
        note += f" after following {attempt.stability_rounds} internal instabilities"
    external = None
    if not stab.is_unrestricted(mf):
        started = time.perf_counter()
        external = stab.external(mf, fock, guard)
        _add_seconds(attempt, started)
        note += f"; RHF->UHF: {external.lowest:.3g} Ha"
    attempt.stability = (
        Stability.STABLE if external is None or external.stable else Stability.EXTERNAL_UNSTABLE
    )
    return Found(Stability.STABLE, note, external)


def _add_seconds(attempt: Attempt, started: float) -> None:
    attempt.stability_seconds = round(attempt.stability_seconds + time.perf_counter() - started, 4)


def _treatment(mf: Any) -> SpinTreatment:
    return SpinTreatment.UNRESTRICTED if stab.is_unrestricted(mf) else SpinTreatment.RESTRICTED


def _energy_ha(mf: Any) -> float:
    """The energy the label stores (Ha): the free energy of a smeared SCF, else e_tot."""
    free = getattr(mf, "e_free", None)
    if getattr(mf, "sigma", None) and free is not None:
        return float(free)
    return float(mf.e_tot)


def _run_attempt(mf: Any, attempt: Attempt, deadline: float | None, dm0: Any = None) -> None:
    """Run one SCF on ``mf`` (from ``dm0`` when given) and record how it went on
    ``attempt``; cycles and seconds add up over a rung's re-convergences.

    A numerical breakdown is recorded as the attempt's error; at the deadline the
    attempt's error is ``timeout`` and :class:`_DeadlinePassed` propagates.
    """
    progress = {"cycles": 0, "de": None}

    def callback(envs: dict) -> None:
        progress["cycles"] += 1
        e, last = envs.get("e_tot"), envs.get("last_hf_e")
        if e is not None and last is not None:
            progress["de"] = float(e - last)
        if deadline is not None and time.monotonic() > deadline:
            raise _DeadlinePassed

    mf.callback = callback
    attempt.converged = False
    attempt.error = None
    start = time.perf_counter()
    try:
        energy = mf.kernel() if dm0 is None else mf.kernel(dm0=dm0)
    except _DeadlinePassed:
        attempt.error = "timeout"
        _finish(attempt, progress, start, mf)
        raise
    except (np.linalg.LinAlgError, ArithmeticError, RuntimeError, ValueError) as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"[:500]
        _finish(attempt, progress, start, mf)
        return
    _finish(attempt, progress, start, mf)
    attempt.converged = bool(mf.converged) and math.isfinite(float(energy))
    if not attempt.converged and attempt.error is None:
        attempt.error = "not converged" if math.isfinite(float(energy)) else "energy is NaN"


class _DeadlinePassed(Exception):
    """Raised from the SCF callback to stop a calculation at its wall-clock limit."""


def _finish(attempt: Attempt, progress: dict, start: float, mf: Any) -> None:
    attempt.cycles += progress["cycles"]
    attempt.energy_change = progress["de"]
    attempt.seconds = round(attempt.seconds + time.perf_counter() - start, 4)
    try:
        energy = _energy_ha(mf)
    except (TypeError, ValueError):
        energy = math.nan
    attempt.energy = energy * HARTREE_EV if math.isfinite(energy) else None


def gradient(mf: Any, settings: LabelSettings) -> np.ndarray:
    """Analytic nuclear gradient (Hartree/Bohr), shape (natoms, 3)."""
    # Importing the gradient packages is what attaches .Gradients() to the SCF classes.
    if settings.periodic:
        import pyscf.pbc.grad
    else:
        import pyscf.grad  # noqa: F401
    try:
        g = mf.Gradients().kernel()
    except NotImplementedError as exc:
        raise CalculationFailed(
            f"PySCF has no analytic gradient for {settings.description} here: {exc}"
        ) from None
    return np.asarray(g, dtype=np.float64).reshape(-1, 3)


def spin_contamination(mf: Any) -> float | None:
    """<S^2> of an unrestricted solution, None for restricted ones."""
    if not hasattr(mf, "spin_square"):
        return None
    mo = mf.mo_coeff
    if isinstance(mo, (list, tuple)) or getattr(mo, "ndim", 2) != 3:
        # k-point unrestricted objects hold one set per k-point; <S^2> is defined at Gamma
        return None
    try:
        return float(mf.spin_square()[0])
    except (TypeError, ValueError, NotImplementedError):
        return None
