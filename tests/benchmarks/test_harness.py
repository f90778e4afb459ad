"""The benchmark harness: alternation, per-round ratios and their spread, on a fake clock."""

from __future__ import annotations

import json

import pytest

from benchmarks import harness
from benchmarks.harness import Spread, alternate


class FakeClock:
    """A clock that only moves when a fake arm says it spent time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def arm(self, name: str, costs: list[float]):
        """An arm that costs ``costs[i]`` seconds on its i-th call and returns i."""
        it = iter(enumerate(costs))

        def run() -> int:
            i, cost = next(it)
            self.calls.append(name)
            self.now += cost
            return i

        return run


def test_arms_alternate_and_the_order_reverses_every_other_round():
    clock = FakeClock()
    arms = {n: clock.arm(n, [1.0] * 5) for n in "ABC"}
    t = alternate(arms, rounds=3, warmup=2, timer=clock)
    # two warm-up rounds, then the timed ones continue the alternation
    assert clock.calls == [*"ABC", *"CBA", *"ABC", *"CBA", *"ABC"]
    assert t.order == [list("ABC"), list("CBA"), list("ABC")]
    assert t.rounds == 3
    assert t.results == {n: [2, 3, 4] for n in "ABC"}


def test_warm_up_stand_ins_run_instead_of_the_arms():
    clock = FakeClock()
    arms = {"A": clock.arm("A", [4.0, 4.0]), "B": clock.arm("B", [2.0, 2.0])}
    warm = {"A": clock.arm("a", [0.5]), "B": clock.arm("b", [0.25])}
    t = alternate(arms, rounds=2, warmup=1, warmup_arms=warm, timer=clock)
    assert clock.calls == ["a", "b", "B", "A", "A", "B"]
    assert t.warmup_seconds == {"A": [0.5], "B": [0.25]}
    assert t.seconds == {"A": [4.0, 4.0], "B": [2.0, 2.0]}


def test_ratio_is_the_median_of_per_round_ratios_not_of_medians():
    clock = FakeClock()
    # round 1 is "busy" for the baseline only: a sequential pair taken then would say 50x
    base = clock.arm("base", [3.0, 50.0, 3.6, 3.0, 3.3])
    cand = clock.arm("cand", [1.0, 1.0, 1.2, 1.0, 1.1])
    loads = iter([0.5, 9.0, 1.0, 1.0, 1.0])
    t = alternate(
        {"base": base, "cand": cand}, rounds=5, warmup=0, timer=clock, load=lambda: next(loads)
    )
    r = t.ratio("base", "cand")
    assert r.values == pytest.approx([3.0, 50.0, 3.0, 3.0, 3.0])
    assert r.median == pytest.approx(3.0)
    assert (r.low, r.high) == pytest.approx((3.0, 50.0))
    assert (r.q1, r.q3) == pytest.approx((3.0, 3.0))
    assert t.median_s("base") == pytest.approx(3.3)
    assert t.ratio("cand", "base").median == pytest.approx(1 / 3)
    assert t.loads == [0.5, 9.0, 1.0, 1.0, 1.0]
    # each arm's fastest round: 3.0 s and 1.0 s
    assert t.fastest_ratio("base", "cand") == pytest.approx(3.0)


def test_spread_quartiles_and_validation():
    s = Spread.of([4.0, 1.0, 3.0, 2.0])
    assert (s.median, s.low, s.high) == (2.5, 1.0, 4.0)
    assert (s.q1, s.q3) == pytest.approx((1.75, 3.25))
    assert s.values == [4.0, 1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="at least one"):
        Spread.of([])
    with pytest.raises(ValueError, match="rounds"):
        alternate({"A": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="same arms"):
        alternate({"A": lambda: None}, warmup_arms={"B": lambda: None})


def test_on_round_reports_each_round():
    clock = FakeClock()
    seen = []
    alternate(
        {"A": clock.arm("A", [1.0, 2.0]), "B": clock.arm("B", [3.0, 4.0])},
        rounds=2,
        warmup=0,
        timer=clock,
        on_round=lambda k, s: seen.append((k, s)),
    )
    assert seen == [(0, {"A": 1.0, "B": 3.0}), (1, {"A": 2.0, "B": 4.0})]


def test_save_writes_timings_ratio_and_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    clock = FakeClock()
    t = alternate(
        {"A": clock.arm("A", [2.0, 2.0]), "B": clock.arm("B", [1.0, 1.0])},
        rounds=1,
        timer=clock,
    )
    path = harness.save("x", {"timings": t.to_dict(), "speedup": t.ratio("A", "B").to_dict()})
    data = json.loads(path.read_text())
    assert data["timings"]["seconds"] == {"A": [2.0], "B": [1.0]}
    assert data["timings"]["median_s"] == {"A": 2.0, "B": 1.0}
    assert data["timings"]["warmup_seconds"] == {"A": [2.0], "B": [1.0]}
    assert data["timings"]["min_s"] == {"A": 2.0, "B": 1.0}
    assert len(data["timings"]["load_average_1min"]) == 1
    assert data["speedup"]["median"] == 2.0
    assert data["machine"]["cpus"] >= 1


def test_timed_returns_seconds_and_result():
    clock = FakeClock()
    assert harness.timed(clock.arm("A", [1.5]), clock) == (1.5, 0)
