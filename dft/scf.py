"""Building PySCF mean-field objects and running the SCF recovery ladder.

Everything here works in atomic units; :mod:`dft.calculator` converts at the boundary.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import CalculationFailed, InputError, SCFError

from dft.ecp import ecp_map
from dft.units import BOHR_ANG

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

    def as_dict(self) -> dict:
        """Plain dict, as stored in the Label's ``scf_attempts``."""
        return asdict(self)


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


def make_mean_field(system: Any, settings: LabelSettings) -> Any:
    """The mean-field object for the settings: R/U from the spin, HF or KS, options set."""
    open_shell = system.spin != 0
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


def _apply_strategy(mf: Any, strategy: str, settings: LabelSettings) -> Any | None:
    """Configure ``mf`` for one rung; None when the rung does not apply to this system."""
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
    if strategy == "smearing":
        if not settings.periodic:
            return None
        from pyscf.pbc import scf as pbcscf

        sigma = settings.smearing_hartree or 0.01
        return pbcscf.addons.smearing_(mf, sigma=sigma, method="fermi")
    raise ValueError(f"unknown SCF strategy {strategy!r}")


def run_ladder(
    system: Any, settings: LabelSettings, deadline: float | None = None
) -> tuple[Any, list[Attempt]]:
    """Run the recovery ladder until one strategy converges.

    Each strategy starts from a fresh mean-field object, so a failed rung leaves nothing
    behind. ``deadline`` (``time.monotonic()`` seconds) is checked every SCF cycle.

    Returns
    -------
    (mf, attempts)
        The converged mean-field object and every attempt made, in order.

    Raises
    ------
    SCFFailed
        No strategy converged.
    SCFTimeout
        The deadline passed; the attempts so far are on the exception.
    """
    attempts: list[Attempt] = []
    for strategy in settings.recovery:
        mf = _apply_strategy(make_mean_field(system, settings), strategy, settings)
        if mf is None:
            continue
        attempt = Attempt(strategy=strategy, converged=False)
        attempts.append(attempt)
        try:
            _run_attempt(mf, attempt, deadline)
        except _DeadlinePassed:
            exc = SCFTimeout("wall-clock limit reached during SCF")
            exc.attempts = attempts  # type: ignore[attr-defined]
            raise exc from None
        if attempt.converged:
            return mf, attempts
    tried = ", ".join(a.strategy for a in attempts) or "none applicable"
    raise SCFFailed(f"SCF did not converge with any strategy ({tried})", attempts)


def _run_attempt(mf: Any, attempt: Attempt, deadline: float | None) -> None:
    """Run one rung's SCF and record how it went on ``attempt``.

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
    start = time.perf_counter()
    try:
        energy = mf.kernel()
    except _DeadlinePassed:
        attempt.error = "timeout"
        _finish(attempt, progress, start)
        raise
    except (np.linalg.LinAlgError, ArithmeticError, RuntimeError, ValueError) as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"[:500]
        _finish(attempt, progress, start)
        return
    _finish(attempt, progress, start)
    attempt.converged = bool(mf.converged) and math.isfinite(float(energy))
    if not attempt.converged and attempt.error is None:
        attempt.error = "not converged" if math.isfinite(float(energy)) else "energy is NaN"


class _DeadlinePassed(Exception):
    """Raised from the SCF callback to stop a calculation at its wall-clock limit."""


def _finish(attempt: Attempt, progress: dict, start: float) -> None:
    attempt.cycles = progress["cycles"]
    attempt.energy_change = progress["de"]
    attempt.seconds = round(time.perf_counter() - start, 4)


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
