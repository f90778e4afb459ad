"""CP2K as a labelling engine: Quickstep GPW at the Γ point through ASE's ``CP2K``.

One ``cp2k_shell`` process per labelling worker and per (settings, charge,
multiplicity) is kept alive across labels (:func:`shared_calculator`): starting CP2K and
parsing its basis and potential files costs seconds that a 9-atom cell's SCF does not
need twice. The SCF is the orbital-transformation (OT) minimiser with an outer loop; a
run that ends without convergence is an ``SCFError`` (CP2K 2023 only warns and goes on
with the unconverged energy and forces, so its output is read for the verdict). Energy,
forces and stress come from one converged SCF: ASE's ``EVAL_EF`` and its stress read
back from the same force environment, in eV, eV/Å and eV/Å³ with ASE's sign convention.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ase.calculators.calculator import (
    CalculationFailed,
    Calculator,
    InputError,
    SCFError,
    all_changes,
)

from aloop.vocabulary import SpinTreatment, Stability
from dft.scf import Attempt, SCFTimeout

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dft.settings import LabelSettings

#: Where Debian's cp2k package keeps its basis and potential files (CP2K's own default
#: data directory on that build); ``CP2K_DATA_DIR`` overrides it, as it does for CP2K.
DEBIAN_DATA_DIR = "/usr/share/cp2k"
#: How each inner OT run ends: converged, or out of steps (the outer loop then starts
#: another, or gives up with a warning). CP2K flushes these lines as it goes but may hold
#: back its closing summary, so the verdict is the last of them: a label is converged
#: only when its last inner run says so.
_INNER_END = re.compile(
    r"\*\*\* SCF run converged in\s+(\d+) steps|Leaving inner SCF loop after reaching\s+(\d+)"
    r"|SCF run NOT converged"
)
#: Why a CP2K label has no stability verdict (the record says so, it claims nothing).
NO_STABILITY = "not analysed: CP2K's OT SCF has no orbital-Hessian stability analysis here"
#: Rydberg in eV: ASE's CP2K takes the cutoff in eV.
RYDBERG_EV = 13.605693122994


class CP2KNotFound(InputError):
    """The cp2k_shell executable, or a basis or potential file, is not on this machine."""


def data_dir() -> Path:
    """The folder CP2K reads basis and potential files named without a path from."""
    return Path(os.environ.get("CP2K_DATA_DIR", DEBIAN_DATA_DIR))


def data_file(name: str) -> Path:
    """The basis or potential file ``name`` (a path, or a name in :func:`data_dir`).

    Raises
    ------
    CP2KNotFound
        No such file.
    """
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = data_dir() / name
    if not path.is_file():
        raise CP2KNotFound(f"CP2K data file {name!r} not found (looked in {data_dir()})")
    return path


@cache
def file_sha256(path: str) -> str:
    """sha256 of a data file (cached: a settings hash is taken per label)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def executable(command: str) -> str:
    """The full path of ``command`` (cp2k_shell), or :class:`CP2KNotFound`."""
    found = shutil.which(command)
    if found is None:
        raise CP2KNotFound(
            f"{command!r} not found: install CP2K (Debian: apt-get install cp2k) or set "
            "dft.cp2k.command"
        )
    return found


@cache
def cp2k_version(command: str) -> str:
    """The CP2K release ``command`` runs, e.g. ``2023.1`` (part of every settings hash)."""
    shell = Path(os.path.realpath(executable(command)))
    binary = shell.with_name(shell.name.replace("cp2k_shell", "cp2k"))  # not vocabulary
    try:
        out = subprocess.run(
            [str(binary if binary.exists() else shell), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except subprocess.TimeoutExpired:
        out = ""
    match = re.search(r"CP2K version (\S+)", out)
    if match is None:
        raise CP2KNotFound(f"could not read the CP2K version from {binary} --version")
    return match.group(1)


def scf_input(settings: LabelSettings) -> str:
    """The SCF and grid sections ASE's generated input is merged with."""
    return f"""&FORCE_EVAL
  &DFT
    &MGRID
      REL_CUTOFF {settings.rel_cutoff_ry:g}
    &END MGRID
    &SCF
      EPS_SCF {settings.eps_scf:.3e}
      MAX_SCF {settings.cp2k_max_scf}
      &OT
        MINIMIZER DIIS
        PRECONDITIONER FULL_SINGLE_INVERSE
      &END OT
      &OUTER_SCF
        EPS_SCF {settings.eps_scf:.3e}
        MAX_SCF {settings.cp2k_outer_max_scf}
      &END OUTER_SCF
    &END SCF
  &END DFT
&END FORCE_EVAL
"""


def basis_files(settings: LabelSettings, symbols: Iterable[str]) -> list[str]:
    """The basis files CP2K searches for these elements, in its search order: the
    section's file first, then each kind's own (CP2K takes an element's basis from the
    first file that names it, so :mod:`dft.names` refuses a name an earlier file shadows).
    """
    names = [settings.cp2k_basis_file]
    names += sorted({settings.cp2k_kind(sym)[2] for sym in set(symbols)} - set(names))
    return names


def label_input(settings: LabelSettings, symbols: Iterable[str]) -> str:
    """The whole FORCE_EVAL input for a cell of these element ``symbols``: the basis
    files (:func:`basis_files`), each element's basis, potential and potential file
    (:meth:`LabelSettings.cp2k_kind`) and the SCF and grid sections of :func:`scf_input`.

    Written here rather than by ASE, which names one basis and one potential for every
    element and reads one file of each.
    """
    kinds = {sym: settings.cp2k_kind(sym) for sym in sorted(set(symbols))}
    files = "".join(
        f"    BASIS_SET_FILE_NAME {data_file(name)}\n" for name in basis_files(settings, kinds)
    )
    subsys = "".join(
        f"    &KIND {sym}\n      BASIS_SET {basis}\n      POTENTIAL {potential}\n"
        f"      POTENTIAL_FILE_NAME {data_file(potential_file)}\n    &END KIND\n"
        for sym, (basis, potential, _, potential_file) in kinds.items()
    )
    body = scf_input(settings).removesuffix("&END FORCE_EVAL\n")
    body = body.replace("  &DFT\n", "  &DFT\n" + files, 1)
    return f"{body}  &SUBSYS\n{subsys}  &END SUBSYS\n&END FORCE_EVAL\n"


class CP2KCalculator(Calculator):
    """A CP2K single point with the PySCF labeller's record attributes.

    ``scf_attempts`` holds the one OT run (strategy ``ot``, steps, converged, seconds);
    ``stability`` is ``not_analysed``; ``internal_energy`` is None (no smearing:
    energy and free energy are one). Failures raise ASE's errors: ``SCFError`` (not
    converged), ``CalculationFailed`` (CP2K died, or the time limit), ``InputError``
    (CP2K or its files missing).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]
    discard_results_on_any_change = True

    def __init__(
        self, settings: LabelSettings, charge: int = 0, multiplicity: int = 1, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.charge = charge
        self.multiplicity = multiplicity
        self.scf_attempts: list[dict] = []
        self.s2: float | None = None
        self.stress_note: str | None = None
        self.stability: Stability | None = None
        self.stability_note: str | None = None
        self.spin_treatment: SpinTreatment | None = None
        self.internal_energy: float | None = None
        self._workdir = tempfile.mkdtemp(prefix="aloop-cp2k-")
        self._cp2k: Any = None
        atexit.register(self.close)

    def _shell(self) -> Any:
        """ASE's CP2K calculator, started on first use and kept (one cp2k_shell)."""
        child = getattr(getattr(self._cp2k, "_shell", None), "_child", None)
        if child is not None and child.poll() is not None:
            self._discard()  # it exited (killed at a time limit, or crashed)
        if self._cp2k is None:
            from ase.calculators.cp2k import CP2K

            s = self.settings
            self._cp2k = CP2K(
                command=executable(s.cp2k_command),
                directory=self._workdir,
                # the files and each element's names are in label_input, set per label
                basis_set=None,
                basis_set_file=None,
                pseudo_potential=None,
                potential_file=None,
                xc=s.xc.upper(),
                cutoff=s.cutoff_ry * RYDBERG_EV,
                charge=self.charge,
                multiplicity=self.multiplicity,
                uks=self.multiplicity != 1,
                stress_tensor=True,
                max_scf=None,
                inp=label_input(s, ()),
                print_level="LOW",
                poisson_solver="auto",
            )
        return self._cp2k

    def close(self) -> None:
        """Stop the cp2k_shell process and remove its folder."""
        if self._cp2k is not None:
            with contextlib.suppress(Exception):  # a dead shell has nothing to close
                self._cp2k.close()
            self._cp2k = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _discard(self) -> None:
        """Kill the shell without a goodbye (it may be dead, or mid-reply)."""
        shell = getattr(self._cp2k, "_shell", None)
        child = getattr(shell, "_child", None)
        if child is not None:
            child.kill()
            child.wait()
            shell.close = lambda: None  # its __del__ would say EXIT to the dead process
        if self._cp2k is not None:
            self._cp2k._shell = None  # ASE's close would talk to the dead process
        self._cp2k = None

    def _output(self) -> Path:
        return Path(self._workdir) / "cp2k.out"

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if not self.atoms.pbc.all():
            raise InputError("the CP2K engine labels periodic cells (pbc on all three axes)")
        self.scf_attempts = []
        self.stability = self.stability_note = self.spin_treatment = None
        cp2k = self._shell()
        if cp2k._force_env_id is not None:
            # A new force environment per label: CP2K sizes its grids from the cell a
            # force environment starts with and keeps them through SET_CELL, so a label
            # computed after another cell would have another effective cutoff under the
            # same hash. Rebuilt from the input, each label is what a fresh CP2K run
            # gives (atomic guess); the process start is what the shell saves.
            cp2k._release_force_env()
        # set directly, not through set(), which would reset the calculator's shell
        cp2k.parameters.inp = label_input(self.settings, self.atoms.get_chemical_symbols())
        out = self._output()
        offset = out.stat().st_size if out.exists() else 0
        start = time.perf_counter()
        timer = threading.Timer(self.settings.timeout_s, self._kill)
        self.timed_out = False
        timer.start()
        try:
            work = self.atoms.copy()
            work.calc = cp2k
            energy = work.get_potential_energy()
            forces = work.get_forces()
            stress = work.get_stress()
        except Exception as exc:
            self._discard()  # the shell is gone or out of step: the next label starts one
            if self.timed_out:
                raise SCFTimeout(f"timeout after {self.settings.timeout_s:g} s") from exc
            raise CalculationFailed(f"CP2K failed: {type(exc).__name__}: {exc}") from exc
        finally:
            timer.cancel()
        if self.timed_out:  # the limit struck as the results came back
            self._discard()
            raise SCFTimeout(f"timeout after {self.settings.timeout_s:g} s")
        seconds = round(time.perf_counter() - start, 3)
        text = out.read_text(errors="replace")[offset:] if out.exists() else ""
        ends = list(_INNER_END.finditer(text))
        ok = bool(ends) and ends[-1].group(1) is not None
        steps = sum(int(m.group(1) or m.group(2) or 0) for m in ends) or None
        self.stability = Stability.NOT_ANALYSED
        self.stability_note = NO_STABILITY
        self.spin_treatment = (
            SpinTreatment.UNRESTRICTED if self.multiplicity != 1 else SpinTreatment.RESTRICTED
        )
        # the label record's attempt type, as the PySCF ladder stores it
        self.scf_attempts = [
            Attempt(
                strategy="ot",
                converged=ok,
                cycles=steps or 0,
                seconds=seconds,
                energy=float(energy) if ok else None,
                spin_treatment=self.spin_treatment,
                stability=self.stability if ok else None,
            ).as_dict()
        ]
        if not ok:
            raise SCFError(
                f"CP2K SCF not converged to eps_scf {self.settings.eps_scf:g} within "
                f"{self.settings.cp2k_outer_max_scf} outer x {self.settings.cp2k_max_scf} "
                "OT steps"
            )
        self.results = {
            "energy": float(energy),
            "free_energy": float(energy),
            "forces": forces,
            "stress": stress,
        }

    def _kill(self) -> None:
        """The time limit: kill cp2k_shell, which ends the blocked read in ASE."""
        self.timed_out = True
        child = getattr(getattr(self._cp2k, "_shell", None), "_child", None)
        if child is not None:
            child.kill()


#: This worker process's calculator, with its (settings, charge, multiplicity): the whole
#: settings, since the step limits that are not in the hash are in the shell's input.
_SHARED: dict[tuple[LabelSettings, int, int], CP2KCalculator] = {}


def shared_calculator(settings: LabelSettings, charge: int, multiplicity: int) -> CP2KCalculator:
    """This process's CP2K calculator for these settings (its cp2k_shell stays up).

    One per process: a request with other settings, charge or multiplicity (the
    isolated atoms' spin states) closes the previous shell, so idle ones hold no memory.
    """
    key = (settings, charge, multiplicity)
    calc = _SHARED.get(key)
    if calc is None:
        for old in _SHARED.values():
            old.close()
        _SHARED.clear()
        calc = _SHARED[key] = CP2KCalculator(settings, charge, multiplicity)
    return calc
