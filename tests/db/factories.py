"""Small builders the data-layer tests share: a fresh campaign, jittered water frames and
their structure records."""

from __future__ import annotations

import numpy as np
from ase.build import molecule

from aloop.records import CampaignRecord, StructureRecord
from aloop.vocabulary import Origin
from db import campaigns


def new_campaign(name: str = "water-test", config_hash: str = "h" * 64) -> CampaignRecord:
    """A campaign that did not exist before (asserted)."""
    c, created = campaigns.get_or_create_campaign(name, {"campaign": name}, config_hash)
    assert created
    return c


def frames(n: int, seed: int = 0, name: str = "H2O") -> list:
    """``n`` copies of a molecule, each rattled differently (distinct content hashes)."""
    rng = np.random.default_rng(seed)
    base = molecule(name)
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        out.append(a)
    return out


def records(atoms_list, origin: Origin = Origin.MD, system: str = "water", **kw):
    """Structure records of ``atoms_list`` (default: MD frames of system "water")."""
    return [StructureRecord.from_atoms(a, system, origin, **kw) for a in atoms_list]
