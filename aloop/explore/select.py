"""Choosing what DFT labels: drop duplicates, then a diverse subset of the candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aloop.vocabulary import Rejection, RejectionKind


@dataclass
class Selection:
    """Indices into the candidates: chosen ones, and the others with the reason why not."""

    selected: list[int]
    rejected: dict[int, Rejection] = field(default_factory=dict)


def farthest_point(
    x: np.ndarray,
    n: int,
    first: int = 0,
    weights: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> list[int]:
    """Greedy farthest-point sampling: each pick maximises its distance to those picked.

    With ``weights``, each pick maximises weight x distance instead: a frame twice as
    uncertain counts as twice as far, so diversity is traded against uncertainty.
    With ``known`` (descriptors of what is already labelled), distances count to those
    too, and the first pick is the frame farthest from them instead of ``first``: the
    batch fills the largest gaps in the training set, not the spread of the batch alone.
    """
    if n <= 0 or len(x) == 0:
        return []
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    if known is not None and len(known):
        dist = _distance_to_set(x, np.asarray(known, dtype=float).reshape(-1, x.shape[1]))
        # ties (no known structure near any candidate) go to the lowest index
        first = int(np.argmax(dist * w))
        dist = np.minimum(dist, np.linalg.norm(x - x[first], axis=1))
    else:
        dist = np.linalg.norm(x - x[first], axis=1)
    picked = [first]
    while len(picked) < min(n, len(x)):
        nxt = int(np.argmax(dist * w))
        if dist[nxt] * w[nxt] <= 0:
            break
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return picked


def _distance_to_set(x: np.ndarray, ref: np.ndarray, max_pairs: int = 1 << 22) -> np.ndarray:
    """Each row of ``x``'s Euclidean distance to its nearest row of ``ref``, in chunks
    of at most ``max_pairs`` distances (32 MiB), whatever the sizes."""
    out = np.empty(len(x))
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    chunk = max(1, max_pairs // max(1, len(ref)))
    for s in range(0, len(x), chunk):
        part = x[s : s + chunk]
        sq = np.einsum("ij,ij->i", part, part)[:, None] + ref_sq[None, :] - 2 * part @ ref.T
        out[s : s + chunk] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return out


def kmeans_representatives(
    x: np.ndarray, n: int, seed: int, weights: np.ndarray | None = None
) -> list[int]:
    """One frame per k-means cluster: the one nearest its centroid.

    With ``weights`` (uncertainties) the clustering is weighted (k-means' sample
    weights): centroids move toward uncertain regions, and uncertain frames that stand
    apart get clusters of their own.
    """
    from sklearn.cluster import KMeans

    k = min(n, len(x))
    km = KMeans(n_clusters=k, random_state=seed, n_init=4).fit(x, sample_weight=weights)
    reps = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        d = np.linalg.norm(x[members] - km.cluster_centers_[c], axis=1)
        reps.append(int(members[np.argmin(d)]))
    return sorted(reps)


def drop_duplicates(
    x: np.ndarray,
    hashes: list[str],
    uncertainty: np.ndarray,
    dedupe_distance: float,
    known_hashes: set[str] | frozenset[str],
    known_descriptors: np.ndarray | None,
) -> tuple[list[int], dict[int, Rejection]]:
    """Candidates left after duplicates go, most uncertain first, and the duplicates.

    A duplicate has a content hash already known or repeated, or a descriptor within
    ``dedupe_distance`` of a known structure or of a more uncertain kept candidate.
    """
    rejected: dict[int, Rejection] = {}
    keep: list[int] = []
    seen: set[str] = set(known_hashes)
    ref = (
        np.asarray(known_descriptors, dtype=float).reshape(-1, x.shape[1])
        if known_descriptors is not None and len(known_descriptors)
        else np.empty((0, x.shape[1]))
    )
    order = np.argsort(-np.asarray(uncertainty, dtype=float), kind="stable")  # not vocabulary
    for i in order.tolist():
        if hashes[i] in seen:
            rejected[i] = Rejection(
                RejectionKind.SAME_HASH, "duplicate: same content hash as a stored structure"
            )
            continue
        pool = np.vstack([ref, x[keep]]) if keep else ref
        if len(pool) and np.min(np.linalg.norm(pool - x[i], axis=1)) < dedupe_distance:
            rejected[i] = Rejection(
                RejectionKind.NEAR_DESCRIPTOR,
                f"duplicate: descriptor within {dedupe_distance:g} of another",
            )
            continue
        seen.add(hashes[i])
        keep.append(i)
    return keep, rejected


def _diverse(
    x: np.ndarray,
    uncertainty: np.ndarray,
    max_n: int,
    method: str,
    seed: int,
    known: np.ndarray | None = None,
) -> list[int]:
    """Indices into ``x`` (ordered by decreasing uncertainty) that ``method`` picks."""
    if method in ("fps", "weighted_fps"):
        # x is in decreasing uncertainty, so both start from the most uncertain frame
        weights = uncertainty if method == "weighted_fps" else None
        return farthest_point(x, max_n, first=0, weights=weights) if len(x) else []
    if method == "seeded_fps":
        return farthest_point(x, max_n, known=known) if len(x) else []
    if method in ("kmeans", "weighted_kmeans"):
        weights = uncertainty if method == "weighted_kmeans" else None
        return kmeans_representatives(x, max_n, seed, weights) if len(x) else []
    if method == "random":
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(len(x), size=min(max_n, len(x)), replace=False).tolist())
    raise ValueError(f"unknown diversity method {method!r}")


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
    training_descriptors: np.ndarray | None = None,
    seed: int = 0,
) -> Selection:
    """Select at most ``max_n`` diverse candidates of one system.

    Duplicates go first (:func:`drop_duplicates`). From the rest, ``fps`` starts from
    the most uncertain frame and adds the farthest in descriptor space; ``weighted_fps``
    does the same with each distance multiplied by the frame's uncertainty (query by
    committee with a diversity floor); ``seeded_fps`` counts distances to the training
    set too (``training_descriptors``; the hold-out is known for de-duplication but is
    not learnt from, so it repels nothing here), so it starts from the candidate
    farthest from the training set; ``kmeans`` takes the frame nearest
    each centroid, ``weighted_kmeans`` the same with the clustering weighted by
    uncertainty; ``random`` draws with ``seed``. Deterministic.
    """
    x = np.asarray(descriptors, dtype=float)
    unc = np.asarray(uncertainty, dtype=float)
    keep, rejected = drop_duplicates(
        x, hashes, unc, dedupe_distance, known_hashes, known_descriptors
    )
    chosen = {
        keep[j] for j in _diverse(x[keep], unc[keep], max_n, method, seed, training_descriptors)
    }
    for i in keep:
        if i not in chosen:
            rejected[i] = Rejection(
                RejectionKind.NOT_DIVERSE, f"not among the {max_n} most diverse ({method})"
            )
    return Selection(selected=sorted(chosen), rejected=rejected)
