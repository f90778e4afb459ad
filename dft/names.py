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
