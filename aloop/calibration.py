"""A committee's true error on labelled frames, and how its deviation maps to that error.

The committee's max force deviation is a disagreement, not an error: its ratio to the true
error differs between campaigns (0.4 in the data-efficiency study, 2.5 for the demo's
water committee on held-out MD frames). Each iteration therefore compares the exploring
committee with DFT on frames it never trained on (the hold-out) and on the frames it was
sent to label, and fits the ratio. The per-frame error has the deviation's form: the
largest per-atom force error of the committee mean, in eV/Å.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import units

from aloop.records import REF_ENERGY, REF_FORCES, REF_STRESS
from aloop.stats import Calibration, CommitteeError, HoldoutError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ase import Atoms

#: The percentile of the per-frame force error reported as the tail of the hold-out.
TAIL_PERCENTILE = 95
#: Points kept for the dashboard's plot (the fit uses every frame).
MAX_POINTS = 500

#: Frames a fit needs before a calibrated trust window reads its scale: a median of
#: fewer ratios is noise, and the scale also sets where the walkers stop.
MIN_CALIBRATION_FRAMES = 5


@dataclass(frozen=True)
class FrameErrors:
    """A committee against the REF_ labels of some frames, frame by frame."""

    #: Committee max per-atom force deviation (eV/Å), as exploration computes it.
    force_dev_max: np.ndarray
    #: Largest per-atom norm of (committee mean - reference) force (eV/Å).
    force_err_max: np.ndarray
    #: (committee mean - reference) energy per atom (eV/atom).
    energy_err_per_atom: np.ndarray
    #: Every force component's error, one array per frame (eV/Å).
    force_diffs: list[np.ndarray]
    #: (committee mean - reference) stress, Voigt order (GPa), one row per frame; NaN
    #: rows for frames without a reference stress (molecules). None: no frame has one.
    stress_diffs: np.ndarray | None = None

    def take(self, index: Sequence[int] | np.ndarray) -> FrameErrors:
        """The errors of a subset of the frames."""
        idx = np.asarray(index, dtype=int)
        return FrameErrors(
            self.force_dev_max[idx],
            self.force_err_max[idx],
            self.energy_err_per_atom[idx],
            [self.force_diffs[i] for i in idx.tolist()],
            None if self.stress_diffs is None else self.stress_diffs[idx],
        )

    def __len__(self) -> int:
        return len(self.force_dev_max)


def frame_errors(committee: Any, frames: Sequence[Atoms]) -> FrameErrors:
    """One batched committee evaluation of ``frames`` against their REF_ labels."""
    if not frames:
        empty = np.empty(0)
        return FrameErrors(empty, empty, empty, [])
    # Stress is compared on the cells with a reference stress; a molecule, or a cell
    # labelled without one (a PySCF multigrid label), gets a NaN row.
    compared = [bool(a.pbc.all()) and REF_STRESS in a.info for a in frames]
    res = committee.evaluate(frames, stress=any(compared))
    stress_diffs = None
    if any(compared):
        ref = np.array(
            [
                a.info[REF_STRESS] if c else np.full(6, np.nan)
                for a, c in zip(frames, compared, strict=True)
            ],
            dtype=float,
        )
        stress_diffs = (np.asarray(res.stress, dtype=float) - ref) / units.GPa
    n_atoms = np.array([len(a) for a in frames], dtype=float)
    ref_e = np.array([a.info[REF_ENERGY] for a in frames], dtype=float)
    diffs = [
        np.asarray(f, dtype=float) - a.arrays[REF_FORCES]
        for f, a in zip(res.forces, frames, strict=True)
    ]
    return FrameErrors(
        force_dev_max=np.asarray(res.force_dev_max, dtype=float),
        force_err_max=np.array([np.linalg.norm(d, axis=1).max() for d in diffs]),
        energy_err_per_atom=(np.asarray(res.energy, dtype=float) - ref_e) / n_atoms,
        force_diffs=diffs,
        stress_diffs=stress_diffs,
    )


def _stress_rmse(errors: FrameErrors) -> tuple[float | None, int]:
    """RMSE over the Voigt components of the frames with a reference stress (GPa), n."""
    if errors.stress_diffs is None:
        return None, 0
    rows = errors.stress_diffs[np.isfinite(errors.stress_diffs).all(axis=1)]
    if not len(rows):
        return None, 0
    return float(np.sqrt(np.mean(rows**2))), len(rows)


def _force_rmse(errors: FrameErrors) -> float:
    return float(np.sqrt(np.mean(np.concatenate(errors.force_diffs) ** 2)))


def holdout_error(errors: FrameErrors, n_new: int = 0) -> HoldoutError:
    """Energy and force RMSE and the tail of the per-frame force error on a hold-out."""
    if not len(errors):
        return HoldoutError(n=0, n_new=n_new)
    stress_rmse, stress_n = _stress_rmse(errors)
    return HoldoutError(
        n=len(errors),
        n_new=n_new,
        stress_rmse_gpa=stress_rmse,
        stress_n=stress_n,
        energy_rmse_per_atom=float(np.sqrt(np.mean(errors.energy_err_per_atom**2))),
        forces_rmse=_force_rmse(errors),
        forces_max_p95=float(np.percentile(errors.force_err_max, TAIL_PERCENTILE)),
    )


def committee_error(errors: FrameErrors) -> CommitteeError:
    """The error on the newly labelled frames (chosen for high deviation: biased)."""
    if not len(errors):
        return CommitteeError(n=0)
    de = errors.energy_err_per_atom
    df = np.concatenate(errors.force_diffs)
    return CommitteeError(
        n=len(errors),
        energy_rmse_per_atom=float(np.sqrt(np.mean(de**2))),
        energy_mae_per_atom=float(np.mean(np.abs(de))),
        forces_rmse=_force_rmse(errors),
        forces_mae=float(np.mean(np.abs(df))),
        forces_max=float(errors.force_err_max.max()),
    )


def usable_scale(newest_first: Iterable[Calibration | None]) -> float | None:
    """The scale a calibrated trust window reads: the newest one fitted on at least
    :data:`MIN_CALIBRATION_FRAMES` frames, or None when none was yet."""
    for cal in newest_first:
        usable = cal is not None and cal.scale is not None and cal.scale > 0
        if usable and cal.n >= MIN_CALIBRATION_FRAMES:
            return cal.scale
    return None


def fit_calibration(
    errors: FrameErrors,
    previous: Calibration | None = None,
    fresh: np.ndarray | None = None,
) -> Calibration:
    """How the deviation maps to the true per-frame force error.

    ``scale`` is the median of error/deviation and ``scale_90`` its 90th percentile:
    robust to the few frames where the members agree by chance. ``spearman`` measures
    whether the deviation at least ranks frames by error. ``coverage_90`` applies the
    ``previous`` iteration's 90 % bound to the ``fresh`` frames (a mask; default all):
    those the previous fit never saw, so the stated interval is checked out of sample.
    """
    from scipy.stats import spearmanr

    dev, err = errors.force_dev_max, errors.force_err_max
    usable = np.isfinite(dev) & np.isfinite(err) & (dev > 0)
    unseen = (np.ones(dev.size, bool) if fresh is None else np.asarray(fresh, bool))[usable]
    dev, err = dev[usable], err[usable]
    n = int(dev.size)
    if n == 0:
        return Calibration(n=0)
    ratio = err / dev
    rho = float(spearmanr(dev, err).statistic) if n >= 3 and np.ptp(dev) > 0 else None
    coverage = coverage_n = None
    if previous is not None and previous.scale_90 is not None and unseen.any():
        coverage = float(np.mean(err[unseen] <= previous.scale_90 * dev[unseen]))
        coverage_n = int(unseen.sum())
    keep = np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int)
    return Calibration(
        n=n,
        scale=float(np.median(ratio)),
        scale_90=float(np.percentile(ratio, 90)),
        spearman=None if rho is None or not np.isfinite(rho) else rho,
        coverage_90=coverage,
        coverage_n=coverage_n,
        points=[(float(dev[i]), float(err[i])) for i in keep],
    )
