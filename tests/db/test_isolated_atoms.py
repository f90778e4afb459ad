"""Isolated-atom structures on every backend: stored once per element and geometry,
labelled as ordinary labels, and kept out of the training set, the label counts, the
per-system queries and the dashboard's newest labels."""

from __future__ import annotations

import numpy as np
import pytest

from aloop.records import LabelRecord
from aloop.vocabulary import LabelStatus, Origin, Verdict
from db import isolated_atoms, labels, structures, views
from tests.db.factories import frames, new_campaign, records


@pytest.fixture
def campaign(backend):
    return new_campaign()


def _label(sid, settings_hash, energy=-1.0, iteration=1, status=LabelStatus.OK, natoms=1):
    ok = status is LabelStatus.OK
    return LabelRecord(
        sid,
        settings_hash,
        status,
        energy=energy if ok else None,
        forces=np.zeros((natoms, 3)) if ok else None,
        error=None if ok else "SCF not converged",
        iteration=iteration,
    )


def test_isolated_atoms_are_stored_once_per_element_and_geometry(campaign):
    first = isolated_atoms.store_isolated_atoms(campaign.id, [8, 1], periodic=False, iteration=1)
    again = isolated_atoms.store_isolated_atoms(campaign.id, [1, 8, 6], periodic=False, iteration=2)
    boxed = isolated_atoms.store_isolated_atoms(campaign.id, [1], periodic=True, iteration=2)
    assert sorted(first) == [1, 8] and {again[1], again[8]} == {first[1], first[8]}
    assert boxed[1] != first[1]  # the atom in its periodic box is another structure
    assert isolated_atoms.isolated_atom_ids(campaign.id) == sorted(
        {*first.values(), *again.values(), *boxed.values()}
    )
    (h,) = structures.load_atoms([first[1]])
    assert h.info["origin"] == Origin.ISOLATED_ATOM and h.info["system"] == "isolated_atom:H"
    assert h.info["multiplicity"] == 2 and h.info["iteration"] == 1
    (o,) = structures.load_atoms([first[8]])
    assert o.info["multiplicity"] == 3


def test_isolated_atoms_are_no_training_frame_no_count_and_no_systems_structure(campaign):
    water = structures.insert_structures(
        campaign.id, records(frames(3), Origin.RATTLED, iteration=0, verdict=Verdict.SELECTED)
    ).ids
    for sid in water:
        labels.record_label(campaign.id, _label(sid, "A", iteration=0, natoms=3))
    atoms = isolated_atoms.store_isolated_atoms(campaign.id, [1, 8], periodic=False, iteration=0)
    labels.record_label(campaign.id, _label(atoms[1], "A", energy=-13.6, iteration=0))
    labels.record_label(campaign.id, _label(atoms[8], "A", iteration=0, status=LabelStatus.FAILED))

    ids, train = labels.labelled_frames(campaign.id, ["A"], before_iteration=1)
    assert ids == sorted(water) and all(len(a) == 3 for a in train)
    assert {a.info[labels.LABEL_SETTINGS_HASH] for a in train} == {"A"}
    assert labels.label_counts(campaign.id) == {LabelStatus.OK: 3}
    # No per-system or verdict query finds them (the seed counts its selected this way).
    assert structures.structure_ids(campaign.id, 0, verdicts=[Verdict.SELECTED]) == sorted(water)
    assert structures.structure_ids(campaign.id, 0, system="water") == sorted(water)
    assert views._latest_labelled(campaign.id, 0) and all(
        r["system"] == "water" for r in views._latest_labelled(campaign.id, 0)
    )
    # ... but they are ordinary labels, with their outcome, read back per element.
    found = isolated_atoms.campaign_isolated_atom_labels(campaign.id, "A")
    assert [(lab.symbol, lab.status, lab.energy) for lab in found] == [
        ("H", LabelStatus.OK, -13.6),
        ("O", LabelStatus.FAILED, None),
    ]
    assert found[1].error == "SCF not converged" and found[1].multiplicity == 3
    assert isolated_atoms.campaign_isolated_atom_labels(campaign.id, "B") == []


def test_an_atom_stored_in_the_earlier_cubic_box_stays_the_campaigns_e0(campaign):
    """Campaigns stored before the periodic box stopped being a cube keep their labelled
    atom (their E0s do not move mid-run); a new element gets today's box."""
    from aloop.isolated_atoms import cubic_isolated_atom
    from aloop.records import StructureRecord

    cube = cubic_isolated_atom(17)
    (old,) = structures.insert_structures(
        campaign.id,
        [
            StructureRecord.from_atoms(
                cube, "isolated_atom:Cl", Origin.ISOLATED_ATOM, multiplicity=2, iteration=0
            )
        ],
    ).ids
    ids = isolated_atoms.store_isolated_atoms(campaign.id, [17, 12], periodic=True, iteration=3)
    assert ids[17] == old
    (mg,) = structures.load_atoms([ids[12]])
    assert len(set(np.round(mg.cell.lengths(), 6))) == 3  # not a cube
    assert isolated_atoms.isolated_atom_ids(campaign.id) == sorted([old, ids[12]])
