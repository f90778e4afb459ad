"""Sampled frames per second: batched committee MD vs ASE walkers run one by one.

    python benchmarks/explore_bench.py [--walkers 16] [--steps 100]

K = 4 MACE members (aloop's CPU default size, trained briefly by mace's trainer on
HF/STO-3G ethanol). Both arms run ASE's Langevin (300 K, 0.5 fs, friction 0.01/fs, FixCom)
on ethanol walkers and sample every 10 steps. Baseline: each walker in turn, its forces
from one MACECalculator holding the 4 models (the committee mean). aloop:
``run_walkers``: all walkers in lockstep, one batched committee call per MD step.
Results: stdout and benchmarks/results/explore_bench.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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
from benchmarks.committee_bench import ethanol_frames  # noqa: E402
from dft.batch import LabelTask, label_batch  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402


def baseline(members, n_walkers: int, md: MDSettings) -> tuple[float, int]:
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from mace.calculators import MACECalculator

    calc = MACECalculator(
        models=[load_model(m.weights, m.sha256) for m in members],
        device="cpu",
        default_dtype="float64",
    )
    frames = 0
    start = time.perf_counter()
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
    return time.perf_counter() - start, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walkers", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    train = ethanol_frames(20, seed=1)
    tasks = [LabelTask(f"e{i}", a) for i, a in enumerate(train)]
    recs = {
        r.structure_id: r
        for r in label_batch(
            tasks, LabelSettings(method="HF", basis="sto-3g"), on_progress=lambda p: None
        )
    }
    labelled = [recs[t.structure_id].labelled_atoms(t.atoms) for t in tasks]
    cfg = ModelConfig(committee_size=4, epochs=3, warm_start="none", batch_size=4)
    with tempfile.TemporaryDirectory() as tmp:
        members = train_committee(labelled, [t.structure_id for t in tasks], cfg, tmp)
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
    t_base, f_base = baseline(members, args.walkers, md)
    print(
        f"baseline: {f_base} frames in {t_base:.2f} s = {f_base / t_base:.2f} frames/s", flush=True
    )
    committee = Committee([load_model(m.weights, m.sha256) for m in members])
    specs = [
        WalkerSpec("ethanol", molecule("CH3CH2OH"), 300.0, seed=w, walker=w)
        for w in range(args.walkers)
    ]
    start = time.perf_counter()
    results, calls = run_walkers(committee, specs, md)
    t_ours = time.perf_counter() - start
    f_ours = sum(len(r.frames) for r in results)
    print(
        f"aloop batched: {f_ours} frames in {t_ours:.2f} s = {f_ours / t_ours:.2f} frames/s "
        f"({calls} committee calls)",
        flush=True,
    )
    out = {
        "walkers": args.walkers,
        "steps": args.steps,
        "members": 4,
        "baseline_s": round(t_base, 2),
        "baseline_frames": f_base,
        "baseline_frames_per_s": round(f_base / t_base, 2),
        "batched_s": round(t_ours, 2),
        "batched_frames": f_ours,
        "batched_frames_per_s": round(f_ours / t_ours, 2),
        "speedup": round((f_ours / t_ours) / (f_base / t_base), 2),
        "stop_reasons": sorted({r.stop_reason for r in results}),
    }
    print(f"speedup: {out['speedup']}x")
    (ROOT / "benchmarks" / "results" / "explore_bench.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
