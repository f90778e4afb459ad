"""Stopping rules: accurate walker-time ratio with patience (overall or per system), the
adaptive lo's DPGEN2 semantics, the hold-out force error target, iteration cap; the first
rule that holds gives the status, the rule and its numbers."""

from __future__ import annotations

import numpy as np

from aloop.config import InitialConfig, StopConfig
from aloop.convergence import decide
from aloop.explore.classify import adaptive_lower, classify, statistics, time_ratio
from aloop.initial import rattled_copies, seed_structures
from aloop.stats import ExploreStats, Histogram, HoldoutError, IterationStats, SystemStats
from aloop.vocabulary import CampaignStatus, Origin, StopRule

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
        walkers_completed=1,
    )


def _it(
    ratio: float,
    per_system: tuple[float, ...] = (),
    force_rmse: float | None = None,
    holdout_n: int = 12,
) -> IterationStats:
    """An exploring iteration's statistics: the overall accurate ratio, those per system,
    and the committee's force error on the accumulated hold-out."""
    systems = [_system(f"s{i}", r) for i, r in enumerate(per_system or (ratio,))]
    explore = ExploreStats.of(systems).model_copy(update={"accurate_ratio": ratio})
    err = None if force_rmse is None else HoldoutError(n=holdout_n, forces_rmse=force_rmse)
    return IterationStats(explore=explore, holdout_error=err)


def test_nothing_decided_before_the_first_exploring_iteration():
    assert not decide([], StopConfig()).stop


def test_accurate_ratio_must_hold_for_patience_consecutive_iterations():
    stop = StopConfig(accurate_ratio=0.9, patience=2, max_iterations=10)
    assert not decide([_it(0.5), _it(0.95)], stop).stop
    assert not decide([_it(0.95), _it(0.85)], stop).stop
    d = decide([_it(0.5), _it(0.92), _it(0.97)], stop)
    assert (d.stop, d.status) == (True, CampaignStatus.CONVERGED)
    assert "0.920, 0.970" in d.reason and "for 2 iterations" in d.reason
    assert d.rule is StopRule.ACCURATE_RATIO


def test_per_system_scope_needs_every_system():
    stop = StopConfig(accurate_ratio=0.9, patience=1, scope="per_system")
    # Overall 0.93 would pass; one system at 0.7 does not.
    assert not decide([_it(0.93, (0.99, 0.7))], stop).stop
    d = decide([_it(0.95, (0.99, 0.91))], stop)
    assert d.status is CampaignStatus.CONVERGED and "every system" in d.reason


def test_force_error_target_reads_the_holdout_once_it_is_large_enough():
    stop = StopConfig(
        accurate_ratio=0.99, force_error_target=0.05, holdout_min_frames=10, max_iterations=10
    )
    assert not decide([_it(0.2, force_rmse=0.08)], stop).stop
    d = decide([_it(0.2, force_rmse=0.04)], stop)
    assert d.status is CampaignStatus.CONVERGED and d.rule is StopRule.HOLDOUT_ERROR
    assert "hold-out force RMSE 0.0400" in d.reason and "on 12 hold-out frames" in d.reason
    # Below the minimum sample size, a small error is not evidence.
    assert not decide([_it(0.2, force_rmse=0.001, holdout_n=9)], stop).stop
    # Nor is it while walkers blow up: their frames are few and never failed ones.
    unstable = _it(0.2, force_rmse=0.001)
    system = unstable.explore.systems[0].model_copy(update={"walkers": 4, "walkers_completed": 3})
    unstable = unstable.model_copy(update={"explore": ExploreStats.of([system])})
    assert not decide([unstable], stop).stop
    assert decide([unstable], stop.model_copy(update={"min_completed_walkers": 0.75})).stop
    # No hold-out labelled: no error to compare, no decision from this rule.
    stored = {"accurate_ratio": 0.2, "systems": [], "holdout_error": {"n": 0}}
    stored.update(sampled=0, accurate=0, candidate=0, failed=0)
    assert not decide([IterationStats.from_doc(stored, 1)], stop).stop


def test_the_error_on_newly_labelled_frames_is_no_stopping_rule():
    """They were picked for high deviation: biased, so they decide nothing."""
    stored = {"accurate_ratio": 0.2, "systems": [], "sampled": 9, "accurate": 2}
    stored.update(candidate=7, failed=0, committee_error={"n": 20, "forces_rmse": 0.001})
    stop = StopConfig(accurate_ratio=0.99, force_error_target=0.05, max_iterations=10)
    assert not decide([IterationStats.from_doc(stored, 1)], stop).stop


def _explored(dev_per_walker: list[np.ndarray], planned: int, lo: float, hi: float, adaptive):
    """A system's exploration statistics as the explore stage makes them."""
    dev = np.concatenate(dev_per_walker)
    level = adaptive_lower(dev, hi, lo) if adaptive else lo
    verdicts = classify(dev, level, hi)
    accurate = [int((d < lo).sum()) for d in dev_per_walker]
    return SystemStats(
        name="water",
        **statistics(verdicts, dev),
        trust_lo=level,
        trust_hi=hi,
        walkers=len(dev_per_walker),
        md_steps=100,
        committee_calls=100,
        fixed_lo=lo,
        time_ratio=time_ratio(accurate, planned),
    )


def test_adaptive_lo_can_converge_at_a_095_target():
    """DPGEN2's semantics: adaptive lo keeps ~10 % of frames candidates, so the ratio on
    it can never pass 0.90; convergence reads the fixed lo, with the level settled."""
    rng = np.random.default_rng(0)
    stop = StopConfig(accurate_ratio=0.95, patience=2, max_iterations=10)
    history = []
    for _ in range(3):  # a committee accurate everywhere: every frame below the fixed lo
        devs = [rng.uniform(0.01, 0.03, size=20) for _ in range(4)]
        system = _explored(devs, planned=20, lo=0.05, hi=0.3, adaptive=True)
        assert system.accurate_ratio <= 0.91  # what today's rule compared
        history.append(IterationStats(explore=ExploreStats.of([system])))
    d = decide(history, stop, adaptive_lo=True)
    assert d.stop and d.status is CampaignStatus.CONVERGED and d.rule is StopRule.ADAPTIVE_LO
    assert "adaptive lo settled" in d.reason and "on the fixed lo" in d.reason


def test_adaptive_lo_still_moving_does_not_converge():
    stop = StopConfig(accurate_ratio=0.95, patience=2, max_iterations=10)
    history = []
    for high in (0.045, 0.030, 0.015):  # the level keeps falling
        devs = [np.linspace(0.005, high, 20) for _ in range(4)]
        system = _explored(devs, planned=20, lo=0.05, hi=0.3, adaptive=True)
        history.append(IterationStats(explore=ExploreStats.of([system])))
    assert not decide(history, stop, adaptive_lo=True).stop
    # the same ratios without adaptive lo converge on the ratio alone
    assert decide(history, stop, adaptive_lo=False).rule is StopRule.ACCURATE_RATIO


def test_a_walker_that_blew_up_counts_against_convergence():
    """Four walkers with 20 planned frames; one stopped at its second frame. Every frame
    sampled was accurate (frame ratio 1.0, which today's rule compared), but a quarter of
    the walker time is missing."""
    devs = [np.full(20, 0.01), np.full(20, 0.01), np.full(20, 0.01), np.full(2, 0.01)]
    system = _explored(devs, planned=20, lo=0.05, hi=0.3, adaptive=False)
    assert system.accurate_ratio == 1.0
    assert system.time_ratio == (3 + 2 / 20) / 4
    stop = StopConfig(accurate_ratio=0.95, patience=1, max_iterations=10)
    assert not decide([IterationStats(explore=ExploreStats.of([system]))], stop).stop
    whole = _explored([np.full(20, 0.01)] * 4, planned=20, lo=0.05, hi=0.3, adaptive=False)
    assert decide([IterationStats(explore=ExploreStats.of([whole]))], stop).stop


def test_the_cap_stops_but_convergence_wins_on_the_same_iteration():
    stop = StopConfig(accurate_ratio=0.9, patience=1, max_iterations=2)
    d = decide([_it(0.1), _it(0.2)], stop)
    assert (d.status, d.reason) == (CampaignStatus.STOPPED, "iteration cap reached (2)")
    assert d.rule is StopRule.ITERATION_CAP
    assert decide([_it(0.1), _it(0.95)], stop).status is CampaignStatus.CONVERGED


def test_seed_structures_are_reproducible_and_keep_their_parent():
    from ase.build import molecule

    water = molecule("H2O")
    initial = InitialConfig(
        rattled_per_structure=3, rattle_stdev=0.05, seed=1, strained_per_structure=2
    )
    a = seed_structures([water], initial)  # a molecule: no strained copies
    b = seed_structures([water], initial)
    assert [o for _, o, _ in a] == [Origin.INITIAL, Origin.RATTLED, Origin.RATTLED, Origin.RATTLED]
    assert [p for _, _, p in a] == [None, 0, 0, 0]
    for (x, _, _), (y, _, _) in zip(a, b, strict=True):
        assert (x.positions == y.positions).all()
    moved = rattled_copies(water, 200, 0.05, seed=3)
    disp = [m.positions - water.positions for m in moved]
    assert abs(np.std(disp) - 0.05) < 0.005


def test_periodic_seeds_include_strained_cells_over_the_configured_range():
    from ase.build import bulk

    cell = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    initial = InitialConfig(
        rattled_per_structure=2,
        strained_per_structure=40,
        max_volumetric_strain=0.08,
        max_shear_strain=0.04,
        seed=5,
    )
    seeds = seed_structures([cell], initial)
    assert [o for _, o, _ in seeds].count(Origin.STRAINED) == 40
    strained = [a for a, o, _ in seeds if o is Origin.STRAINED]
    assert all(p == 0 for _, o, p in seeds if o is Origin.STRAINED)
    ratios = np.array([a.get_volume() / cell.get_volume() for a in strained])
    # isotropic strain of +-8 % spans volumes 0.78-1.26; the draw covers both sides
    assert ratios.min() < 0.9 and ratios.max() > 1.1
    assert ratios.min() > 0.92**3 * 0.97 and ratios.max() < 1.08**3 * 1.03
    shears = np.array(
        [np.abs(a.cell.array - np.diag(np.diag(a.cell.array))).max() for a in strained]
    )
    assert shears.max() > 0.01 * 5.64 and shears.max() < 2 * 0.04 * 5.64 * 1.1
    # atoms move with the cell (fractional coordinates kept, then rattled)
    frac = [a.get_scaled_positions(wrap=False) - cell.get_scaled_positions() for a in strained]
    assert np.abs(frac).max() < 0.1
    again = seed_structures([cell], initial)
    for (x, _, _), (y, _, _) in zip(seeds, again, strict=True):
        assert (x.cell.array == y.cell.array).all() and (x.positions == y.positions).all()


def test_a_stress_target_holds_the_holdout_rule_until_the_stress_error_is_met():
    stop = StopConfig(
        accurate_ratio=0.99,
        force_error_target=0.05,
        stress_error_target_gpa=0.2,
        holdout_min_frames=10,
        max_iterations=10,
    )

    def it(stress_rmse: float | None) -> IterationStats:
        base = _it(0.2, force_rmse=0.04)
        held = HoldoutError(
            n=12, forces_rmse=0.04, stress_rmse_gpa=stress_rmse, stress_n=12 if stress_rmse else 0
        )
        return base.model_copy(update={"holdout_error": held})

    assert not decide([it(0.35)], stop).stop  # forces are good, the stress is not
    assert not decide([it(None)], stop).stop  # a stress target with no stress measured
    d = decide([it(0.12)], stop)
    assert d.status is CampaignStatus.CONVERGED and d.rule is StopRule.HOLDOUT_ERROR
    assert "stress RMSE 0.120 GPa < target 0.2 GPa on 12 cells" in d.reason
    # without a stress target, the force rule alone decides, as for molecules
    plain = stop.model_copy(update={"stress_error_target_gpa": None})
    assert decide([it(0.35)], plain).stop
