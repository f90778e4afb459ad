"""Outlier labels: per-atom energy or force magnitude beyond k robust standard deviations.

Robust statistics (median and 1.4826 x median absolute deviation) per system, so one
absurd label cannot hide itself by inflating the spread, and systems of different
composition are not compared with each other. Every removal is reported with its reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: MAD -> standard deviation for normally distributed values.
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class LabelSummary:
    """The scalars of one label that the filter looks at."""

    structure_id: str
    system: str
    energy_per_atom: float
    max_force: float


def robust_z(values: np.ndarray) -> np.ndarray:
    """|value - median| in robust standard deviations (0 where the spread is 0)."""
    med = np.median(values)
    sd = MAD_TO_SD * np.median(np.abs(values - med))
    if sd == 0:
        return np.zeros_like(values)
    return np.abs(values - med) / sd


def find_outliers(labels: Sequence[LabelSummary], k: float) -> dict[str, str]:
    """``{structure_id: reason}`` for labels beyond ``k`` robust SDs, per system.

    Energy per atom is judged both ways; the largest force magnitude only upwards (small
    forces near a minimum are not suspicious).
    """
    by_system: dict[str, list[LabelSummary]] = defaultdict(list)
    for lab in labels:
        by_system[lab.system].append(lab)
    out: dict[str, str] = {}
    for system, group in by_system.items():
        if len(group) < 3:
            continue  # no spread to judge by
        e = np.array([g.energy_per_atom for g in group])
        f = np.array([g.max_force for g in group])
        ze = robust_z(e)
        med_f = np.median(f)
        sd_f = MAD_TO_SD * np.median(np.abs(f - med_f))
        zf = (f - med_f) / sd_f if sd_f > 0 else np.zeros_like(f)
        for g, a, b in zip(group, ze, zf, strict=True):
            if a > k:
                out[g.structure_id] = (
                    f"{system}: energy per atom {g.energy_per_atom:.6f} eV is {a:.1f} robust "
                    f"SDs from the median {np.median(e):.6f} eV (limit {k:g})"
                )
            elif b > k:
                out[g.structure_id] = (
                    f"{system}: max force {g.max_force:.3f} eV/Å is {b:.1f} robust SDs above "
                    f"the median {med_f:.3f} eV/Å (limit {k:g})"
                )
    return out
