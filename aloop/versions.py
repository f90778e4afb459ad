"""Versions of the codes that shape a result, recorded as provenance."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

#: Distribution names whose versions every provenance record carries.
TRACKED = ("aloop", "ase", "mace-torch", "torch", "pyscf", "numpy")  # not vocabulary


@cache
def code_versions() -> dict[str, str]:
    """Installed versions of :data:`TRACKED` ("absent" when a package is not installed).

    Read from package metadata, so nothing heavy (torch, pyscf) is imported.
    """
    out = {}
    for name in TRACKED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out
