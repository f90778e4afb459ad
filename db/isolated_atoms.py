"""Isolated-atom structures and their labels: the reference energies (E0s) of a campaign.

An isolated atom is stored as an ordinary Structure (origin ``isolated_atom``, system
``isolated_atom:<symbol>``, no verdict) and labelled as an ordinary Label at each
settings hash that needs it, so it carries the same provenance as every other label
(settings, SCF attempts, host, code versions). It is no system's structure: no
per-system query names its system, no verdict query matches it, and the training set,
the label counts and the dashboard leave it out by its origin.

Its id is a function of the campaign and the atom's content hash (one per element and
geometry: a single atom, or the atom in its periodic box), so the few candidates are
looked up by key rather than found by scanning a campaign's structures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from aloop.isolated_atoms import (
    SUPPORTED,
    IsolatedAtomLabel,
    cubic_isolated_atom,
    isolated_atom,
    isolated_system_name,
)
from aloop.records import StructureRecord
from aloop.structures import atoms_hash
from aloop.vocabulary import LabelStatus, Origin
from db.documents import Label, structure_id
from db.scan import get_many
from db.structures import insert_structures


@lru_cache(maxsize=2)
def _candidate_digests() -> tuple[str, ...]:
    """Content hashes of every isolated atom aloop can build (molecular and periodic)."""
    return tuple(
        atoms_hash(a, 0, a.info["multiplicity"])
        for z in sorted(SUPPORTED)
        for a in (
            isolated_atom(z, periodic=False),
            isolated_atom(z, periodic=True),
            cubic_isolated_atom(z),
        )
    )


def isolated_atom_ids(campaign_id: Any) -> list[str]:
    """Ids of the campaign's stored isolated-atom structures (a key lookup, no scan)."""
    candidates = [structure_id(campaign_id, d) for d in _candidate_digests()]
    found = get_many("structures", candidates)
    return sorted(sid for sid, d in found.items() if d.get("origin") == Origin.ISOLATED_ATOM.value)


def store_isolated_atoms(
    campaign_id: Any, elements: Iterable[int], periodic: bool, iteration: int
) -> dict[int, str]:
    """Store each element's isolated atom (once: inserts dedupe by content hash).

    Returns ``{atomic number: structure id}``.
    """
    zs = sorted(set(elements))
    kept: dict[int, str] = {}
    if periodic:  # an atom stored in the earlier cubic box stays the campaign's E0
        cubes = {z: cubic_isolated_atom(z) for z in zs}
        ids = {
            z: structure_id(campaign_id, atoms_hash(a, 0, a.info["multiplicity"]))
            for z, a in cubes.items()
        }
        found = get_many("structures", list(ids.values()))
        kept = {z: sid for z, sid in ids.items() if sid in found}
        zs = [z for z in zs if z not in kept]
    atoms = [isolated_atom(z, periodic) for z in zs]
    records = [
        StructureRecord.from_atoms(
            a,
            isolated_system_name(z),
            Origin.ISOLATED_ATOM,
            charge=0,
            multiplicity=a.info["multiplicity"],
            iteration=iteration,
        )
        for z, a in zip(zs, atoms, strict=True)
    ]
    result = insert_structures(campaign_id, records) if records else None
    return kept | dict(zip(zs, result.ids if result else [], strict=True))


def isolated_atom_labels(
    structure_ids: Sequence[str], settings_hash: str | None = None
) -> list[IsolatedAtomLabel]:
    """The labels of these isolated-atom structures (at one settings hash, or any), in
    (settings hash, atomic number, structure id) order."""
    if not structure_ids:
        return []
    query: dict[str, Any] = {"structure": {"$in": list(structure_ids)}}
    if settings_hash is not None:
        query["settings_hash"] = settings_hash
    rows = list(
        Label._get_collection().find(
            query, {"structure": 1, "settings_hash": 1, "status": 1, "energy": 1, "error": 1}
        )
    )
    structures = get_many("structures", sorted({d["structure"] for d in rows}))
    out = []
    for d in rows:
        s = structures[d["structure"]]
        out.append(
            IsolatedAtomLabel(
                z=int(_numbers(s)[0]),
                structure_id=d["structure"],
                label_id=str(d["_id"]),
                settings_hash=d["settings_hash"],
                status=LabelStatus(d["status"]),
                energy=d.get("energy"),
                error=d.get("error"),
                multiplicity=int(s.get("multiplicity", 1)),
                periodic=any(s["pbc"]),
            )
        )
    return sorted(out, key=lambda lab: (lab.settings_hash, lab.z, lab.structure_id))


def campaign_isolated_atom_labels(
    campaign_id: Any, settings_hash: str | None = None
) -> list[IsolatedAtomLabel]:
    """A campaign's isolated-atom labels (any status), at one settings hash or any."""
    return isolated_atom_labels(isolated_atom_ids(campaign_id), settings_hash)


def _numbers(doc: dict) -> Any:
    from mongoengine.connection import get_db

    from db.arrays import decode_array

    return decode_array(doc["numbers"], get_db())
