"""Stopping rules: accurate ratio with patience (overall or per system), committee force
error target, iteration cap; the first rule that holds gives the status and reason."""

from __future__ import annotations

from aloop.config import StopConfig
from aloop.convergence import decide
from aloop.initial import rattled_copies, seed_structures
from aloop.stats import CommitteeError, ExploreStats, Histogram, IterationStats, SystemStats
from aloop.vocabulary import CampaignStatus, Origin

_N = 100  # frames sampled per system


def _system(name: str, ratio: float) -> SystemStats:
    accurate = round(ratio * _N)
    return SystemStats(
        name=name,
        sampled=_N,
        accurate=accurate,
        candidate=_N - accurate,
        failed=0,
        accurate_ratio=ratio,
        candidate_ratio=1 - ratio,
        failed_ratio=0.0,
        histogram=Histogram(edges=[0.0, 1.0], counts=[_N]),
        trust_lo=0.05,
        trust_hi=0.3,
        walkers=1,
        md_steps=10,
        committee_calls=10,
    )


def _it(
    ratio: float, per_system: tuple[float, ...] = (), force_rmse: float | None = None
) -> IterationStats:
    """An exploring iteration's statistics: the overall accurate ratio, those per system,
    and the committee's force error on newly labelled frames."""
    systems = [_system(f"s{i}", r) for i, r in enumerate(per_system)]
    explore = ExploreStats.of(systems) if systems else None
    if explore is not None:
        explore = explore.model_copy(update={"accurate_ratio": ratio})
    else:
        explore = ExploreStats(
            systems=[], sampled=0, accurate=0, candidate=0, failed=0, accurate_ratio=ratio
        )
    err = None if force_rmse is None else CommitteeError(n=3, forces_rmse=force_rmse)
    return IterationStats(explore=explore, committee_error=err)


def test_nothing_decided_before_the_first_exploring_iteration():
    assert not decide([], StopConfig()).stop


def test_accurate_ratio_must_hold_for_patience_consecutive_iterations():
    stop = StopConfig(accurate_ratio=0.9, patience=2, max_iterations=10)
    assert not decide([_it(0.5), _it(0.95)], stop).stop
    assert not decide([_it(0.95), _it(0.85)], stop).stop
    d = decide([_it(0.5), _it(0.92), _it(0.97)], stop)
    assert (d.stop, d.status) == (True, CampaignStatus.CONVERGED)
    assert "0.920, 0.970" in d.reason and "2 consecutive" in d.reason


def test_per_system_scope_needs_every_system():
    stop = StopConfig(accurate_ratio=0.9, patience=1, scope="per_system")
    # Overall 0.93 would pass; one system at 0.7 does not.
    assert not decide([_it(0.93, (0.99, 0.7))], stop).stop
    d = decide([_it(0.95, (0.99, 0.91))], stop)
    assert d.status is CampaignStatus.CONVERGED and "every system" in d.reason


def test_force_error_target_on_newly_labelled_frames():
    stop = StopConfig(accurate_ratio=0.99, force_error_target=0.05, max_iterations=10)
    assert not decide([_it(0.2, force_rmse=0.08)], stop).stop
    d = decide([_it(0.2, force_rmse=0.04)], stop)
    assert d.status is CampaignStatus.CONVERGED and "0.0400" in d.reason
    # No frame labelled: no error to compare, no decision from this rule.
    stored = {"accurate_ratio": 0.2, "systems": [], "committee_error": {"n": 0}}
    stored.update(sampled=0, accurate=0, candidate=0, failed=0)
    assert not decide([IterationStats.from_doc(stored, 1)], stop).stop


def test_the_cap_stops_but_convergence_wins_on_the_same_iteration():
    stop = StopConfig(accurate_ratio=0.9, patience=1, max_iterations=2)
    d = decide([_it(0.1), _it(0.2)], stop)
    assert (d.status, d.reason) == (CampaignStatus.STOPPED, "iteration cap reached (2)")
    assert decide([_it(0.1), _it(0.95)], stop).status is CampaignStatus.CONVERGED


def test_seed_structures_are_reproducible_and_keep_their_parent():
    from ase.build import molecule

    water = molecule("H2O")
    a = seed_structures([water], n_rattled=3, stdev=0.05, seed=1)
    b = seed_structures([water], n_rattled=3, stdev=0.05, seed=1)
    assert [o for _, o, _ in a] == [Origin.INITIAL, Origin.RATTLED, Origin.RATTLED, Origin.RATTLED]
    assert [p for _, _, p in a] == [None, 0, 0, 0]
    for (x, _, _), (y, _, _) in zip(a, b, strict=True):
        assert (x.positions == y.positions).all()
    moved = rattled_copies(water, 200, 0.05, seed=3)
    disp = [m.positions - water.positions for m in moved]
    import numpy as np

    assert abs(np.std(disp) - 0.05) < 0.005
