"""Calibration of the committee deviation against true error, and the hold-out error.

The deviation/error ratio differs between campaigns (0.4 and 2.5 were measured), so the
fit must recover a known ratio, say how well the deviation ranks frames, and check its
stated 90 % bound out of sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from aloop.calibration import FrameErrors, committee_error, fit_calibration, holdout_error


def _errors(dev: np.ndarray, err: np.ndarray, n_atoms: int = 3) -> FrameErrors:
    """Frames whose largest per-atom force error is ``err`` (all on atom 0, along x)."""
    diffs = []
    for e in err:
        d = np.zeros((n_atoms, 3))
        d[0, 0] = e
        diffs.append(d)
    return FrameErrors(dev, np.asarray(err, float), np.full(len(dev), 0.01), diffs)


def test_the_fit_recovers_a_known_ratio_and_ranks_by_error():
    rng = np.random.default_rng(1)
    dev = rng.uniform(0.02, 0.5, 400)
    err = 2.5 * dev * rng.lognormal(0.0, 0.2, 400)  # true error 2.5x the deviation
    cal = fit_calibration(_errors(dev, err))
    assert cal.n == 400
    assert cal.scale == pytest.approx(2.5, rel=0.05)
    assert cal.scale_90 > cal.scale
    assert cal.spearman > 0.9
    assert cal.coverage_90 is None  # nothing to check it against yet
    assert len(cal.points) == 400 and cal.points[0] == (dev[0], err[0])


def test_the_90_percent_bound_is_checked_on_the_next_frames():
    rng = np.random.default_rng(2)
    dev = rng.uniform(0.02, 0.5, 300)
    first = fit_calibration(_errors(dev, 0.4 * dev * rng.lognormal(0, 0.3, 300)))
    same = fit_calibration(_errors(dev, 0.4 * dev * rng.lognormal(0, 0.3, 300)), first)
    assert same.coverage_90 == pytest.approx(0.9, abs=0.06)
    # the committee became overconfident: its old bound now covers far fewer frames
    worse = fit_calibration(_errors(dev, 1.2 * dev * rng.lognormal(0, 0.3, 300)), first)
    assert worse.coverage_90 < 0.2


def test_coverage_is_read_only_on_frames_the_previous_fit_never_saw():
    rng = np.random.default_rng(3)
    dev = rng.uniform(0.02, 0.5, 200)
    first = fit_calibration(_errors(dev, 0.4 * dev * rng.lognormal(0, 0.3, 200)))
    # 100 frames the previous fit saw (well inside its bound), 100 new ones far outside
    err = np.concatenate([0.3 * dev[:100], 3.0 * dev[100:]])
    fresh = np.arange(200) >= 100
    cal = fit_calibration(_errors(dev, err), first, fresh=fresh)
    assert cal.coverage_n == 100
    assert cal.coverage_90 == 0.0  # diluting with the seen frames would report 50 %
    assert cal.n == 200  # the fit itself uses every frame


def test_deviation_that_does_not_rank_errors_is_reported_as_such():
    rng = np.random.default_rng(3)
    dev = rng.uniform(0.02, 0.5, 300)
    cal = fit_calibration(_errors(dev, rng.uniform(0.02, 0.5, 300)))
    assert abs(cal.spearman) < 0.15


def test_frames_without_a_usable_deviation_are_left_out_of_the_fit():
    cal = fit_calibration(_errors(np.array([0.0, 0.1, 0.2]), np.array([0.3, 0.2, 0.4])))
    assert cal.n == 2 and cal.scale == pytest.approx(2.0)
    assert cal.spearman is None  # too few frames to rank
    assert fit_calibration(_errors(np.zeros(0), np.zeros(0))).n == 0


def test_holdout_error_reports_its_sample_size_and_tail():
    err = np.linspace(0.01, 1.0, 100)
    held = holdout_error(_errors(np.full(100, 0.1), err), n_new=4)
    assert (held.n, held.n_new) == (100, 4)
    assert held.forces_max_p95 == pytest.approx(np.percentile(err, 95))
    assert held.forces_rmse == pytest.approx(np.sqrt(np.mean(err**2) / 9))  # 9 components
    assert held.energy_rmse_per_atom == pytest.approx(0.01)
    assert "on 100 hold-out frames" in held.describe()
    assert holdout_error(_errors(np.zeros(0), np.zeros(0))).describe() == (
        "no hold-out frames labelled"
    )
    assert committee_error(_errors(np.full(3, 0.1), np.array([0.1, 0.5, 0.2]))).forces_max == 0.5


def test_holdout_stress_error_is_read_on_the_cells_with_a_reference_stress():
    from ase import Atoms, units

    from aloop.calibration import frame_errors
    from aloop.models.committee import CommitteeResult
    from aloop.records import REF_ENERGY, REF_FORCES, REF_STRESS

    class FixedCommittee:
        """Stands in for a trained committee: its prediction is chosen here, so the
        error the hold-out must report is known exactly."""

        def __init__(self, stress):
            self.stress = np.asarray(stress, float)
            self.asked_for_stress = None

        def evaluate(self, frames, stress=False):
            self.asked_for_stress = stress
            n = len(frames)
            return CommitteeResult(
                energy=np.zeros(n),
                energy_std=np.zeros(n),
                forces=[np.zeros((len(a), 3)) for a in frames],
                force_std=[np.zeros((len(a), 3)) for a in frames],
                force_dev_max=np.full(n, 0.1),
                force_dev_mean=np.full(n, 0.1),
                stress=self.stress[:n] if stress else None,
            )

    def cell(ref_stress_gpa):
        a = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[3, 3, 3], pbc=True)
        a.info[REF_ENERGY] = 0.0
        a.arrays[REF_FORCES] = np.zeros((2, 3))
        if ref_stress_gpa is not None:
            a.info[REF_STRESS] = np.full(6, ref_stress_gpa) * units.GPa
        return a

    predicted = np.full((3, 6), 1.0) * units.GPa  # 1 GPa on every component
    committee = FixedCommittee(predicted)
    errors = frame_errors(committee, [cell(0.5), cell(1.3), cell(None)])
    assert committee.asked_for_stress is True
    held = holdout_error(errors)
    # errors 0.5 and -0.3 GPa on every component; the cell without a stress is left out
    assert held.stress_n == 2
    assert held.stress_rmse_gpa == pytest.approx(np.sqrt((0.5**2 + 0.3**2) / 2))
    assert "GPa stress RMSE on 2" in held.describe()
    # a molecule among the cells leaves the cells' stress error as it was
    mol = cell(None)
    mol.pbc = False
    mol.cell = np.zeros((3, 3))
    mixed = holdout_error(frame_errors(committee, [cell(0.5), mol, cell(1.3)]))
    assert mixed.stress_n == 2 and mixed.stress_rmse_gpa == pytest.approx(held.stress_rmse_gpa)
    # molecules alone: no stress asked for, none reported
    no_stress = holdout_error(frame_errors(committee, [mol]))
    assert committee.asked_for_stress is False
    assert no_stress.stress_rmse_gpa is None and no_stress.stress_n == 0
