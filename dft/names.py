"""Whether PySCF knows a campaign's basis sets, pseudopotentials and functional, asked at
validate time without building a molecule or running an SCF.

:func:`dft_name_problems` is a :data:`aloop.config.ConfigCheck`: pass it to
:func:`aloop.config.load_config` (``checks=[dft_name_problems]``), as ``aloop validate``
and ``aloop run`` do, so a typo in ``dft.basis`` is refused before any work starts
instead of failing every label.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ase.calculators.calculator import InputError

from aloop.structures import load_system_structures
from aloop.vocabulary import Engine
from dft.ecp import ecp_map
from dft.settings import LabelSettings

if TYPE_CHECKING:
    from aloop.config import CampaignConfig


def dft_name_problems(cfg: CampaignConfig, base_dir: Path) -> list[str]:
    """One line per name PySCF does not know, each starting with its key path.

    The functional is parsed by PySCF's libxc interface (when ``dft.method`` is DFT);
    basis sets (and the auxiliary basis with density fitting) are loaded for every
    element of the molecular systems, and the GTH basis and pseudopotential for every
    element of the periodic ones, which is how labelling will use them.
    """
    molecular, periodic = _elements(cfg, base_dir)
    dft = cfg.dft
    if dft.engine == Engine.CP2K:
        return cp2k_name_problems(cfg, molecular, periodic)
    problems = []
    if dft.method == "DFT" and (why := _xc_problem(dft.xc)):
        problems.append(f"dft.xc: PySCF does not know the functional {dft.xc!r} ({why})")
    named = [("dft.basis", dft.basis, molecular, _load_basis)]
    if dft.density_fit and dft.auxbasis:
        named.append(("dft.auxbasis", dft.auxbasis, molecular, _load_basis))
    named += [
        ("dft.periodic.basis", dft.periodic.basis, periodic, _load_basis),
        ("dft.periodic.pseudo", dft.periodic.pseudo, periodic, _load_pseudo),
    ]
    for key, name, elements, load in named:
        missing = _missing(name, elements, load)
        if missing:
            problems.append(f"{key}: {missing}")
    if molecular and (ecp := LabelSettings.from_config(dft).ecp_name):
        try:
            ecp_map(ecp, molecular)
        except InputError as exc:
            problems.append(f"dft.ecp: {exc}")
    return problems


def cp2k_name_problems(cfg: CampaignConfig, molecular: list[str], periodic: list[str]) -> list[str]:
    """The CP2K engine's checks: every system periodic, cp2k_shell on this machine, the
    basis and potential files present and naming an entry for every element."""
    from dft.cp2k import CP2KNotFound, basis_files, data_file, executable
    from dft.settings import LabelSettings

    dft = cfg.dft
    problems = []
    if molecular:
        problems.append(
            "dft.engine: cp2k labels periodic cells; these elements come from a "
            f"non-periodic system: {', '.join(molecular)}"
        )
    try:
        executable(dft.cp2k.command)
    except CP2KNotFound as exc:
        problems.append(f"dft.cp2k.command: {exc}")
    settings = LabelSettings.from_config(dft, periodic=True)
    searched = basis_files(settings, periodic)
    missing: dict[tuple[str, str, str], list[str]] = {}  # (key, name, file): elements
    for element in periodic:
        basis, potential, basis_file, potential_file = settings.cp2k_kind(element)
        at = f"dft.cp2k.kinds.{element}" if element in dft.cp2k.kinds else "dft.cp2k"
        missing.setdefault((f"{at}.basis", basis, basis_file), []).append(element)
        missing.setdefault((f"{at}.potential", potential, potential_file), []).append(element)
        # CP2K reads an element's basis from the first file that names it
        for earlier in searched[: searched.index(basis_file)]:
            with contextlib.suppress(CP2KNotFound):
                if _cp2k_entry(data_file(earlier), element, basis):
                    problems.append(
                        f"{at}.basis: {earlier} also names {basis!r} for {element} and "
                        f"CP2K reads it first; name a basis only {basis_file} has"
                    )
    for (key, name, file_name), elements in missing.items():
        try:
            path = data_file(file_name)
        except CP2KNotFound as exc:
            problems.append(f"{key}_file: {exc}")
            continue
        absent = [e for e in elements if not _cp2k_entry(path, e, name)]
        if absent:
            problems.append(f"{key}: {file_name} has no {name!r} for {', '.join(absent)}")
    return problems


def _cp2k_entry(path: Path, element: str, name: str) -> bool:
    """Whether the CP2K data file names ``name`` for ``element`` (an entry line is the
    element followed by its names and aliases)."""
    for line in path.read_text(errors="replace").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].lower() == element.lower() and name in words[1:]:
            return True
    return False


def _elements(cfg: CampaignConfig, base_dir: Path) -> tuple[list[str], list[str]]:
    """Sorted element symbols of the molecular systems and of the periodic ones."""
    molecular: set[str] = set()
    periodic: set[str] = set()
    for system in cfg.systems:
        frames = load_system_structures(system, base_dir)
        target = periodic if frames[0].pbc.any() else molecular
        for atoms in frames:
            target.update(atoms.get_chemical_symbols())
    return sorted(molecular), sorted(periodic)


def _missing(name: str, elements: list[str], load: Callable[[str, str], object]) -> str | None:
    """What PySCF says about ``name`` for the first element it cannot load, or None."""
    for element in elements:
        try:
            with _quiet():
                found = load(name, element)
        except Exception as exc:  # PySCF raises several types for an unknown name
            return f"PySCF has no {name!r} for {element}: {' '.join(str(exc).split())}"
        if not found:
            return f"PySCF has no {name!r} for {element}"
    return None


def _load_basis(name: str, element: str) -> object:
    from pyscf.gto import basis

    return basis.load(name, element)


def _load_pseudo(name: str, element: str) -> object:
    from pyscf.pbc.gto import pseudo

    return pseudo.load(name, element)


def _xc_problem(xc: str) -> str | None:
    from pyscf.dft import libxc

    try:
        with _quiet():
            libxc.parse_xc(xc)
    except Exception as exc:  # KeyError for an unknown name, ValueError for bad syntax
        return " ".join(str(exc).strip("\"'").split())
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """PySCF prints and warns while it looks a name up (it suggests installing
    basis-set-exchange); none of that is the user's answer."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
