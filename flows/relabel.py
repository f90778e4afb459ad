"""Recomputing labels whose settings hash the campaign no longer uses, before it goes on.

A label's hash names the surface it lies on (dft/settings.py). When that changes under a
stored campaign (a new label protocol, another PySCF, a DFT change accepted with
``--allow-config-change``), training at the current hash would quietly lose every older
label, and mixing them in would put two surfaces in one training set. Neither happens:
at the start of each run the campaign's successful labels at an unused hash are
recomputed at their system's current settings, each keeping its iteration (so every
iteration's training set keeps its composition), the old labels stay stored beside the
new ones as history, and the campaign document records the relabelling.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from aloop.vocabulary import LabelStatus
from db import relabel, structures
from dft.worker import LabelTask
from flows.context import label_recorder

if TYPE_CHECKING:
    from dft.settings import LabelSettings
    from flows.context import LabelRunner, Loop


def relabel_stale(loop: Loop, run_labels: LabelRunner) -> Counter[LabelStatus]:
    """Label, at the current settings, every structure whose only successful labels lie
    at a settings hash its system no longer uses; the outcomes by status (empty when
    nothing was stale)."""
    current = {s.name: loop.label_settings(s.name).settings_hash() for s in loop.cfg.systems}
    stale = relabel.stale_labels(loop.campaign.id, current)
    if not stale:
        return Counter()
    old_hashes = sorted({s.settings_hash for s in stale})
    loop.reporter.message(
        f"relabelling {len(stale)} structures labelled under settings no longer in use "
        f"({', '.join(h[:12] for h in old_hashes)}) at the current settings: one surface "
        "per training set"
    )
    iteration_of = {s.structure_id: s.iteration for s in stale}
    jobs: list[tuple[LabelTask, LabelSettings]] = []
    ids = [s.structure_id for s in stale]
    for entry, atoms in zip(stale, structures.load_atoms(ids), strict=True):
        task = LabelTask(
            entry.structure_id,
            atoms,
            charge=int(atoms.info.get("charge", 0)),
            multiplicity=int(atoms.info.get("multiplicity", 1)),
        )
        jobs.append((task, loop.label_settings(entry.system)))

    on_record, finished = label_recorder(loop, len(jobs), iteration_of.__getitem__)
    run_labels(jobs, on_record)
    relabel.record_relabel(loop.campaign.id, old_hashes, sorted(set(current.values())), finished)
    return finished
