"""Batched committee MD: ASE's thermostat holds its temperature; walkers stop for cause.

Temperature test: 8 water walkers, Langevin at 300 K, friction 0.05/fs (correlation time
~40 steps of 0.5 fs), 1,000 steps after 200 of equilibration: ~200 independent samples of
a 6-degree-of-freedom kinetic temperature (relative spread sqrt(2/6) = 0.58), so the mean
is known to ~4 %; the tolerance is 15 % (beyond 3.5 sigma). ASE's temperature counts
3N - 3 degrees of freedom: the centre of mass is held fixed (FixCom).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from aloop.explore.walkers import (
    CELL_COLLAPSED,
    CELL_EXPLODED,
    MDSettings,
    WalkerSpec,
    run_walkers,
    stop_reason,
)
from aloop.models.committee import Committee
from aloop.models.io import load_model


@pytest.fixture
def committee(water_committee):
    _, _, members = water_committee
    return Committee([load_model(m.weights, m.sha256) for m in members])


def test_nvt_walkers_hold_their_temperature(committee):
    specs = [WalkerSpec("water", molecule("H2O"), 300.0, seed=i, walker=i) for i in range(8)]
    md = MDSettings(
        ensemble="nvt",
        timestep_fs=0.5,
        friction_per_fs=0.05,
        steps=1200,
        sample_interval=100,
        stop_force_dev=1e9,
        max_bond_stretch=4.0,
    )
    results, calls = run_walkers(committee, specs, md)
    assert [r.stop_reason for r in results] == ["steps"] * 8
    assert calls == 1201  # one batched call per step for all walkers (plus the first)
    temps = np.concatenate([r.temperatures[200:] for r in results])
    assert temps.mean() == pytest.approx(300.0, rel=0.15)
    frames = [f for r in results for f in r.frames]
    assert len(frames) == 8 * 12
    f = frames[0]
    assert (f.system, f.temperature, f.step) == ("water", 300.0, 100)
    assert f.force_dev_max >= f.force_dev_mean >= 0


def test_walker_in_a_bad_region_stops_with_the_reason(committee):
    far = molecule("H2O")
    far.positions[1] += [6.0, 0, 0]  # an H 6 Å away: the molecule has come apart
    close = Atoms("H2O", positions=[[0, 0, 0], [0.2, 0, 0], [0, 0.96, 0]])
    specs = [
        WalkerSpec("water", molecule("H2O"), 300.0, seed=1, walker=0),
        WalkerSpec("water", far, 300.0, seed=2, walker=1),
        WalkerSpec("water", close, 300.0, seed=3, walker=2),
        WalkerSpec("water", molecule("H2O"), 300.0, seed=4, walker=3),
    ]
    md = MDSettings(steps=30, sample_interval=5, stop_force_dev=1e9)
    results, _ = run_walkers(committee, specs, md)
    assert [r.stop_reason for r in results] == ["steps", "fragmented", "too close", "steps"]
    assert results[1].frames == [] and results[1].steps_done == 0
    # an uncertainty limit below any committee's spread stops at the first step
    results, _ = run_walkers(committee, specs[:1], MDSettings(steps=30, stop_force_dev=0.0))
    assert results[0].stop_reason == "uncertainty" and results[0].frames == []


def test_stop_reason_uses_the_minimum_image_in_cells():
    a = Atoms("H2", positions=[[0.05, 0, 0], [4.9, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert stop_reason(a, 0.0, MDSettings()) == "too close"
    a.pbc = False
    assert stop_reason(a, 0.0, MDSettings()) == "fragmented"


def _water_box() -> Atoms:
    """Two waters in a periodic box of mostly vacuum (it shrinks fast under pressure)."""
    box = molecule("H2O") + molecule("H2O")
    box.positions[3:] += [3.0, 0.2, 0.1]
    box.cell = [6.5, 6.0, 6.0]
    box.pbc = True
    box.center()
    return box


def test_npt_walker_on_a_periodic_cell_changes_its_volume(committee):
    box = _water_box()
    spec = WalkerSpec("water-box", box, 300.0, pressure_gpa=1.0, seed=3, walker=0)
    md = MDSettings(
        ensemble="npt",
        steps=20,
        sample_interval=10,
        stop_force_dev=1e9,
        stop_stress_dev_gpa=1e9,  # an untrained committee disagrees on stress too
        barostat_time_fs=20.0,
        thermostat_time_fs=20.0,
        max_volume_ratio=100.0,  # two molecules in a box of vacuum: it shrinks fast at 1 GPa
    )
    results, calls = run_walkers(committee, [spec], md)
    r = results[0]
    assert r.stop_reason == "steps", r.stop_reason
    assert calls == 21
    volumes = [f.atoms.get_volume() for f in r.frames]
    assert len(volumes) == 2
    assert abs(volumes[-1] - box.get_volume()) > 1e-6  # the barostat moved the cell
    # an NPT walker needs a cell
    bad, _ = run_walkers(committee, [WalkerSpec("w", molecule("H2O"), 300.0)], md)
    assert bad[0].stop_reason.startswith("error: ValueError: system w: NPT needs")


def test_a_periodic_walker_whose_cell_collapses_or_explodes_stops_with_the_reason(committee):
    cell = Atoms("H2", positions=[[0, 0, 0], [2.5, 2.5, 2.5]], cell=[5, 5, 5], pbc=True)
    v0 = cell.get_volume()
    md = MDSettings(max_volume_ratio=1.5)
    assert stop_reason(cell, 0.0, md, start_volume=v0) is None
    grown = cell.copy()
    grown.set_cell(cell.cell * 1.2, scale_atoms=True)  # 1.73 x the volume
    assert stop_reason(grown, 0.0, md, start_volume=v0) == CELL_EXPLODED
    shrunk = cell.copy()
    shrunk.set_cell(cell.cell * 0.85, scale_atoms=True)  # 0.61 x: below 1 / 1.5
    assert stop_reason(shrunk, 0.0, md, start_volume=v0) == CELL_COLLAPSED
    # a real NPT walker: at 50 GPa the barostat squeezes the water box past a tight window
    box = _water_box()
    spec = WalkerSpec("water-box", box, 300.0, pressure_gpa=50.0, seed=3, walker=0)
    npt = MDSettings(
        ensemble="npt",
        steps=200,
        sample_interval=10,
        stop_force_dev=1e9,
        barostat_time_fs=20.0,
        thermostat_time_fs=20.0,
        max_volume_ratio=1.02,
    )
    results, _ = run_walkers(committee, [spec], npt)
    assert results[0].stop_reason == CELL_COLLAPSED, results[0].stop_reason
    assert results[0].steps_done < 200
    # a molecule has no volume to watch
    assert stop_reason(molecule("H2O"), 0.0, md) is None


def test_a_periodic_walker_stops_when_the_committee_disagrees_on_its_stress(committee):
    """The stress deviation is part of the walker's uncertainty: with the force limit out
    of reach, a stress limit below what this committee gives on the box stops the walker
    at once, and a limit above it lets the walker run; frames carry the deviation."""
    cell = Atoms("H2", positions=[[0, 0, 0], [2.5, 2.5, 2.5]], cell=[5, 5, 5], pbc=True)
    md = MDSettings(stop_force_dev=1e9, stop_stress_dev_gpa=0.5)
    assert stop_reason(cell, 0.0, md, stress_dev_gpa=0.49) is None
    assert stop_reason(cell, 0.0, md, stress_dev_gpa=0.5) == "uncertainty"
    box = _water_box()
    spec = WalkerSpec("water-box", box, 300.0, seed=3, walker=0)
    free = MDSettings(steps=20, sample_interval=10, stop_force_dev=1e9, stop_stress_dev_gpa=1e9)
    (ran,), _ = run_walkers(committee, [spec], free)  # NVT: a cell still has a stress
    assert ran.stop_reason == "steps" and len(ran.frames) == 2
    devs = [f.stress_dev_gpa for f in ran.frames]
    assert all(d is not None and d > 0 for d in devs)
    tight = MDSettings(
        steps=20, sample_interval=10, stop_force_dev=1e9, stop_stress_dev_gpa=min(devs) / 10
    )
    (stopped,), _ = run_walkers(committee, [spec], tight)
    assert stopped.stop_reason == "uncertainty" and stopped.steps_done == 0
    # a molecule's walkers compute no stress
    (mol,), _ = run_walkers(committee, [WalkerSpec("w", molecule("H2O"), 300.0)], free)
    assert all(f.stress_dev_gpa is None for f in mol.frames)


def test_md_settings_defaults_and_construction_are_pinned():
    import dataclasses
    from pathlib import Path

    from aloop.config import load_config

    assert dataclasses.asdict(MDSettings()) == {
        "ensemble": "nvt",
        "timestep_fs": 0.5,
        "friction_per_fs": 0.01,
        "steps": 1000,
        "sample_interval": 10,
        "stop_force_dev": 0.6,
        "stop_stress_dev_gpa": None,
        "min_distance_factor": 0.5,
        "max_bond_stretch": 2.5,
        "max_volume_ratio": 1.5,
        "barostat_time_fs": 500.0,
        "thermostat_time_fs": 100.0,
        "bias": None,
    }
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo-water.yaml")
    md = MDSettings.from_config(cfg.explore, cfg.trust_window("water").hi)
    assert dataclasses.asdict(md) == {
        **dataclasses.asdict(MDSettings()),
        "steps": 200,
        "stop_force_dev": 1.0,
    }
    stressed = MDSettings.from_config(cfg.explore, 0.3, stress_hi_gpa=0.5)
    assert (stressed.stop_force_dev, stressed.stop_stress_dev_gpa) == (0.6, 1.0)


def test_the_frame_before_an_uncertainty_stop_is_kept_and_becomes_a_candidate(committee):
    """A hot walker whose deviation passes the stop threshold: the step before the stop
    is kept (flagged), and although it usually lies above hi it is labelled, since it is
    below the stop threshold: where the committee was about to go wrong."""
    from aloop.explore.classify import classify, classify_frames
    from aloop.vocabulary import Verdict

    start = molecule("H2O")
    first = committee.evaluate([start]).force_dev_max[0]
    stop_at = 1.5 * first
    md = MDSettings(steps=400, sample_interval=1000, stop_force_dev=stop_at)
    spec = WalkerSpec("water", start, 3000.0, seed=5, walker=0)
    (result,), _ = run_walkers(committee, [spec], md)
    assert result.stop_reason == "uncertainty"
    assert not result.completed
    (frame,) = result.frames  # nothing was due for sampling: only the kept step
    assert frame.before_stop and frame.step == result.steps_done - 1
    assert frame.force_dev_max < stop_at
    dev = np.array([frame.force_dev_max])
    hi = 0.9 * frame.force_dev_max  # the window's hi below it: a "failed" frame
    assert classify(dev, 0.1 * hi, hi)[0] is Verdict.FAILED
    assert classify_frames(dev, np.array([True]), 0.1 * hi, hi)[0] is Verdict.CANDIDATE
    # a sampled frame above hi stays failed
    assert classify_frames(dev, np.array([False]), 0.1 * hi, hi)[0] is Verdict.FAILED


def test_a_step_before_the_stop_sampled_on_schedule_is_flagged_not_repeated(committee):
    """Every step sampled: the step before the stop is already a sampled frame; it is
    flagged, not stored twice, and only it is flagged."""
    start = molecule("H2O")
    stop_at = 1.5 * committee.evaluate([start]).force_dev_max[0]
    md = MDSettings(steps=400, sample_interval=1, stop_force_dev=stop_at)
    (result,), _ = run_walkers(
        committee, [WalkerSpec("water", start, 3000.0, seed=5, walker=0)], md
    )
    assert result.stop_reason == "uncertainty"
    steps = [f.step for f in result.frames]
    assert steps == list(range(1, result.steps_done))  # each once, the stopping step not
    assert [f.before_stop for f in result.frames] == [False] * (len(steps) - 1) + [True]


def test_an_npt_walker_keeps_its_neighbour_list_until_a_pair_may_have_crossed_the_skin(committee):
    """The barostat changes the cell every step. The batcher keeps its graph while no
    pair can have come from beyond the list's reach into the cutoff, and rebuilds it
    past that; the results are those of a fresh evaluation either way."""
    from aloop.explore.lockstep import NEIGHBOUR_SKIN, LockstepBatcher

    box = _water_box()
    batcher = LockstepBatcher(committee, 1, stress=True)
    batcher.request(0, box)
    assert batcher.rebuilds == 1
    # a strain e stretches a pair at the cutoff r by e r: past the skin once
    # r / (1 - e) > r + skin, here e > skin / (r_max + skin) = 0.2
    reach = NEIGHBOUR_SKIN / (committee.r_max + NEIGHBOUR_SKIN)
    for strain, rebuilds in ((0.002, 1), (reach - 0.01, 1), (reach + 0.01, 2)):
        a = box.copy()
        a.set_cell(box.cell.array * (1 + strain), scale_atoms=True)
        out = batcher.request(0, a)
        assert batcher.rebuilds == rebuilds, strain
        fresh = committee.evaluate([a], stress=True)
        np.testing.assert_allclose(out["forces"], fresh.forces[0], atol=1e-10)
        np.testing.assert_allclose(out["stress"], fresh.stress[0], atol=1e-12)


def test_the_list_reuse_rule_never_misses_a_pair_that_entered_the_cutoff():
    """Random cells, strains and moves: whenever the rule keeps a list built to
    r_max + skin, every pair (any periodic image) now within r_max was within
    r_max + skin when the list was built. The moves are diagonal, where a bound on
    the largest coordinate change instead of the move's length would fail."""
    from ase.neighborlist import neighbor_list

    from aloop.explore.lockstep import list_still_covers

    rng = np.random.default_rng(0)
    r_max, skin, kept = 3.0, 1.0, 0
    for _ in range(300):
        cell = np.diag(rng.uniform(3.0, 5.0, 3)) + rng.normal(scale=0.3, size=(3, 3))
        a = Atoms("H6", cell=cell, pbc=True, scaled_positions=rng.uniform(size=(6, 3)))
        b = a.copy()
        b.set_cell(cell @ (np.eye(3) + rng.normal(scale=0.04, size=(3, 3))), scale_atoms=True)
        b.positions += rng.choice([-1, 1], size=(6, 1)) * rng.uniform(0, 0.3) / np.sqrt(3)
        if not list_still_covers(a.positions, a.cell.array[None], [b], r_max, skin):
            continue
        kept += 1
        i0, j0, s0 = neighbor_list("ijS", a, r_max + skin)
        listed = {(i, j, tuple(s)) for i, j, s in zip(i0, j0, s0, strict=True)}
        i1, j1, s1 = neighbor_list("ijS", b, r_max)
        assert {(i, j, tuple(s)) for i, j, s in zip(i1, j1, s1, strict=True)} <= listed
    assert 30 < kept < 300  # both outcomes happened
    # two atoms just beyond the list's reach along a diagonal, each moved 0.45 Å per
    # coordinate towards the other (0.78 Å each): now well within r_max. A rule that
    # read the largest coordinate change (0.45 < skin / 2) would keep the list.
    far = (r_max + skin + 0.05) / np.sqrt(3)
    pair = Atoms("H2", positions=[[5, 5, 5], [5 + far] * 3], cell=[20, 20, 20], pbc=True)
    closer = pair.copy()
    closer.positions += [[0.45] * 3, [-0.45] * 3]
    assert closer.get_distance(0, 1) < r_max < pair.get_distance(0, 1) - skin
    assert not list_still_covers(pair.positions, pair.cell.array[None], [closer], r_max, skin)
