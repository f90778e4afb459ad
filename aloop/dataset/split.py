"""Reproducible train/valid/test splits.

Each structure draws a uniform number from ``sha256(seed:structure_id)``: the draw of a
structure depends only on the seed and its id, never on the order in which structures
arrive. The same query and seed give the same split. (The cut is by rank within a
stratum, so exporting a different set of structures can move those near a boundary.)
Within a stratum (a system, when stratified) the structures are ranked by their draw and
cut at the requested fractions, so the counts are exact and every stratum is split in the
same proportions.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

SPLITS = ("train", "valid", "test")  # not vocabulary: the dataset splits


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> fractions of train, valid, test (they must sum to 1)."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"split {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    finite = all(math.isfinite(p) for p in parts)
    if len(parts) != 3 or not finite or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-9:
        raise ValueError(f"split {text!r}: three non-negative fractions summing to 1 are needed")
    return parts[0], parts[1], parts[2]


def draw(seed: int, structure_id: str) -> float:
    """The structure's uniform draw in [0, 1) for this seed."""
    digest = hashlib.sha256(f"{seed}:{structure_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(
    items: Iterable[tuple[str, str]],
    fractions: Sequence[float],
    seed: int,
    stratify: bool = True,
) -> dict[str, str]:
    """``{structure_id: split}`` for ``(structure_id, stratum)`` pairs.

    Each stratum (one per system when ``stratify``, else one for all) is ranked by draw;
    the first ``round(f_train * n)`` go to train, the next ``round(f_valid * n)`` to valid,
    the rest to test.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for sid, stratum in items:
        groups[stratum if stratify else ""].append(sid)
    out: dict[str, str] = {}
    for ids in groups.values():
        ranked = sorted(ids, key=lambda i: (draw(seed, i), i))
        n = len(ranked)
        n_train = round(fractions[0] * n)
        n_valid = min(n - n_train, round(fractions[1] * n))
        for rank, sid in enumerate(ranked):
            out[sid] = SPLITS[(rank >= n_train) + (rank >= n_train + n_valid)]
    return out
