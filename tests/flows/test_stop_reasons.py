"""A campaign that cannot go on says why: walkers that sample no frame, seed labels that
all fail, or labels the geometry guard all rejects are dead ends (aloop.convergence.
dead_end, applied by the loop after every stage and again on resume)."""

from __future__ import annotations

from aloop.convergence import dead_end
from aloop.stats import ExploreStats, IterationStats, LabelStats, SystemStats


def _system(sampled: int, stops: dict[str, int]) -> SystemStats:
    return SystemStats.model_validate(
        {
            "name": "water",
            "sampled": sampled,
            "accurate": sampled,
            "candidate": 0,
            "failed": 0,
            "accurate_ratio": 1.0 if sampled else 0.0,
            "candidate_ratio": 0.0,
            "failed_ratio": 0.0,
            "histogram": {"edges": [0.0, 1.0], "counts": [sampled]},
            "trust_lo": 0.02,
            "trust_hi": 0.8,
            "walkers": 2,
            "md_steps": 8,
            "committee_calls": 8,
            "walker_stops": stops,
        }
    )


def test_walkers_that_sample_nothing_stop_the_campaign_with_their_reasons():
    stats = IterationStats(explore=ExploreStats.of([_system(0, {"steps done": 2})]))
    reason = dead_end(1, stats)
    assert reason is not None
    assert "iteration 1: the walkers sampled no frames (walker stops: 2 steps done)" in reason
    assert "explore.sample_interval" in reason
    assert dead_end(1, IterationStats(explore=ExploreStats.of([_system(5, {})]))) is None


def test_an_iteration_whose_labels_all_fail_stops_the_campaign():
    failed = LabelStats(
        to_label=4,
        labelled=0,
        label_failures=4,
        label_failure_reasons={"energy is NaN": 3, "rejected: atoms too close": 1},
    )
    reason = dead_end(0, IterationStats(labelling=failed))
    assert reason is not None
    assert "none of the 4 structures got a usable label" in reason
    assert "3x energy is NaN" in reason and "1x rejected: atoms too close" in reason
    some = LabelStats(to_label=4, labelled=1, label_failures=3)
    assert dead_end(0, IterationStats(labelling=some)) is None
    nothing_to_do = LabelStats(to_label=0, labelled=0, label_failures=0)
    assert dead_end(2, IterationStats(labelling=nothing_to_do)) is None


def test_failed_scfs_on_a_later_iteration_are_data_but_all_rejected_is_an_end():
    # Two hard candidates whose SCF did not converge: the loop goes on with what it has.
    hard = LabelStats(
        to_label=2, labelled=0, label_failures=2, label_failure_reasons={"not converged": 2}
    )
    assert dead_end(3, IterationStats(labelling=hard)) is None
    # Every selected geometry refused by the guard: exploration produces only garbage.
    garbage = LabelStats(
        to_label=3,
        labelled=0,
        label_failures=3,
        label_rejected=3,
        label_failure_reasons={"atoms 0 and 1 are 0.1 Å apart": 3},
    )
    reason = dead_end(3, IterationStats(labelling=garbage))
    assert reason is not None and "none of the 3 structures got a usable label" in reason
