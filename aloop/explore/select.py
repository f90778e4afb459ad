"""Choosing what DFT labels: drop duplicates, then a diverse subset of the candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Selection:
    """Indices into the candidates: chosen ones, and the others with the reason why not."""

    selected: list[int]
    rejected: dict[int, str] = field(default_factory=dict)


def farthest_point(
    x: np.ndarray, n: int, first: int = 0, weights: np.ndarray | None = None
) -> list[int]:
    """Greedy farthest-point sampling: each pick maximises its distance to those picked.

    With ``weights``, each pick maximises weight x distance instead: a frame twice as
    uncertain counts as twice as far, so diversity is traded against uncertainty.
    """
    if n <= 0 or len(x) == 0:
        return []
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    picked = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    while len(picked) < min(n, len(x)):
        nxt = int(np.argmax(dist * w))
        if dist[nxt] * w[nxt] <= 0:
            break
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return picked


def kmeans_representatives(x: np.ndarray, n: int, seed: int) -> list[int]:
    """One frame per k-means cluster: the one nearest its centroid."""
    from sklearn.cluster import KMeans

    k = min(n, len(x))
    km = KMeans(n_clusters=k, random_state=seed, n_init=4).fit(x)
    reps = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        d = np.linalg.norm(x[members] - km.cluster_centers_[c], axis=1)
        reps.append(int(members[np.argmin(d)]))
    return sorted(reps)


def select(
    descriptors: np.ndarray,
    hashes: list[str],
    uncertainty: np.ndarray,
    max_n: int,
    *,
    method: str = "fps",
    dedupe_distance: float = 1e-3,
    known_hashes: set[str] | frozenset[str] = frozenset(),
    known_descriptors: np.ndarray | None = None,
    seed: int = 0,
) -> Selection:
    """Select at most ``max_n`` diverse candidates of one system.

    Duplicates go first: a content hash already known (labelled or stored earlier in the
    campaign) or repeated, or a descriptor within ``dedupe_distance`` of a known
    structure or of an earlier candidate. From the rest, ``fps`` starts from the most
    uncertain frame and adds the farthest in descriptor space; ``weighted_fps`` does the
    same with each distance multiplied by the frame's uncertainty (query by committee
    with a diversity floor); ``kmeans`` takes the frame nearest each centroid;
    ``random`` draws with ``seed``. Deterministic.
    """
    x = np.asarray(descriptors, dtype=float)
    rejected: dict[int, str] = {}
    keep: list[int] = []
    seen: set[str] = set(known_hashes)
    ref = (
        np.asarray(known_descriptors, dtype=float).reshape(-1, x.shape[1])
        if known_descriptors is not None and len(known_descriptors)
        else np.empty((0, x.shape[1]))
    )
    order = np.argsort(-np.asarray(uncertainty, dtype=float), kind="stable")
    for i in order:
        i = int(i)
        if hashes[i] in seen:
            rejected[i] = "duplicate: same content hash as a stored structure"
            continue
        pool = np.vstack([ref, x[keep]]) if keep else ref
        if len(pool) and np.min(np.linalg.norm(pool - x[i], axis=1)) < dedupe_distance:
            rejected[i] = f"duplicate: descriptor within {dedupe_distance:g} of another"
            continue
        seen.add(hashes[i])
        keep.append(i)
    if method in ("fps", "weighted_fps"):
        # keep is in decreasing uncertainty, so both start from the most uncertain frame
        weights = np.asarray(uncertainty, dtype=float)[keep] if method == "weighted_fps" else None
        chosen_local = farthest_point(x[keep], max_n, first=0, weights=weights) if keep else []
    elif method == "kmeans":
        chosen_local = kmeans_representatives(x[keep], max_n, seed) if keep else []
    elif method == "random":
        rng = np.random.default_rng(seed)
        chosen_local = sorted(
            rng.choice(len(keep), size=min(max_n, len(keep)), replace=False).tolist()
        )
    else:
        raise ValueError(f"unknown diversity method {method!r}")
    chosen = [keep[j] for j in chosen_local]
    for i in keep:
        if i not in chosen:
            rejected[i] = f"not among the {max_n} most diverse ({method})"
    return Selection(selected=sorted(chosen), rejected=rejected)
