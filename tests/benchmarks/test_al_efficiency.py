"""The data-efficiency study's set-up and arithmetic (the study itself runs for an hour)."""

from __future__ import annotations

import numpy as np
import pytest

from aloop.config import parse_config
from benchmarks.al_efficiency import arms
from benchmarks.al_efficiency.report import curves, labels_to_reach, target_summary


def _without(cfg: dict, *keys: str) -> dict:
    return {k: v for k, v in cfg.items() if k not in keys}


@pytest.mark.parametrize("arm", ["al", "al_weighted", "al_kmeans"])
def test_arms_differ_only_in_how_frames_are_chosen(arm):
    a, b = arms.campaign_config(arm, 1), arms.campaign_config("random", 1)
    assert _without(a, "campaign", "description", "select") == _without(
        b, "campaign", "description", "select"
    )
    assert a["select"]["max_per_system"] == b["select"]["max_per_system"]
    assert a["select"]["seed"] == b["select"]["seed"] == 1
    # both are valid campaign files
    for cfg in (a, b):
        parse_config(cfg)


def test_random_arm_never_uses_the_committee_uncertainty():
    from aloop.explore.classify import classify
    from aloop.vocabulary import Verdict

    cfg = parse_config(arms.campaign_config("random", 0))
    window = cfg.select.trust
    deviations = [0.0, 1e-4, 0.3, 5.0, 1e3]
    assert list(classify(deviations, window.lo, window.hi)) == [Verdict.CANDIDATE] * len(deviations)
    # walkers stop at force_dev_factor * hi: far beyond any committee disagreement
    assert cfg.explore.stop.force_dev_factor * window.hi > 1e5
    assert cfg.select.diversity == "random"


def test_seeds_change_every_random_choice_of_the_loop():
    a0, a1 = arms.campaign_config("al", 0), arms.campaign_config("al", 1)
    for section in ("initial", "explore", "select"):
        assert a0[section]["seed"] != a1[section]["seed"]
    assert not set(a0["model"]["seeds"]) & set(a1["model"]["seeds"])


def test_labels_to_reach_interpolates_between_iterations():
    assert labels_to_reach([8, 16, 24], [0.5, 0.3, 0.2], 0.25) == pytest.approx(20.0)
    assert labels_to_reach([8, 16], [0.2, 0.1], 0.3) == 8.0
    assert labels_to_reach([8, 16], [0.5, 0.4], 0.3) is None


def _row(iteration: int, labels: int, forces_rmse: float) -> dict:
    return {
        "iteration": iteration,
        "labels": labels,
        "forces_rmse": forces_rmse,
        "energy_rmse_per_atom": 0.01,
        "member_forces_rmse": forces_rmse + 0.05,
    }


def test_ratio_of_labels_to_the_target():
    rows = {
        "al": {0: [_row(1, 8, 0.4), _row(2, 16, 0.2)]},
        "random": {0: [_row(1, 8, 0.5), _row(2, 32, 0.3)]},
    }
    summary = target_summary(curves(rows), rows, 0.3)
    assert summary["arms"]["al"]["labels"] == pytest.approx(12.0)
    assert summary["arms"]["random"]["labels"] == pytest.approx(32.0)
    assert summary["arms"]["al"]["ratio_to_random"] == pytest.approx(12 / 32)


def test_test_set_frames_carry_the_dft_forces_not_the_constrained_ones():
    """The MD integrator sees FixCom-projected forces; the test set must keep DFT's."""
    from benchmarks.al_efficiency.testset import TestSetPlan, _trajectory
    from dft.calculator import PySCFCalculator
    from dft.settings import LabelSettings

    plan = TestSetPlan(molecule="H2O", steps=4, equilibration_steps=0, interval=2)
    dft = {"method": "HF", "basis": "sto-3g", "conv_tol": 1e-9}
    frames = _trajectory(plan, dft, 600.0, 0, seed=1)
    assert [a.info["step"] for a in frames] == [2, 4]
    for frame in frames:
        fresh = frame.copy()
        fresh.set_constraint()
        fresh.calc = PySCFCalculator(LabelSettings(**dft))
        np.testing.assert_allclose(frame.arrays["REF_forces"], fresh.get_forces(), atol=1e-6)
        assert frame.info["REF_energy"] == pytest.approx(fresh.get_potential_energy(), abs=1e-7)
        # DFT forces on an isolated molecule sum to zero; FixCom's projection does not
        np.testing.assert_allclose(frame.arrays["REF_forces"].sum(axis=0), 0.0, atol=1e-6)


def test_second_test_set_lies_beyond_every_exploration_temperature():
    from benchmarks.al_efficiency.run import BEYOND
    from benchmarks.al_efficiency.testset import TestSetPlan

    explored = arms.COMMON["explore"]["temperatures"]
    assert min(BEYOND.temperatures) > max(explored)
    # the same DFT-driven MD as the main test set, only hotter, with its own seeds
    main = TestSetPlan()
    assert {k: v for k, v in BEYOND.__dict__.items() if k != "temperatures"} == {
        k: v for k, v in main.__dict__.items() if k != "temperatures"
    }
    assert not {s for *_, s in BEYOND.runs()} & {s for *_, s in main.runs()}


def test_report_tables_show_ratios_misses_and_stability_counts():
    from benchmarks.al_efficiency.report import stability_table, target_table

    rows = {
        "al": {0: [_row(1, 8, 0.4), _row(2, 16, 0.2)], 1: [_row(1, 8, 0.4), _row(2, 16, 0.3)]},
        "al_kmeans": {0: [_row(1, 8, 0.5), _row(2, 16, 0.45)]},
        "random": {0: [_row(1, 8, 0.5), _row(2, 16, 0.3)], 1: [_row(1, 8, 0.5), _row(2, 16, 0.3)]},
    }
    curve = curves(rows)
    table = target_table(target_summary(curve, rows, 0.3), curve).splitlines()
    assert table[2].split("|")[2:5] == [" 13.3 ", " 12.0, 16.0 ", " **0.83** "]
    assert "not reached (0.450 at 16)" in table[3] and "> 1" in table[3]
    run = {"stable": 7, "trajectories": 8, "labels": 48}
    stab = stability_table({"settings": {}, "al": {0: run, 1: {**run, "stable": 8}}})
    assert "| 15/16 (94 %) | 7/8, 8/8 | 48 labels |" in stab


def test_the_beyond_exploration_probes_move_one_coordinate_each():
    """Round 3's test set (c): each probe changes only what it says (a torsion by its
    step, a bond by its factor) and leaves the rest of ethanol as it was."""
    from ase.build import molecule

    from benchmarks.al_efficiency.beyond import HYDROXYL, METHYL, STRETCHES, beyond_exploration

    base = molecule("CH3CH2OH")
    frames = beyond_exploration()
    assert len(frames) == 2 * 12 + 2 * len(STRETCHES)
    for atoms in frames:
        probe, value = atoms.info["probe"], atoms.info["value"]
        if probe.endswith("torsion"):
            quad = METHYL if probe == "methyl_torsion" else HYDROXYL
            off = (atoms.get_dihedral(*quad) - base.get_dihedral(*quad) - value) % 360
            assert min(off, 360 - off) < 1e-6
            # bond lengths are untouched by a rigid rotation
            for a, b in ((0, 1), (1, 2), (2, 3)):
                assert atoms.get_distance(a, b) == pytest.approx(base.get_distance(a, b))
        else:
            a, b = (1, 2) if probe == "co_stretch" else (2, 3)
            assert atoms.get_distance(a, b) == pytest.approx(value * base.get_distance(a, b))
            assert atoms.get_distance(0, 1) == pytest.approx(base.get_distance(0, 1))


def test_error_tails_see_the_frame_an_rmse_averages_away():
    """Nine frames off by 0.1 eV/Å and one by 1.0: the pooled RMSE says 0.33, the tail
    says 1.0; an energy error that is one constant shift is no error once shifted."""
    from benchmarks.al_efficiency.evaluate import _rmse, error_tails

    errors = [np.full((9, 3), 0.1) for _ in range(9)] + [np.full((9, 3), 1.0)]
    tails = error_tails(errors, np.full(10, 0.25))
    assert _rmse(np.concatenate(errors)) == pytest.approx(np.sqrt(0.109))
    assert tails["frame_forces_rmse_max"] == pytest.approx(1.0)
    assert tails["frame_forces_rmse_p95"] == pytest.approx(0.1 + 0.55 * 0.9)
    assert tails["energy_rmse_per_atom_shifted"] == pytest.approx(0.0)
    shifted = error_tails(errors, np.array([0.2, 0.3] * 5))["energy_rmse_per_atom_shifted"]
    assert shifted == pytest.approx(0.05)
