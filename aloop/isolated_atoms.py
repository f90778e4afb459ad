"""Isolated atoms: the reference energies (E0s) a MACE model's energy is built on.

MACE writes a structure's energy as the sum of its atoms' isolated-atom energies plus a
learnt interaction energy. ``--E0s=average`` fits those per-element constants to the
training set by least squares, which is rank-deficient when every frame has one
composition (a single molecule explored at several temperatures): the split between
elements is then arbitrary and atomisation energies and dissociation limits mean
nothing. aloop labels each element's neutral atom at the campaign's own DFT settings
instead, spin-polarised in its ground-state multiplicity (this module), and trains with
those energies as MACE's explicit E0s.

Pure: no database, no DFT; flows/ labels what :func:`isolated_atom` builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aloop.errors import AloopError, UserError
from aloop.vocabulary import LabelStatus, Origin

if TYPE_CHECKING:
    from ase import Atoms

#: Side of the cubic box (Å) a periodic campaign's isolated atom is labelled in. It must
#: keep the atom's density clear of its periodic images: a GTH valence density has decayed
#: to nothing within 3-4 Å of the nucleus, so 10 Å leaves over 2 Å of vacuum between
#: tails even for the most diffuse atoms (alkali metals). A periodic label has to be
#: computed with the campaign's periodic settings (pseudopotential and plane-wave grid),
#: or its energy would not be on the same scale as the cells' energies; the box's cost
#: grows with its volume (the grid), so it is no bigger than that.
ISOLATED_BOX_ANGSTROM = 10.0
#: The box's edges are this side times these factors: not a cube, because in a cube an
#: open-shell atom's partly filled p (or d) shell stays exactly degenerate, and CP2K's
#: orbital-transformation SCF then stalls choosing among equal orbitals (a Cl atom: no
#: convergence in 300 steps in a 10 Å cube, converged in about 60 in this box).
ISOLATED_BOX_ASPECT = (1.0, 1.06, 1.12)

#: MACE recognises a training-file frame as an isolated atom by this ``config_type``.
MACE_ISOLATED_CONFIG_TYPE = "IsolatedAtom"

#: Subshell order of the Madelung (n + l, then n) rule, up to 6p.
_AUFBAU = (
    (1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (4, 0), (3, 2), (4, 1), (5, 0), (4, 2),
    (5, 1), (6, 0), (4, 3), (5, 2), (6, 1),
)  # fmt: skip

#: Ground-state configurations that differ from the Madelung filling, as the changed
#: subshell occupations (NIST Atomic Spectra Database): one s electron moves to the d
#: shell (Cr, Cu, Nb, Mo, Ru, Rh, Ag, Pt, Au; two for Pd), and La puts its electron
#: in 5d, not 4f.
_EXCEPTIONS: dict[int, dict[tuple[int, int], int]] = {
    24: {(4, 0): 1, (3, 2): 5},  # Cr [Ar] 3d5 4s1
    29: {(4, 0): 1, (3, 2): 10},  # Cu [Ar] 3d10 4s1
    41: {(5, 0): 1, (4, 2): 4},  # Nb [Kr] 4d4 5s1
    42: {(5, 0): 1, (4, 2): 5},  # Mo [Kr] 4d5 5s1
    44: {(5, 0): 1, (4, 2): 7},  # Ru [Kr] 4d7 5s1
    45: {(5, 0): 1, (4, 2): 8},  # Rh [Kr] 4d8 5s1
    46: {(5, 0): 0, (4, 2): 10},  # Pd [Kr] 4d10
    47: {(5, 0): 1, (4, 2): 10},  # Ag [Kr] 4d10 5s1
    57: {(4, 3): 0, (5, 2): 1},  # La [Xe] 5d1 6s2
    78: {(6, 0): 1, (5, 2): 9},  # Pt [Xe] 4f14 5d9 6s1
    79: {(6, 0): 1, (5, 2): 10},  # Au [Xe] 4f14 5d10 6s1
}

#: The elements this module knows the ground state of: H to La, and Hf to Rn. The
#: lanthanides after La (open 4f shells, whose ground terms Hund's rules on a single
#: configuration do not reliably give, and which def2 treats with large-core ECPs) and
#: everything past Rn are left out: asking for one is an error naming it.
SUPPORTED = frozenset(range(1, 58)) | frozenset(range(72, 87))


class UnsupportedElement(UserError):
    """An element whose isolated-atom ground state aloop does not know."""


def _atomic_number(element: str | int) -> int:
    from ase.data import atomic_numbers, chemical_symbols

    if isinstance(element, str):
        if element not in atomic_numbers:
            raise UnsupportedElement(f"{element!r} is not a chemical element symbol")
        z = atomic_numbers[element]
    else:
        z = int(element)
    if z not in SUPPORTED:
        name = chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"
        raise UnsupportedElement(
            f"no isolated-atom ground state is tabulated for {name} (Z={z}); aloop knows "
            "H-La and Hf-Rn. Set model.e0s: average to train with MACE's least-squares "
            "E0s instead"
        )
    return z


def electron_configuration(element: str | int) -> dict[tuple[int, int], int]:
    """The neutral atom's ground-state configuration as ``{(n, l): electrons}``.

    Madelung filling with the tabulated exceptions (``_EXCEPTIONS``); empty subshells
    are left out.
    """
    z = _atomic_number(element)
    occupation: dict[tuple[int, int], int] = {}
    left = z
    for n, ell in _AUFBAU:
        if left == 0:
            break
        take = min(left, 2 * (2 * ell + 1))
        occupation[(n, ell)] = take
        left -= take
    occupation.update(_EXCEPTIONS.get(z, {}))
    return {shell: count for shell, count in occupation.items() if count}


def ground_state_multiplicity(element: str | int) -> int:
    """Spin multiplicity 2S + 1 of the neutral atom's ground state (Hund's first rule).

    Each open subshell of :func:`electron_configuration` holds its electrons with the
    most parallel spins it can (``min(k, 2(2l+1) - k)`` unpaired for ``k`` electrons);
    the unpaired spins of different open subshells are parallel too (Cr 3d5 4s1: 7).

    Raises
    ------
    UnsupportedElement
        The element is outside :data:`SUPPORTED`.
    """
    unpaired = 0
    for (_, ell), k in electron_configuration(element).items():
        orbitals = 2 * ell + 1
        unpaired += min(k, 2 * orbitals - k)
    return unpaired + 1


def isolated_system_name(element: str | int) -> str:
    """The system name an isolated atom is stored under, e.g. ``isolated_atom:H``.

    The colon is not allowed in a campaign's system names, so no system of a campaign
    can collide with it, and no per-system query (exploration, selection, labelling,
    statistics) ever names it.
    """
    from ase.data import chemical_symbols

    return f"{Origin.ISOLATED_ATOM}:{chemical_symbols[_atomic_number(element)]}"


def cubic_isolated_atom(element: str | int) -> Atoms:
    """The periodic isolated atom as campaigns stored before the box stopped being a
    cube: a campaign that has one labelled keeps it, so its E0s do not move mid-run."""
    atoms = isolated_atom(element, periodic=True)
    atoms.set_cell(np.eye(3) * ISOLATED_BOX_ANGSTROM)
    atoms.positions[0] = ISOLATED_BOX_ANGSTROM / 2
    return atoms


def isolated_atom(element: str | int, periodic: bool) -> Atoms:
    """The neutral atom alone, ready to label (``info``: charge 0, its multiplicity).

    ``periodic``: in a :data:`ISOLATED_BOX_ANGSTROM` box (edges scaled by
    :data:`ISOLATED_BOX_ASPECT`) with periodic boundaries,
    so it is labelled with the same periodic settings (pseudopotential, grid) as the
    campaign's cells; otherwise a single atom at the origin, labelled like a molecule.
    """
    from ase import Atoms

    z = _atomic_number(element)
    if periodic:
        edges = ISOLATED_BOX_ANGSTROM * np.array(ISOLATED_BOX_ASPECT)
        atoms = Atoms(numbers=[z], positions=[edges / 2], cell=np.diag(edges), pbc=True)
    else:
        atoms = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
    atoms.info.update(charge=0, multiplicity=ground_state_multiplicity(z))
    return atoms


def elements_of(frames: Iterable[Atoms]) -> list[int]:
    """The atomic numbers present in ``frames``, sorted."""
    return sorted({int(z) for a in frames for z in a.numbers})


def missing_elements(needed: Iterable[int], e0s: Mapping[int, float]) -> list[str]:
    """Symbols of the ``needed`` atomic numbers that ``e0s`` has no energy for."""
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in sorted(set(needed)) if z not in e0s]


@dataclass(frozen=True)
class IsolatedAtomLabel:
    """One element's isolated-atom label at one settings hash, as stored."""

    z: int
    structure_id: str
    label_id: str
    settings_hash: str
    status: LabelStatus
    energy: float | None
    error: str | None
    multiplicity: int
    periodic: bool

    @property
    def symbol(self) -> str:
        """The element's symbol."""
        from ase.data import chemical_symbols

        return chemical_symbols[self.z]

    def manifest_entry(self) -> dict:
        """What an export's manifest (and a model's provenance) says of it."""
        return {
            "energy_eV": self.energy,
            "multiplicity": self.multiplicity,
            "settings_hash": self.settings_hash,
            "structure_id": self.structure_id,
            "label_id": self.label_id,
        }


class E0Unavailable(AloopError):
    """Some element of a training set has no usable isolated-atom energy."""


def reference_energies(
    needed: Mapping[str, Iterable[int]], labels: Sequence[IsolatedAtomLabel]
) -> dict[int, IsolatedAtomLabel]:
    """The isolated-atom label each element trains with: ``{atomic number: label}``.

    Parameters
    ----------
    needed
        For each settings hash of the training frames, the elements its frames hold.
    labels
        The stored isolated-atom labels (any status, any settings hash).

    Raises
    ------
    E0Unavailable
        An element's atom failed to label or was never labelled at its frames' settings,
        or its frames come from two settings hashes (two different energy zeros: no one
        E0 is right for both), each named with the reason.
    """
    from ase.data import chemical_symbols

    by_key = {(lab.settings_hash, lab.z): lab for lab in labels}
    hashes_of: dict[int, set[str]] = {}
    for settings_hash, zs in needed.items():
        for z in zs:
            hashes_of.setdefault(int(z), set()).add(settings_hash)
    chosen: dict[int, IsolatedAtomLabel] = {}
    problems = []
    for z, hashes in sorted(hashes_of.items()):
        sym = chemical_symbols[z]
        if len(hashes) > 1:
            problems.append(
                f"{sym}: its frames are labelled at {len(hashes)} settings hashes "
                f"({', '.join(h[:12] for h in sorted(hashes))}), each with its own "
                "isolated-atom energy"
            )
            continue
        (settings_hash,) = hashes
        lab = by_key.get((settings_hash, z))
        if lab is None:
            problems.append(f"{sym}: no isolated-atom label at settings {settings_hash[:12]}")
        elif lab.status is not LabelStatus.OK or lab.energy is None:
            problems.append(f"{sym}: its isolated atom's label {lab.status}: {lab.error}")
        else:
            chosen[z] = lab
    if problems:
        raise E0Unavailable(
            "no isolated-atom reference energy (E0) for "
            + "; ".join(problems)
            + ". Set model.e0s: average to train with MACE's least-squares E0s instead"
        )
    return chosen
