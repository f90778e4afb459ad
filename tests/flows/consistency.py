"""What must hold in a campaign's documents after any run, finished or resumed."""

from __future__ import annotations

from db import loop as q
from db.documents import Campaign, Iteration, Label, Model, Structure


def check_campaign(name: str, committee_size: int) -> dict:
    """Assert the invariants of a finished campaign; return counts for further checks.

    - every selected structure has exactly one label per settings hash, ``ok`` or
      ``failed``/``rejected`` with a reason;
    - no structure has two labels with the same settings hash;
    - every exploring iteration has a full committee, each member with a training set of
      successfully labelled structures from earlier iterations;
    - every stage of every iteration is done.
    """
    campaign = Campaign.objects.get(name=name)
    assert q.duplicate_label_count(campaign) == 0
    selected = list(Structure.objects(campaign=campaign.id, verdict="selected").only("id"))
    labels = {lab.structure.id: lab for lab in Label.objects(campaign=campaign.id)}
    for s in selected:
        assert s.id in labels, f"selected structure {s.id} has no label"
        lab = labels[s.id]
        assert lab.status == "ok" or lab.error, f"label of {s.id} failed without a reason"
    ok = {sid for sid, lab in labels.items() if lab.status == "ok"}
    iterations = list(Iteration.objects(campaign=campaign.id).order_by("index"))
    for it in iterations:
        assert {k: v.status for k, v in it.stages.items()} == dict.fromkeys(
            ("train", "explore", "select", "label"), "done"
        ), f"iteration {it.index} unfinished"
        if it.index == 0:
            continue
        members = list(Model.objects(campaign=campaign.id, iteration=it.index))
        assert sorted(m.member for m in members) == list(range(committee_size))
        for m in members:
            assert m.training_set, "a model without its training set"
            assert set(m.training_set) <= ok
            trained_on = Label.objects(structure__in=m.training_set).only("iteration")
            assert all(lab.iteration < it.index for lab in trained_on)
    return {
        "iterations": len(iterations),
        "selected": len(selected),
        "labels": len(labels),
        "labels_ok": len(ok),
        "label_ids": {str(lab.id) for lab in labels.values()},
    }
