"""Density against temperature from committee NPT MD: the density of a cell, the block
average and its standard error, walkers that left the trained region kept out of the
mean, and a real NPT run with a trained committee."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from aloop.analysis.density import (
    DensityPoint,
    density_curve,
    density_g_cm3,
    density_points,
    density_table,
    plot_density,
)
from aloop.explore.walkers import Frame, MDSettings, WalkerResult, WalkerSpec


def test_the_density_of_rock_salt_is_its_textbook_value():
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    assert density_g_cm3(nacl) == pytest.approx(2.165, abs=0.002)


def _walker(densities: list[float], temperature: float, stop: str = "steps") -> WalkerResult:
    """A walker whose frames (every 10 steps) have these densities: a copper atom in a
    cubic cell sized to each."""
    frames = []
    for k, rho in enumerate(densities):
        edge = (63.546 * 1.66053906660 / rho) ** (1 / 3)
        atoms = Atoms("Cu", cell=[edge] * 3, pbc=True)
        frames.append(Frame("cu", 0, temperature, 0.0, 10 * (k + 1), atoms, 0.1, 0.05, 0.01))
    spec = WalkerSpec("cu", frames[0].atoms, temperature, 0.0)
    return WalkerResult(spec=spec, frames=frames, steps_done=10 * len(frames), stop_reason=stop)


def test_block_means_of_the_walkers_that_ran_every_step():
    rng = np.random.default_rng(0)
    a = list(1.6 + 0.01 * rng.standard_normal(12))
    b = list(1.7 + 0.01 * rng.standard_normal(12))
    blown = [3.0] * 12  # a collapsed cell: never averaged in
    hot = list(1.5 + 0.01 * rng.standard_normal(12))
    results = [
        _walker(a, 1000.0),
        _walker(b, 1000.0),
        _walker(blown, 1000.0, stop="cell collapsed"),
        _walker(hot, 1300.0),
    ]
    cold, warm = density_points(results, equilibration_steps=40, blocks=4)
    # the first 4 frames (steps 10-40) are equilibration; 8 left, 4 blocks of 2
    means = [np.mean(s[4:][i : i + 2]) for s in (a, b) for i in range(0, 8, 2)]
    assert cold.density_g_cm3 == pytest.approx(np.mean(means), rel=1e-4)
    assert cold.stderr_g_cm3 == pytest.approx(np.std(means, ddof=1) / np.sqrt(8), rel=1e-3)
    assert (cold.walkers, cold.walkers_used, cold.blocks, cold.samples) == (3, 2, 8, 16)
    assert cold.stopped == ("cell collapsed",)
    assert warm.temperature_k == 1300.0 and warm.walkers_used == 1 and warm.blocks == 4
    assert warm.density_g_cm3 == pytest.approx(np.mean(hot[4:]), rel=1e-4)
    # no walker ran every step: no density, and it says why
    (none,) = density_points([_walker(blown, 1600.0, stop="uncertainty")], 40)
    assert none.density_g_cm3 is None and none.stderr_g_cm3 is None
    assert none.stopped == ("uncertainty",)


def test_the_table_and_the_plot_are_written(tmp_path):
    points = [
        DensityPoint(1000.0, 0.0, 1.71, 0.02, 2, 2, 8, 80, 0.2, 0.9),
        DensityPoint(1300.0, 0.0, None, None, 2, 0, 0, 0, None, None, ("uncertainty",) * 2),
    ]
    table = density_table(points).splitlines()
    assert table[0].startswith("temperature_K,pressure_GPa,density_g_cm3,stderr_g_cm3")
    assert table[1].startswith("1000,0,1.71,0.02,2,2,8,80")
    assert table[2].startswith("1300,0,,,2,0,0,0")
    plot_density(points, str(tmp_path / "d.png"), "test")
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_npt_with_a_trained_committee_gives_a_density_per_temperature(water_committee):
    from aloop.models.committee import Committee
    from aloop.models.io import load_model

    _, _, members = water_committee
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    box = molecule("H2O") + molecule("H2O")
    box.positions[3:] += [2.6, 0.2, 0.1]
    box.cell, box.pbc = [5.5, 5.0, 5.0], True
    box.center()
    md = MDSettings(
        ensemble="npt", steps=40, sample_interval=5, stop_force_dev=1e9, stop_stress_dev_gpa=1e9
    )
    md.max_volume_ratio = 100.0
    points = density_curve(committee, [box], [300.0, 600.0], 0.5, md, 2, 20, blocks=2)
    assert [p.temperature_k for p in points] == [300.0, 600.0]
    for p in points:
        assert p.walkers == p.walkers_used == 2 and p.blocks == 4 and p.samples == 8
        assert 0.05 < p.density_g_cm3 < 3.0 and p.stderr_g_cm3 >= 0
        assert p.max_stress_dev_gpa is not None
    with pytest.raises(ValueError, match="fewer than the 2 blocks"):
        density_curve(committee, [box], [300.0], 0.5, md, 1, 35, blocks=2)
    with pytest.raises(ValueError, match="needs NPT"):
        density_curve(committee, [box], [300.0], 0.5, MDSettings(), 1, 0)


def test_a_density_run_reads_back_as_it_was_stored():
    from aloop.analysis.density import DensityRun

    run = DensityRun(
        system="mgcl2",
        committee=("a", "b"),
        steps=4000,
        equilibration=1000,
        walkers=2,
        blocks=4,
        sample_interval=10,
        timestep_fs=2.0,
        pressure_gpa=0.0,
        points=(DensityPoint(1000.0, 0.0, 1.71, 0.02, 2, 1, 4, 300, 0.2, 0.9, ("uncertainty",)),),
        repeats=(2, 2, 3),
        atoms=108,
        barostat_time_fs=500.0,
    )
    doc = run.to_doc()
    assert doc["kind"] == "density" and doc["points"][0]["stopped"] == ["uncertainty"]
    assert doc["repeats"] == [2, 2, 3]
    assert DensityRun.from_doc({**doc, "created_at": "2026-12-07"}) == run
    # a run stored before the cell was repeated reads back as the campaign's own cell
    old = {k: v for k, v in doc.items() if k not in ("repeats", "atoms", "barostat_time_fs")}
    assert DensityRun.from_doc(old).repeats == (1, 1, 1)


def test_the_cell_is_repeated_until_every_width_reaches_the_minimum():
    """Widths are distances between opposite faces, not vector lengths: a sheared cell
    is thinner than its vectors are long."""
    from aloop.analysis.density import supercell_repeats

    cube = Atoms("Cl", cell=[6.56, 6.56, 6.56], pbc=True)
    assert supercell_repeats(cube, 10.0) == (2, 2, 2)
    assert supercell_repeats(cube, 6.56) == (1, 1, 1)
    assert supercell_repeats(cube, 13.2) == (3, 3, 3)
    slab_like = Atoms("Cl", cell=[5.0, 5.0, 20.0], pbc=True)
    assert supercell_repeats(slab_like, 10.0) == (2, 2, 1)
    # hexagonal a = 5 Å: the widths across the a and b faces are 5 sin(60°) = 4.33 Å
    hexagonal = bulk("Mg", "hcp", a=5.0, c=9.0)
    assert supercell_repeats(hexagonal, 9.0) == (3, 3, 1)
    assert supercell_repeats(hexagonal, 8.6) == (2, 2, 1)
