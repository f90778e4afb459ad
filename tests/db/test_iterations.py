"""The iteration aggregate on every backend: its stages and their checked transitions,
merged statistics read back typed, committees, and iterations stored by older releases."""

from __future__ import annotations

import pytest

from aloop.records import IterationRecord
from aloop.stats import IterationStats, LabelStats, SeedStats
from aloop.vocabulary import LOOP_STAGES, SEED_STAGES, Stage, StageStatus, stages_of
from db import iterations
from db.documents import Iteration
from tests.db.factories import new_campaign


@pytest.fixture
def campaign(backend):
    return new_campaign()


def test_iteration_zero_seeds_and_labels_later_ones_run_the_loop(campaign):
    assert stages_of(0) == SEED_STAGES == (Stage.SEED, Stage.LABEL)
    assert stages_of(3) == LOOP_STAGES
    seed = iterations.get_or_create_iteration(campaign.id, 0)
    later = iterations.get_or_create_iteration(campaign.id, 1)
    assert isinstance(seed, IterationRecord) and (seed.index, later.index) == (0, 1)
    assert tuple(seed.stages) == SEED_STAGES
    assert tuple(later.stages) == LOOP_STAGES
    assert {s.status for s in [*seed.stages.values(), *later.stages.values()]} == {
        StageStatus.PENDING
    }
    assert seed.stats == IterationStats() and not seed.labelled_done
    assert seed.stage_status(Stage.TRAIN) is None  # a stage iteration 0 does not run
    assert [it.index for it in iterations.campaign_iterations(campaign.id)] == [0, 1]
    assert iterations.find_iteration(campaign.id, 2) is None


def test_stage_transitions_are_checked(campaign):
    it = iterations.get_or_create_iteration(campaign.id, 1)
    with pytest.raises(iterations.StageTransitionError, match="'pending', cannot become 'done'"):
        iterations.set_stage(it, Stage.TRAIN, StageStatus.DONE)
    iterations.set_stage(it, Stage.TRAIN, StageStatus.RUNNING)
    iterations.set_stage(it, Stage.TRAIN, StageStatus.FAILED, error="CUDA out of memory")
    train = iterations.find_iteration(campaign.id, 1).stages[Stage.TRAIN]
    assert train.status is StageStatus.FAILED and train.error == "CUDA out of memory"
    iterations.set_stage(it, Stage.TRAIN, StageStatus.RUNNING)  # a failed stage may be retried
    iterations.set_stage(it, Stage.TRAIN, StageStatus.DONE)
    train = iterations.find_iteration(campaign.id, 1).stages[Stage.TRAIN]
    assert train.attempts == 2 and train.error is None
    assert train.seconds is not None and train.seconds >= 0
    with pytest.raises(iterations.StageTransitionError):
        iterations.set_stage(it, Stage.TRAIN, StageStatus.RUNNING)
    # creating it again returns the same document, untouched
    again = iterations.get_or_create_iteration(campaign.id, 1)
    assert again.id == it.id and again.stage_status(Stage.TRAIN) is StageStatus.DONE
    # a stage the iteration does not have cannot be moved
    seed = iterations.get_or_create_iteration(campaign.id, 0)
    with pytest.raises(iterations.StageTransitionError, match="'absent'"):
        iterations.set_stage(seed, Stage.TRAIN, StageStatus.RUNNING)
    with pytest.raises(ValueError, match="cannot move a stage"):
        iterations.set_stage(seed, Stage.SEED, StageStatus.PENDING)


def test_statistics_are_merged_and_read_back_typed(campaign):
    it = iterations.get_or_create_iteration(campaign.id, 1)
    iterations.merge_stats(it.id, {"sampled": 40, "accurate_ratio": 0.5})
    raw = Iteration._get_collection().find_one({"_id": it.id})
    assert raw["stats"] == {"sampled": 40, "accurate_ratio": 0.5}
    iterations.merge_stats(it.id, LabelStats(to_label=3, labelled=2, label_failures=1))
    iterations.merge_stats(it.id, {"timings.label": {"wall_s": 2.0, "compute_s": 1.5}})
    raw = Iteration._get_collection().find_one({"_id": it.id})
    assert raw["stats"]["sampled"] == 40  # merged, not replaced
    assert raw["stats"]["to_label"] == 3 and raw["stats"]["timings"]["label"]["wall_s"] == 2.0
    stats = iterations.find_iteration(campaign.id, 1).stats
    assert (stats.labelled, stats.label_failures) == (2, 1)
    assert stats.labelling.dft_wall_s == 0.0 and stats.labelling.unlabelled == 0
    assert stats.timings[Stage.LABEL].compute_s == 1.5
    assert stats.explore is None and stats.selected is None


def test_committees_are_recorded(campaign):
    it = iterations.get_or_create_iteration(campaign.id, 2)
    iterations.set_committees(it.id, trained=["m0", "m1"])
    iterations.set_committees(it.id, explored=["m0", "m1"])
    iterations.set_committees(it.id)  # nothing given: nothing changes
    back = iterations.find_iteration(campaign.id, 2)
    assert back.trained_committee == ["m0", "m1"] and back.explore_committee == ["m0", "m1"]


def test_an_iteration_zero_stored_before_the_seed_stage_resumes_where_it_stopped(campaign):
    """Older releases ran the seed in iteration 0's explore slot and stored its statistics
    at the top level, with ``training: {skipped: ...}``."""
    done = {"status": "done", "attempts": 1}
    Iteration._get_collection().insert_one(
        {
            "campaign": campaign.id,
            "index": 0,
            "stages": {
                "train": done,
                "explore": done,
                "select": done,
                "label": {"status": "running", "attempts": 1},
            },
            "stats": {
                "seeded": 4,
                "seeded_new": 4,
                "training": {"skipped": "iteration 0 has no committee"},
                "timings": {"explore": {"wall_s": 1.0, "compute_s": 0.0}},
            },
        }
    )
    found = iterations.find_iteration(campaign.id, 0)
    assert found.stage_status(Stage.SEED) is StageStatus.DONE  # read from the explore slot
    it = iterations.get_or_create_iteration(campaign.id, 0)
    assert it.stage_status(Stage.SEED) is StageStatus.DONE
    assert it.stage_status(Stage.LABEL) is StageStatus.RUNNING  # resumed, not restarted
    raw = Iteration._get_collection().find_one({"_id": it.id})
    assert raw["stages"]["seed"]["status"] == "done"  # written, once
    stats = it.stats
    assert stats.seed == SeedStats(seeded=4, seeded_new=4, selected=4)
    assert stats.selected == 4 and stats.training is None
    assert Stage.SEED in stats.timings and Stage.EXPLORE not in stats.timings
    iterations.set_stage(it, Stage.LABEL, StageStatus.RUNNING)
    iterations.set_stage(it, Stage.LABEL, StageStatus.DONE)
    assert iterations.find_iteration(campaign.id, 0).labelled_done
