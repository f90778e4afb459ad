"""Which elements of a molecule get an effective core potential, and which one."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable

from ase.calculators.calculator import InputError


def ecp_map(name: str | None, elements: Iterable[str]) -> dict[str, str]:
    """``{element: name}`` for each of ``elements`` that the ECP set ``name`` defines.

    A set defines ECPs for some elements only (def2: Rb onwards); the others run
    all-electron, as the set intends. None gives no ECP at all.

    Raises
    ------
    InputError
        PySCF does not know ``name``.
    """
    if name is None:
        return {}
    from pyscf.gto import basis

    found = {}
    for element in sorted(set(elements)):
        try:
            # PySCF prints and warns while it looks a name up (basis-set-exchange advice)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                data = basis.load_ecp(name, element)
        except Exception as exc:  # RuntimeError or KeyError for a name it cannot parse
            raise InputError(
                f"PySCF has no ECP set {name!r}: {' '.join(str(exc).split())}"
            ) from None
        if data:
            found[element] = name
    return found
