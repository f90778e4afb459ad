"""Sampled frames per second: batched committee MD vs ASE walkers run one by one.

    python benchmarks/explore_bench.py [--walkers 16] [--steps 100] [--rounds 3] [--epochs 3]

K = 4 MACE members (aloop's CPU default size, trained briefly by mace's trainer on
HF/STO-3G ethanol). Both arms run ASE's Langevin (300 K, 0.5 fs, friction 0.01/fs, FixCom)
on ethanol walkers and sample every 10 steps. Baseline: each walker in turn, its forces
from one MACECalculator holding the 4 models (the committee mean). aloop:
``run_walkers``: all walkers in lockstep, one batched committee call per MD step. The two
arms alternate round by round (``benchmarks.harness``), after a warm-up of a 10-step run
each; the speedup is the median of the per-round ratios of frames per second.
Results: stdout and benchmarks/results/explore_bench.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from ase import units
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.config import ModelConfig  # noqa: E402
from aloop.explore.walkers import MDSettings, WalkerSpec, run_walkers  # noqa: E402
from aloop.models.committee import Committee  # noqa: E402
from aloop.models.io import load_model  # noqa: E402
from aloop.models.train import train_committee  # noqa: E402
from benchmarks.committee_bench import training_set  # noqa: E402
from benchmarks.harness import alternate, print_round, save  # noqa: E402


def baseline(calc, n_walkers: int, md: MDSettings) -> int:
    """Each walker in turn on one MACECalculator; the number of frames sampled."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    frames = 0
    for w in range(n_walkers):
        atoms = molecule("CH3CH2OH")
        atoms.calc = calc
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(w))
        Stationary(atoms)
        atoms.set_constraint(FixCom())
        dyn = Langevin(
            atoms,
            md.timestep_fs * units.fs,
            temperature_K=300,
            fixcm=False,
            friction=md.friction_per_fs / units.fs,
            rng=np.random.default_rng(w),
        )
        for step in range(1, md.steps + 1):
            dyn.run(1)
            _ = calc.results["forces_comm"]  # the committee spread, as a walker needs it
            if step % md.sample_interval == 0:
                frames += 1
    return frames


def batched(committee: Committee, n_walkers: int, md: MDSettings) -> tuple[list, int]:
    """All walkers in lockstep: ``run_walkers``' results and committee calls."""
    specs = [
        WalkerSpec("ethanol", molecule("CH3CH2OH"), 300.0, seed=w, walker=w)
        for w in range(n_walkers)
    ]
    return run_walkers(committee, specs, md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walkers", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="training; MD speed does not care")
    args = ap.parse_args()
    labelled, ids = training_set()
    # timing only: the E0s cost nothing (the figures were measured with MACE's fit)
    cfg = ModelConfig(
        committee_size=4, epochs=args.epochs, warm_start="none", batch_size=4, e0s="average"
    )
    with tempfile.TemporaryDirectory() as tmp:
        members = train_committee(labelled, ids, cfg, tmp)
    md = MDSettings(
        ensemble="nvt",
        timestep_fs=0.5,
        friction_per_fs=0.01,
        steps=args.steps,
        sample_interval=10,
        stop_force_dev=1e9,
        max_bond_stretch=10.0,
        min_distance_factor=0.1,
    )
    from mace.calculators import MACECalculator

    calc = MACECalculator(
        models=[load_model(m.weights, m.sha256) for m in members],
        device="cpu",
        default_dtype="float64",
    )
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    # a full extra round would cost as much as a timed one; 10 steps warm up the same code
    short = replace(md, steps=10)
    arms = {
        "ase_walker_by_walker": partial(baseline, calc, args.walkers, md),
        "aloop_run_walkers": partial(batched, committee, args.walkers, md),
    }
    warm = {
        "ase_walker_by_walker": partial(baseline, calc, args.walkers, short),
        "aloop_run_walkers": partial(batched, committee, args.walkers, short),
    }
    t = alternate(arms, rounds=args.rounds, warmup=1, warmup_arms=warm, on_round=print_round)
    f_base = t.results["ase_walker_by_walker"][0]
    results, calls = t.results["aloop_run_walkers"][0]
    f_ours = sum(len(r.frames) for r in results)
    # seeded walkers, no stop: both arms sample the same frames, so seconds compare as rates
    assert f_ours == f_base, (f_ours, f_base)
    out = {
        "walkers": args.walkers,
        "steps": args.steps,
        "members": 4,
        "baseline_frames": f_base,
        "baseline_frames_per_s": round(f_base / t.median_s("ase_walker_by_walker"), 2),
        "batched_frames": f_ours,
        "batched_frames_per_s": round(f_ours / t.median_s("aloop_run_walkers"), 2),
        "committee_calls": calls,
        "speedup": t.ratio("ase_walker_by_walker", "aloop_run_walkers").to_dict(),
        "speedup_fastest_rounds": round(
            t.fastest_ratio("ase_walker_by_walker", "aloop_run_walkers"), 2
        ),
        "stop_reasons": sorted({r.stop_reason for r in results}),
        "timings": t.to_dict(),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "timings"}, indent=2))
    save("explore_bench", out)


if __name__ == "__main__":
    main()
