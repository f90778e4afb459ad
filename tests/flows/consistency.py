"""What must hold in a campaign's documents after any run, finished or resumed."""

from __future__ import annotations

from aloop.vocabulary import LabelStatus, Stage, StageStatus, Verdict, stages_of
from db import campaigns, iterations, labels
from db.documents import Label, Model, Structure


def check_campaign(name: str, committee_size: int) -> dict:
    """Assert the invariants of a finished campaign; return counts for further checks.

    - every selected structure has exactly one label per settings hash, ``ok`` or
      ``failed``/``rejected`` with a reason;
    - no structure has two labels with the same settings hash;
    - every exploring iteration has a full committee, each member with a training set of
      successfully labelled structures from earlier iterations;
    - every stage of every iteration is done (iteration 0: seed and label; later ones:
      train, explore, select and label; the last, once a stopping rule fired: final);
    - the hold-out structures are labelled and in no member's training or validation set.
    """
    campaign = campaigns.get_campaign(name)
    assert campaign is not None, f"no campaign {name}"
    assert labels.duplicate_label_count(campaign.id) == 0
    selected = list(Structure.objects(campaign=campaign.id, verdict=Verdict.SELECTED).only("id"))
    by_structure = {lab.structure.id: lab for lab in Label.objects(campaign=campaign.id)}
    for s in selected:
        assert s.id in by_structure, f"selected structure {s.id} has no label"
        lab = by_structure[s.id]
        assert lab.status == LabelStatus.OK or lab.error, f"label of {s.id} failed without a reason"
    ok = {sid for sid, lab in by_structure.items() if lab.status == LabelStatus.OK}
    held = set(labels.holdout_ids(campaign.id))
    assert held <= set(by_structure), "a hold-out structure was never labelled"
    for m in Model.objects(campaign=campaign.id).only("training_set", "validation_set"):
        assert not held & set(m.training_set or []), "a member trained on the hold-out"
        assert not held & set(m.validation_set or []), "a member validated on the hold-out"
    its = iterations.campaign_iterations(campaign.id)
    assert [it.index for it in its] == list(range(len(its))), "an iteration is missing"
    final = [it for it in its if it.is_final]
    if campaign.status.finished:
        assert [it.index for it in final] == [its[-1].index], "no final iteration at the end"
    for it in its:
        if it.is_final:
            assert it.stage_status(Stage.FINAL) is StageStatus.DONE, "final stage unfinished"
            assert it.stats.final is not None
            assert it.stats.final.final_holdout.n == len(held & ok)
        else:
            # Each of its stages ran; an iteration 0 stored before the seed stage existed
            # also holds the train/explore/select slots it used, all done.
            assert set(stages_of(it.index)) <= set(it.stages), (
                f"iteration {it.index}: a stage is missing"
            )
            assert all(v.status is StageStatus.DONE for v in it.stages.values()), (
                f"iteration {it.index} unfinished"
            )
            assert it.labelled_done
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
        "iterations": len(its),
        "selected": len(selected),
        "labels": len(by_structure),
        "labels_ok": len(ok),
        "label_ids": {str(lab.id) for lab in by_structure.values()},
    }
