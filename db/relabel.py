"""Labels a campaign no longer trains on: computed under a settings hash its systems no
longer use (an older label protocol, another PySCF, a recorded config change).

Training reads labels at the current hashes only, so such labels would silently drop out
of the training set; flows/relabel.py recomputes them at the current settings instead,
and the campaign document records that it did (:func:`record_relabel`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aloop.vocabulary import LabelStatus
from db.documents import Campaign, Label, Structure, utcnow


@dataclass(frozen=True)
class StaleLabel:
    """A successful label at a settings hash its structure's system no longer uses."""

    structure_id: str
    system: str
    iteration: int
    settings_hash: str


def stale_labels(campaign_id: Any, current: Mapping[str, str]) -> list[StaleLabel]:
    """Successful labels of the campaign whose structure belongs to a system of
    ``current`` (system name -> its settings hash now) and has no label, of any status,
    at that hash; sorted by structure id.

    Structures of other systems (isolated atoms, systems dropped from the file) are left
    to whoever labels them.
    """
    hashes = sorted(set(current.values()))
    labels = Label._get_collection()
    old = list(
        labels.find(
            {
                "campaign": campaign_id,
                "status": LabelStatus.OK.value,
                "settings_hash": {"$nin": hashes},
            },
            {"structure": 1, "iteration": 1, "settings_hash": 1},
        )
    )
    if not old:
        return []
    ids = sorted({d["structure"] for d in old})
    system_of = {
        d["_id"]: d["system"]
        for d in Structure._get_collection().find({"_id": {"$in": ids}}, {"system": 1})
    }
    done = {
        (d["structure"], d["settings_hash"])
        for d in labels.find(
            {"structure": {"$in": ids}, "settings_hash": {"$in": hashes}},
            {"structure": 1, "settings_hash": 1},
        )
    }
    stale: dict[str, StaleLabel] = {}
    for d in old:
        sid = d["structure"]
        system = system_of.get(sid)
        if system not in current or (sid, current[system]) in done:
            continue
        # One relabel per structure, whichever old hash (or hashes) it was labelled at.
        stale.setdefault(
            sid, StaleLabel(sid, system, int(d.get("iteration") or 0), d["settings_hash"])
        )
    return [stale[sid] for sid in sorted(stale)]


def record_relabel(
    campaign_id: Any,
    from_hashes: Sequence[str],
    to_hashes: Sequence[str],
    counts: Mapping[LabelStatus, int],
) -> None:
    """Append to the campaign's ``relabels`` what a relabelling did, and when."""
    Campaign.objects(id=campaign_id).update_one(
        push__relabels={
            "at": utcnow(),
            "from_hashes": sorted(from_hashes),
            "to_hashes": sorted(to_hashes),
            "labels": {str(k): int(v) for k, v in sorted(counts.items())},
        }
    )
