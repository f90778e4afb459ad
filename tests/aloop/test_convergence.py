"""Stopping rules: accurate ratio with patience (overall or per system), committee force
error target, iteration cap; the first rule that holds gives the status and reason."""

from __future__ import annotations

from aloop.config import StopConfig
from aloop.convergence import decide
from aloop.initial import rattled_copies, seed_structures


def _it(ratio: float, per_system: tuple[float, ...] = (), force_rmse: float | None = None):
    stats = {
        "accurate_ratio": ratio,
        "systems": [{"name": f"s{i}", "accurate_ratio": r} for i, r in enumerate(per_system)],
    }
    if force_rmse is not None:
        stats["committee_error"] = {"n": 3, "forces_rmse": force_rmse}
    return stats


def test_nothing_decided_before_the_first_exploring_iteration():
    assert not decide([], StopConfig()).stop


def test_accurate_ratio_must_hold_for_patience_consecutive_iterations():
    stop = StopConfig(accurate_ratio=0.9, patience=2, max_iterations=10)
    assert not decide([_it(0.5), _it(0.95)], stop).stop
    assert not decide([_it(0.95), _it(0.85)], stop).stop
    d = decide([_it(0.5), _it(0.92), _it(0.97)], stop)
    assert (d.stop, d.status) == (True, "converged")
    assert "0.920, 0.970" in d.reason and "2 consecutive" in d.reason


def test_per_system_scope_needs_every_system():
    stop = StopConfig(accurate_ratio=0.9, patience=1, scope="per_system")
    # Overall 0.93 would pass; one system at 0.7 does not.
    assert not decide([_it(0.93, (0.99, 0.7))], stop).stop
    d = decide([_it(0.95, (0.99, 0.91))], stop)
    assert d.status == "converged" and "every system" in d.reason


def test_force_error_target_on_newly_labelled_frames():
    stop = StopConfig(accurate_ratio=0.99, force_error_target=0.05, max_iterations=10)
    assert not decide([_it(0.2, force_rmse=0.08)], stop).stop
    d = decide([_it(0.2, force_rmse=0.04)], stop)
    assert d.status == "converged" and "0.0400" in d.reason
    # No frame labelled: no error to compare, no decision from this rule.
    assert not decide([{"accurate_ratio": 0.2, "committee_error": {"n": 0}}], stop).stop


def test_the_cap_stops_but_convergence_wins_on_the_same_iteration():
    stop = StopConfig(accurate_ratio=0.9, patience=1, max_iterations=2)
    d = decide([_it(0.1), _it(0.2)], stop)
    assert (d.status, d.reason) == ("stopped", "iteration cap reached (2)")
    assert decide([_it(0.1), _it(0.95)], stop).status == "converged"


def test_seed_structures_are_reproducible_and_keep_their_parent():
    from ase.build import molecule

    water = molecule("H2O")
    a = seed_structures([water], n_rattled=3, stdev=0.05, seed=1)
    b = seed_structures([water], n_rattled=3, stdev=0.05, seed=1)
    assert [o for _, o, _ in a] == ["initial", "rattled", "rattled", "rattled"]
    assert [p for _, _, p in a] == [None, 0, 0, 0]
    for (x, _, _), (y, _, _) in zip(a, b, strict=True):
        assert (x.positions == y.positions).all()
    moved = rattled_copies(water, 200, 0.05, seed=3)
    disp = [m.positions - water.positions for m in moved]
    import numpy as np

    assert abs(np.std(disp) - 0.05) < 0.005
