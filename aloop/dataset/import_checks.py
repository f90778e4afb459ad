"""What an import must satisfy before anything is stored: each check names the frame.

- every label is finite (a NaN energy trains a NaN potential and breaks the export);
- a frame has an energy and forces, or neither (half a label is not "unlabelled");
- keys that find nothing on any frame are a mistake when they were asked for, or when
  the file carries labels under other keys;
- a frame's composition is the system's (unless the user named the system);
- the energy is in a plausible unit: compared with the all-electron total energy of the
  composition, from Schwinger's asymptotic formula for the Hartree-Fock energy of a
  neutral atom, E(Z) ~ -(0.7687 Z^(7/3) - 0.5 Z^2 + 0.2699 Z^(5/3)) Ha (within about 1 %
  from carbon up, 8 % for hydrogen). A total energy of any method (pseudopotentials,
  reference-subtracted energies) is at most ~1.5 times that in magnitude, so more is a
  wrong unit (eV data read as hartree, kcal/mol); and "eV" data whose magnitude matches
  the all-electron total in hartree (0.9-1.25 of it) is hartree data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aloop.dataset.importing import ImportedFrame, ImportRefused

#: |E| above this many times the all-electron estimate: not a total energy in eV.
TOO_LARGE = 1.5
#: |E| (as given, "eV") within this range of the all-electron estimate in hartree.
LOOKS_LIKE_HARTREE = (0.9, 1.25)


@dataclass(frozen=True)
class ImportKeys:
    """The keys an import reads, and whether the user chose them (``--energy-key`` ...)."""

    energy: str = "REF_energy"
    forces: str = "REF_forces"
    stress: str = "REF_stress"
    energy_given: bool = False
    forces_given: bool = False


def all_electron_estimate_ha(numbers: Sequence[int]) -> float:
    """Magnitude of the neutral atoms' Hartree-Fock total energy (Ha), summed."""
    z = np.asarray(numbers, dtype=float)
    return float(np.sum(0.7687 * z ** (7 / 3) - 0.5 * z**2 + 0.2699 * z ** (5 / 3)))


def formula(numbers: Sequence[int], reduce: bool = False) -> str:
    """Hill-order formula of ``numbers`` (reduced to its smallest ratio when asked)."""
    from ase.formula import Formula
    from ase.symbols import Symbols

    f = Formula(Symbols(list(numbers)).get_chemical_formula("hill"))
    return f.reduce()[0].format("hill") if reduce else f.format("hill")


def _check_finite(frame: ImportedFrame) -> None:
    for name, value in (("energy", frame.energy), ("forces", frame.forces)):
        if value is not None and not np.all(np.isfinite(value)):
            raise ImportRefused(f"frame {frame.index}: {name} is not finite ({_first_bad(value)})")
    if frame.stress is not None and not np.all(np.isfinite(frame.stress)):
        raise ImportRefused(
            f"frame {frame.index}: stress is not finite ({_first_bad(frame.stress)})"
        )


def _first_bad(value: float | np.ndarray) -> str:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    flat = int(np.flatnonzero(~np.isfinite(arr))[0])
    if arr.ndim == 2:
        return f"atom {flat // 3}: {arr.flat[flat]}"
    return str(arr.flat[flat])


def _check_complete(frame: ImportedFrame, keys: ImportKeys) -> None:
    if (frame.energy is None) != (frame.forces is None):
        has, lacks = (
            (keys.energy, keys.forces) if frame.forces is None else (keys.forces, keys.energy)
        )
        raise ImportRefused(
            f"frame {frame.index} has {has!r} but no {lacks!r}: a label needs both "
            "(or import plain structures, without either)"
        )


def check_units(frame: ImportedFrame, units: str) -> None:
    """Refuse an energy whose magnitude says it is not in ``units`` (see the module)."""
    if frame.energy is None:
        return
    numbers = frame.atoms.numbers
    estimate_ha = all_electron_estimate_ha(numbers)
    estimate_ev = estimate_ha * 27.211386
    ratio = abs(frame.energy) / estimate_ev
    where = f"frame {frame.index}: energy {frame.energy:.6g} eV for {formula(numbers)}"
    if ratio > TOO_LARGE:
        hint = (
            "the file's energies look like eV already: drop --units hartree"
            if units == "hartree"
            else "the labels are not in eV (kcal/mol? meV?): convert them to eV"
        )
        raise ImportRefused(
            f"{where} is larger in magnitude than any total energy of it (all-electron about "
            f"-{estimate_ev:.0f} eV); {hint}, or pass --trust-units"
        )
    lo, hi = LOOKS_LIKE_HARTREE
    if units == "eV" and lo <= abs(frame.energy) / estimate_ha <= hi:
        raise ImportRefused(
            f"{where} is what an all-electron total energy is in hartree (about "
            f"-{estimate_ha:.1f} Ha): use --units hartree, or pass --trust-units"
        )


def check_composition(
    frame: ImportedFrame, expected: set[str], periodic: bool, system: str
) -> None:
    """Refuse a frame whose formula is none of the system's (reduced when periodic)."""
    got = formula(frame.atoms.numbers, reduce=periodic)
    if got not in expected:
        raise ImportRefused(
            f"frame {frame.index} is {got}, but system {system!r} is "
            f"{' or '.join(sorted(expected))}: pass --system {system} to import it as "
            f"{system!r} anyway"
        )


def _check_given_keys(frames: Sequence[ImportedFrame], keys: ImportKeys) -> None:
    """A key the user asked for that no frame has is a mistake, not "unlabelled"."""
    for given, name, option, attr in (
        (keys.energy_given, keys.energy, "--energy-key", "energy"),
        (keys.forces_given, keys.forces, "--forces-key", "forces"),
    ):
        if given and frames and all(getattr(f, attr) is None for f in frames):
            raise ImportRefused(f"no frame has {option} {name!r}: {_found(frames)}")


def _check_labels_elsewhere(frames: Sequence[ImportedFrame], keys: ImportKeys) -> None:
    """No frame labelled, but the file carries labels under other keys: refuse."""
    if any(f.labelled for f in frames):
        return
    present = list(dict.fromkeys(k for f in frames for k in f.label_keys))
    if present:
        energy = next((k for k in present if "energ" in k.lower()), None)
        hint = f" (--energy-key {energy})" if energy else ""
        raise ImportRefused(
            f"no frame has {keys.energy!r} and {keys.forces!r}, but the file carries "
            f"{', '.join(present)}: name the keys{hint}, see --help"
        )


def _found(frames: Sequence[ImportedFrame]) -> str:
    keys = list(dict.fromkeys(k for f in frames for k in f.label_keys))
    return f"the file carries {', '.join(keys)}" if keys else "the file carries no label keys"


def check_frames(
    frames: Sequence[ImportedFrame],
    *,
    keys: ImportKeys,
    units: str,
    trust_units: bool = False,
    system: str,
    expected: set[str] | None = None,
    periodic: bool = False,
) -> None:
    """Refuse the whole import at the first frame that would poison the campaign.

    ``expected``: the system's formulas (None: not checked, the user named the system).
    """
    _check_given_keys(frames, keys)
    for frame in frames:
        _check_finite(frame)
        _check_complete(frame, keys)
        if expected is not None:
            check_composition(frame, expected, periodic, system)
        if not trust_units:
            check_units(frame, units)
    _check_labels_elsewhere(frames, keys)
