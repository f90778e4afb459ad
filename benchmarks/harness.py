"""One way to time the benchmarks: arms alternated round by round, ratios per round.

These machines are shared, so a baseline timed once and then a candidate timed once is not
a measurement: a burst of someone else's work during one of them can turn 3x into 50x.
``alternate`` runs every arm once per round, reversing the order every other round
(A B, B A, A B, ...) so that a slow drift weighs on both arms alike, and ``Timings.ratio``
divides the two arms' times within each round before taking the median, so that a busy
round moves one ratio, not the figure. The spread (min / max and the quartiles of the
per-round ratios) and the load average after each round say how far to trust it; under a
sustained load that slows one arm more than the other, ``fastest_ratio`` (each arm's
least-disturbed round) is the figure to compare with a quiet machine.

    timings = alternate({"mace": baseline, "aloop": candidate}, rounds=5, warmup=1)
    speedup = timings.ratio("mace", "aloop")  # baseline seconds / candidate seconds
    save("committee_bench", {"timings": timings.to_dict(), "speedup": speedup.to_dict()})
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Spread:
    """The median of a few per-round values and how far they scatter.

    Attributes
    ----------
    values : list of float
        One value per round, in the order the rounds ran.
    median, low, high, q1, q3 : float
        Their median, minimum, maximum and first and third quartiles.
    """

    values: list[float]
    median: float
    low: float
    high: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise ``values`` (at least one)."""
        if not values:
            raise ValueError("a spread needs at least one value")
        v = np.asarray(values, dtype=float)
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        return cls([float(x) for x in v], float(med), float(v.min()), float(v.max()), q1, q3)

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """JSON-ready, rounded to ``digits``."""
        return {k: _rounded(v, digits) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.median:.3g} (min {self.low:.3g}, max {self.high:.3g}, n={len(self.values)})"


@dataclass(frozen=True)
class Timings:
    """Seconds per arm and round from ``alternate``.

    Attributes
    ----------
    arms : list of str
        Arm names in the order given.
    seconds : dict of str to list of float
        Per arm, the wall time of each timed round.
    order : list of list of str
        The order the arms ran in, round by round.
    warmup_seconds : dict of str to list of float
        Per arm, the warm-up calls, which no figure uses (a cold start, if wanted).
    loads : list of float
        The 1-minute load average after each round: how busy the machine was.
    results : dict of str to list
        Per arm, what each timed call returned (for counts and checks); not saved.
    """

    arms: list[str]
    seconds: dict[str, list[float]]
    order: list[list[str]]
    warmup_seconds: dict[str, list[float]]
    loads: list[float]
    results: dict[str, list[Any]] = field(repr=False)

    @property
    def rounds(self) -> int:
        """How many timed rounds ran."""
        return len(self.order)

    def median_s(self, arm: str) -> float:
        """The median seconds of ``arm`` over the rounds."""
        return float(np.median(self.seconds[arm]))

    def min_s(self, arm: str) -> float:
        """The fastest round of ``arm``: the one least disturbed by other work."""
        return min(self.seconds[arm])

    def fastest_ratio(self, numerator: str, denominator: str) -> float:
        """``min_s(numerator) / min_s(denominator)``, the two least-disturbed runs.

        A second figure beside ``ratio``: when other work slows one arm more than the
        other (a sustained load, not a burst), every round's ratio moves and so does
        their median, while each arm's fastest round stays near its quiet-machine time.
        """
        return self.min_s(numerator) / self.min_s(denominator)

    def ratio(self, numerator: str, denominator: str) -> Spread:
        """``numerator``'s seconds over ``denominator``'s, round by round.

        ``ratio(baseline, candidate)`` is the candidate's speedup; ``ratio(candidate,
        baseline) - 1`` its overhead.
        """
        pairs = zip(self.seconds[numerator], self.seconds[denominator], strict=True)
        return Spread.of([n / d for n, d in pairs])

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """JSON-ready: rounds, order, per-round and median seconds, warm-up seconds."""
        return {
            "rounds": self.rounds,
            "order": self.order,
            "seconds": {a: _rounded(s, digits) for a, s in self.seconds.items()},
            "median_s": {a: round(self.median_s(a), digits) for a in self.arms},
            "min_s": {a: round(self.min_s(a), digits) for a in self.arms},
            "load_average_1min": _rounded(self.loads, 2),
            "warmup_seconds": {a: _rounded(s, digits) for a, s in self.warmup_seconds.items()},
        }


def alternate(
    arms: Mapping[str, Callable[[], Any]],
    *,
    rounds: int = 5,
    warmup: int = 1,
    warmup_arms: Mapping[str, Callable[[], Any]] | None = None,
    timer: Callable[[], float] = time.perf_counter,
    load: Callable[[], float] = lambda: os.getloadavg()[0],
    on_round: Callable[[int, dict[str, float]], None] | None = None,
) -> Timings:
    """Time every arm once per round, the order reversed every other round.

    Parameters
    ----------
    arms : mapping of str to callable
        Name to a callable taking no arguments; the first is conventionally the baseline.
    rounds : int
        Timed rounds (an odd number gives a median that is one of the rounds).
    warmup : int
        Rounds first that no figure uses (imports, JIT, caches, worker start-up), in the
        same alternation; their seconds are kept as ``warmup_seconds``.
    warmup_arms : mapping of str to callable, optional
        Cheaper stand-ins to warm up with instead of ``arms`` (same names), for arms too
        slow to run once more in full.
    timer : callable
        Clock returning seconds; injected so tests need no wall time.
    load : callable
        How busy the machine is, read after each round (default: 1-minute load average).
    on_round : callable, optional
        Called with (round index, seconds per arm) after each timed round, for progress.

    Returns
    -------
    Timings
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got {rounds}, {warmup}")
    names = list(arms)
    warm = warmup_arms if warmup_arms is not None else arms
    if set(warm) != set(names):
        raise ValueError(f"warmup_arms {sorted(warm)} must name the same arms as {names}")
    warm_s: dict[str, list[float]] = {a: [] for a in names}
    for k in range(warmup):
        for a in _order(names, k):
            warm_s[a].append(timed(warm[a], timer)[0])
    seconds: dict[str, list[float]] = {a: [] for a in names}
    results: dict[str, list[Any]] = {a: [] for a in names}
    order, loads = [], []
    for k in range(rounds):
        # continue the alternation where the warm-up left it, so round 0 is not always A B
        this = _order(names, warmup + k)
        for a in this:
            s, r = timed(arms[a], timer)
            seconds[a].append(s)
            results[a].append(r)
        order.append(this)
        loads.append(load())
        if on_round is not None:
            on_round(k, {a: seconds[a][-1] for a in names})
    return Timings(names, seconds, order, warm_s, loads, results)


def print_round(k: int, seconds: dict[str, float]) -> None:
    """An ``on_round`` that prints each round's seconds as it ends."""
    row = "  ".join(f"{a} {s:.3f} s" for a, s in seconds.items())
    print(f"round {k}: {row}", flush=True)


def machine() -> dict[str, Any]:
    """What the figures were taken on (the README quotes it)."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
    }


def save(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` and ``machine()`` to benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "machine": machine()}, indent=2) + "\n")
    return path


def timed(
    fn: Callable[[], Any], timer: Callable[[], float] = time.perf_counter
) -> tuple[float, Any]:
    """(seconds, result) of one call: for one-off steps that have no second arm."""
    start = timer()
    result = fn()
    return timer() - start, result


def _order(names: list[str], k: int) -> list[str]:
    return names if k % 2 == 0 else names[::-1]


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, list):
        return [round(v, digits) for v in value]
    return round(value, digits) if isinstance(value, float) else value
