"""Batched committee inference vs mace's MACECalculator, side by side (CPU unless CUDA).

    python benchmarks/committee_bench.py [--members 4] [--structures 16] [--rounds 9]

Models: K MACE members trained for a few epochs (mace's trainer) on HF/STO-3G ethanol
frames, at two sizes: aloop's CPU default (16 channels, L=0) and the ethanol.yaml
campaign size (64 channels, L=1). Inference speed does not depend on how well trained they
are. Baseline: one MACECalculator holding the same K models, called structure by structure
(its default behaviour, stress included). aloop: ``Committee.evaluate`` on all structures
at once (one graph batch, neighbour lists built once, each member one forward pass).
Also: single-structure latency, time per training epoch, and the share of the batched
call spent building the graph batch (what caching neighbour lists could save). All five
timed calls alternate round by round (``benchmarks.harness``); every figure is a median of
per-round ratios with its spread. Results: stdout and benchmarks/results/committee_bench.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.config import ModelConfig  # noqa: E402
from aloop.models.committee import Committee, CommitteeCalculator  # noqa: E402
from aloop.models.io import load_model, pick_device  # noqa: E402
from aloop.models.train import train_committee  # noqa: E402
from benchmarks.harness import alternate, print_round, save  # noqa: E402
from dft.batch import LabelTask, label_batch  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402

SIZES = {
    "cpu-default (16 ch, L=0)": {},
    "ethanol.yaml (64 ch, L=1)": {"num_channels": 64, "max_L": 1},
}


def ethanol_frames(n: int, seed: int, scale: float = 0.06) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = molecule("CH3CH2OH")
        a.positions += rng.normal(scale=scale, size=a.positions.shape)
        out.append(a)
    return out


def training_set(n: int = 20) -> tuple[list, list[str]]:
    """``n`` distorted ethanol frames with HF/STO-3G labels, and their ids."""
    tasks = [LabelTask(f"e{i}", a) for i, a in enumerate(ethanol_frames(n, seed=1))]
    recs = label_batch(
        tasks, LabelSettings(method="HF", basis="sto-3g"), on_progress=lambda p: None
    )
    by_id = {r.structure_id: r for r in recs}
    return [by_id[t.structure_id].labelled_atoms(t.atoms) for t in tasks], [
        t.structure_id for t in tasks
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--structures", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    from mace.calculators import MACECalculator

    device = pick_device("auto")
    labelled, ids = training_set()
    frames = ethanol_frames(args.structures, seed=2)
    out: dict = {
        "device": device,
        "members": args.members,
        "structures": args.structures,
        "atoms_per_structure": len(frames[0]),
        "sizes": {},
    }
    for label, overrides in SIZES.items():
        cfg = ModelConfig(
            committee_size=args.members,
            epochs=args.epochs,
            warm_start="none",
            batch_size=4,
            e0s="average",  # timing only: the E0s cost nothing (figures measured so)
            **overrides,
        )
        with tempfile.TemporaryDirectory() as tmp:
            members = train_committee(labelled, ids, cfg, tmp)
        models = [load_model(m.weights, m.sha256, device=device) for m in members]
        committee = Committee(models, device=device)
        calc = MACECalculator(
            models=[load_model(m.weights, m.sha256, device=device) for m in members],
            device=device,
            default_dtype=cfg.dtype,
        )

        def baseline(calc=calc):
            for a in frames:
                b = a.copy()
                b.calc = calc
                b.get_forces()

        def batched(committee=committee):
            committee.evaluate(frames)

        def single_ours(committee=committee):
            b = frames[0].copy()
            b.calc = CommitteeCalculator(committee)
            b.get_forces()

        def single_mace(calc=calc):
            calc.reset()  # or ASE would hand back the cached result of the same geometry
            b = frames[0].copy()
            b.calc = calc
            b.get_forces()

        t = alternate(
            {
                "mace_calculator": baseline,
                "batched": batched,
                "graph_batch": lambda c=committee: c.batch(frames),
                "single_committee": single_ours,
                "single_mace_calculator": single_mace,
            },
            rounds=args.rounds,
            warmup=1,
            on_round=print_round,
        )
        n = args.structures
        row = {
            "speedup": t.ratio("mace_calculator", "batched").to_dict(),
            "speedup_fastest_rounds": round(t.fastest_ratio("mace_calculator", "batched"), 2),
            "single_speedup": t.ratio("single_mace_calculator", "single_committee").to_dict(),
            "graph_batch_share": t.ratio("graph_batch", "batched").to_dict(),
            "baseline_structures_per_s": round(n / t.median_s("mace_calculator"), 1),
            "batched_structures_per_s": round(n / t.median_s("batched"), 1),
            "single_latency_committee_ms": round(1e3 * t.median_s("single_committee"), 2),
            "single_latency_mace_calculator_ms": round(
                1e3 * t.median_s("single_mace_calculator"), 2
            ),
            "train_s_per_epoch": round(
                statistics.mean(m.wall_time / max(m.epochs, 1) for m in members), 2
            ),
            "train_frames": len(labelled),
            "timings": t.to_dict(),
        }
        out["sizes"][label] = row
        print(label, json.dumps({k: v for k, v in row.items() if k != "timings"}), flush=True)
    save("committee_bench", out)


if __name__ == "__main__":
    main()
