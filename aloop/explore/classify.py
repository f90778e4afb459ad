"""Trust-window verdicts and per-system statistics of sampled frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aloop.vocabulary import Verdict

#: The trust-window verdicts, in the order statistics report them.
WINDOW_VERDICTS = (Verdict.ACCURATE, Verdict.CANDIDATE, Verdict.FAILED)


def classify(force_dev_max: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Verdict per frame: accurate (dev < lo), candidate (lo <= dev < hi), failed (>= hi)."""
    if not lo < hi:
        raise ValueError(f"trust window needs lo < hi, got [{lo}, {hi})")
    dev = np.asarray(force_dev_max, dtype=float)
    out = np.full(dev.shape, Verdict.CANDIDATE, dtype=object)
    out[dev < lo] = Verdict.ACCURATE
    out[(dev >= hi) | ~np.isfinite(dev)] = Verdict.FAILED
    return out


#: Verdicts from least to most uncertain: a frame takes the worse of its force and stress.
_SEVERITY = {Verdict.ACCURATE: 0, Verdict.CANDIDATE: 1, Verdict.FAILED: 2}


def worse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame, the more uncertain of two trust-window verdicts."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    pick_b = np.array([_SEVERITY[y] > _SEVERITY[x] for x, y in zip(a, b, strict=True)], bool)
    return np.where(pick_b, b, a)


def classify_frames(
    force_dev_max: np.ndarray,
    before_stop: np.ndarray,
    lo: float,
    hi: float,
    stress_dev: np.ndarray | None = None,
    stress_lo: float = 0.0,
    stress_hi: float = np.inf,
) -> np.ndarray:
    """:func:`classify`, with each frame kept just before an uncertainty stop a candidate.

    Such a frame lies below the walker's stop threshold (else the walker would have
    stopped there) but usually above hi: it is where the committee was about to go
    wrong, the frame the loop most needs labelled, not a failure to leave out.

    ``stress_dev`` (GPa, NaN where a frame has none) is read against
    [stress_lo, stress_hi): a frame's verdict is the worse of its force and its stress.
    """
    out = classify(force_dev_max, lo, hi)
    if stress_dev is not None:
        sdev = np.asarray(stress_dev, dtype=float)
        has = np.isfinite(sdev)
        out[has] = worse(out[has], classify(sdev[has], stress_lo, stress_hi))
    out[np.asarray(before_stop, dtype=bool) & np.isfinite(force_dev_max)] = Verdict.CANDIDATE
    return out


def time_ratio(accurate_frames: Sequence[int], planned_frames: int) -> float:
    """Accurate fraction of the planned walker time.

    Each walker counts its accurate sampled frames out of the ``planned_frames`` it would
    have sampled had it run every step: a walker that blew up at step 20 of 200 adds at
    most 0.1, so a campaign cannot converge while its walkers fail.
    """
    if not len(accurate_frames) or planned_frames <= 0:
        return 0.0
    return float(np.mean([min(a, planned_frames) / planned_frames for a in accurate_frames]))


def adaptive_lower(
    force_dev_max: np.ndarray, hi: float, lo: float, candidate_fraction: float = 0.1
) -> float:
    """DPGEN2-style adaptive lower level: lower ``lo`` so that about
    ``candidate_fraction`` of the frames below ``hi`` become candidates, never raising it."""
    dev = np.asarray(force_dev_max, dtype=float)
    below = np.sort(dev[np.isfinite(dev) & (dev < hi)])
    if below.size == 0:
        return lo
    cut = below[int(np.floor((1 - candidate_fraction) * (below.size - 1)))]
    return float(min(lo, cut))


def statistics(
    verdicts: np.ndarray, force_dev_max: np.ndarray, edges: np.ndarray | None = None
) -> dict:
    """Counts, ratios and a histogram of the max force deviation (plain data)."""
    verdicts = np.asarray(verdicts, dtype=object)
    n = int(verdicts.size)
    counts = {v.value: int((verdicts == v).sum()) for v in WINDOW_VERDICTS}
    dev = np.asarray(force_dev_max, dtype=float)
    edges = np.linspace(0.0, 1.0, 21) if edges is None else np.asarray(edges)
    hist, _ = np.histogram(np.clip(dev[np.isfinite(dev)], edges[0], edges[-1]), bins=edges)
    return {
        "sampled": n,
        **counts,
        **{f"{v}_ratio": (counts[v] / n if n else 0.0) for v in counts},
        "histogram": {"edges": edges.tolist(), "counts": hist.tolist()},
    }


def stress_deviations(frames: Sequence) -> np.ndarray | None:
    """Each frame's stress deviation (GPa, NaN where it has none), or None if none has."""
    devs = [f.stress_dev_gpa for f in frames]
    if all(d is None for d in devs):
        return None
    return np.array([np.nan if d is None else d for d in devs], dtype=float)


def stress_statistics(stress_dev: np.ndarray | None, lo: float | None, hi: float | None) -> dict:
    """The stress side of a system's exploration statistics (GPa; empty without stress).

    The deviation's median and maximum always; with a stress window [lo, hi),
    ``stress_candidate`` and ``stress_failed`` count the frames the stress window alone
    puts in the candidate band or beyond it, whatever their force deviation.
    """
    if stress_dev is None:
        return {}
    dev = stress_dev[np.isfinite(stress_dev)]
    if dev.size == 0:
        return {}
    out = {"stress_dev_median_gpa": float(np.median(dev)), "stress_dev_max_gpa": float(dev.max())}
    if lo is None or hi is None:
        return out
    verdicts = classify(dev, lo, hi)
    return out | {
        "stress_trust_lo_gpa": lo,
        "stress_trust_hi_gpa": hi,
        "stress_candidate": int((verdicts == Verdict.CANDIDATE).sum()),
        "stress_failed": int((verdicts == Verdict.FAILED).sum()),
    }
