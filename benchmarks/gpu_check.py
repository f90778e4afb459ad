"""aloop's model code on whatever device torch offers: training, inference, exploration.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu_check.json]

Needs no DFT: it trains on the data-efficiency study's committed test set (ethanol,
HF/STO-3G REF_ labels). With ``device: auto`` aloop must pick CUDA by itself where torch
sees it; this script checks that it did, that a committee trained there gives the same
energies and forces on the GPU and on the CPU (float64), and times what the loop spends
its time on, GPU against CPU side by side on the same machine:

- training one member (mace's trainer, 40 frames, a few epochs);
- batched committee inference of 240 structures (one exploration's worth of frames) at
  aloop's default size and at the ethanol.yaml size;
- 12 walkers of committee-driven MD in lock step.

Without CUDA it runs everything on the CPU and says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.config import ModelConfig  # noqa: E402
from aloop.explore.walkers import MDSettings, WalkerSpec, run_walkers  # noqa: E402
from aloop.models.committee import Committee  # noqa: E402
from aloop.models.io import load_model, pick_device  # noqa: E402
from aloop.models.train import train_committee  # noqa: E402

TESTSET = ROOT / "benchmarks" / "al_efficiency" / "results" / "testset.xyz"
SIZES = {
    "cpu-default (16 ch, L=0)": {},
    "ethanol.yaml (64 ch, L=1)": {"num_channels": 64, "max_L": 1},
}


def timed(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn`` after one warm-up call, synchronising CUDA."""
    import torch

    def run() -> float:
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    run()
    return statistics.median(run() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_check.json")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    import torch
    from ase.io import read

    device = pick_device("auto")
    frames = read(TESTSET, ":")
    train, pool = frames[::3], [f.copy() for f in frames] * 2  # 40 to train on, 240 to score
    ids = [f"t{i}" for i in range(len(train))]
    out: dict = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch": torch.__version__,
        "sizes": {},
    }
    print(f"aloop picked device {device!r} ({out['gpu'] or 'no CUDA'})", flush=True)
    for label, overrides in SIZES.items():
        row: dict = {}
        for dev in dict.fromkeys([device, "cpu"]):
            cfg = ModelConfig(
                committee_size=3,
                epochs=args.epochs,
                warm_start="none",
                batch_size=4,
                device=dev,
                e0s="average",  # timing only: the E0s cost nothing
                **overrides,
            )
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                members = train_committee(train, ids, cfg, tmp, members=[0])
                row[f"train_one_member_{dev}_s"] = round(time.perf_counter() - t0, 2)
            assert members[0].device == dev, (members[0].device, dev)
        # one committee (trained on the picked device) evaluated on both devices
        cfg = ModelConfig(
            committee_size=3, epochs=args.epochs, warm_start="none", e0s="average", **overrides
        )
        with tempfile.TemporaryDirectory() as tmp:
            members = train_committee(train, ids, cfg, tmp)
        assert all(m.device == device for m in members)
        results = {}
        for dev in dict.fromkeys([device, "cpu"]):
            models = [load_model(m.weights, m.sha256, device=dev) for m in members]
            committee = Committee(models, device=dev)
            results[dev] = committee.evaluate(pool)
            row[f"evaluate_240_{dev}_s"] = round(timed(lambda c=committee: c.evaluate(pool)), 4)
            specs = [
                WalkerSpec("ethanol", frames[0].copy(), t, seed=i, walker=i)
                for i, t in enumerate([300.0, 600.0, 1000.0] * 4)
            ]
            md = MDSettings(steps=200, sample_interval=10, stop_force_dev=1e6)
            t0 = time.perf_counter()
            walked, _ = run_walkers(committee, specs, md)
            row[f"md_12_walkers_200_steps_{dev}_s"] = round(time.perf_counter() - t0, 2)
            row[f"md_steps_{dev}"] = int(sum(r.steps_done for r in walked))
        if device != "cpu":
            a, b = results[device], results["cpu"]
            row["max_energy_diff_eV"] = float(np.max(np.abs(a.energy - b.energy)))
            row["max_force_diff_eV_per_A"] = float(
                max(np.max(np.abs(x - y)) for x, y in zip(a.forces, b.forces, strict=True))
            )
            row["max_deviation_diff_eV_per_A"] = float(
                np.max(np.abs(a.force_dev_max - b.force_dev_max))
            )
            for key in ("train_one_member", "evaluate_240"):
                row[f"{key}_cpu_over_gpu"] = round(
                    row[f"{key}_cpu_s"] / row[f"{key}_{device}_s"], 2
                )
        out["sizes"][label] = row
        print(label, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
