"""Labelling throughput and aloop's overhead over raw PySCF (PBE/def2-SVP ethanol).

    python benchmarks/label_bench.py [--n 4] [--layouts 1x1,1x2,2x1] [--rounds 3]

Raw PySCF: the same RKS energy + analytic gradient, built directly with pyscf.gto/dft in
this process, one thread, one structure after another: the baseline stays a plain SCF
and gradient. aloop: ``dft.batch.label_batch`` (guard, recovery ladder with the orbital-
Hessian stability analysis every label now gets, worker processes, records) for each
workers x threads layout, so the overhead includes the analysis; its own wall time (the
attempts' ``stability_seconds``) is reported beside it as a share of the label wall time.
Raw PySCF and every layout alternate round by round (``benchmarks.harness``) after a
one-label warm-up each. Overhead = the median over rounds of aloop 1x1 wall / raw wall - 1;
layouts compare by the median of their per-round ratios. Results: stdout and
benchmarks/results/label_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Spread, alternate, print_round, save  # noqa: E402
from dft.batch import LabelTask, default_layout, label_batch  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402

SETTINGS = LabelSettings(method="DFT", xc="PBE", basis="def2-SVP", grid_level=3, conv_tol=1e-9)


def frames(n: int) -> list:
    rng = np.random.default_rng(17)
    out = []
    for _ in range(n):
        a = molecule("CH3CH2OH")
        a.positions += rng.normal(scale=0.04, size=a.positions.shape)
        out.append(a)
    return out


def raw_pyscf(atoms_list: list) -> None:
    import pyscf.grad  # noqa: F401
    from pyscf import dft, gto, lib

    lib.num_threads(1)
    for a in atoms_list:
        mol = gto.M(
            atom=[
                (s, tuple(p)) for s, p in zip(a.get_chemical_symbols(), a.positions, strict=True)
            ],
            basis=SETTINGS.basis,
            unit="Angstrom",
            verbose=0,
        )
        mf = dft.RKS(mol)
        mf.xc = SETTINGS.xc
        mf.grids.level = SETTINGS.grid_level
        mf.conv_tol = SETTINGS.conv_tol
        mf.kernel()
        mf.Gradients().kernel()


#: Per label of the 1x1 arm: (stability analysis seconds, SCF seconds, label wall seconds).
ANALYSIS: list[tuple[float, float, float]] = []


def aloop(tasks: list[LabelTask], workers: int, threads: int) -> list:
    recs = label_batch(
        tasks, SETTINGS, workers=workers, threads=threads, on_progress=lambda p: None
    )
    assert all(r.status == "ok" for r in recs), [r.error for r in recs]
    if (workers, threads) == (1, 1):
        ANALYSIS.extend(
            (
                sum(a.get("stability_seconds", 0.0) for a in r.scf_attempts),
                sum(a["seconds"] for a in r.scf_attempts),
                r.wall_time,
            )
            for r in recs
        )
    return recs


def arms(atoms_list: list, layouts: list[str]) -> dict:
    tasks = [LabelTask(f"e{i}", a) for i, a in enumerate(atoms_list)]
    out = {"raw_pyscf": partial(raw_pyscf, atoms_list)}
    for layout in layouts:
        w, t = (int(x) for x in layout.split("x"))
        out[layout] = partial(aloop, tasks, w, t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--layouts", default="1x1,1x2,2x1")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    atoms_list, layouts = frames(args.n), args.layouts.split(",")
    t = alternate(
        arms(atoms_list, layouts),
        rounds=args.rounds,
        warmup=1,
        warmup_arms=arms(atoms_list[:1], layouts),
        on_round=print_round,
    )
    out: dict = {"n": args.n, "level": SETTINGS.description, "cores": os.cpu_count()}
    out["raw_pyscf_s"] = round(t.median_s("raw_pyscf"), 2)
    out["layouts"] = {
        layout: {
            "wall_s": round(t.median_s(layout), 2),
            "labels_per_min": round(60 * args.n / t.median_s(layout), 2),
            "speedup_over_raw": t.ratio("raw_pyscf", layout).to_dict(),
        }
        for layout in layouts
    }
    if "1x1" in layouts:
        overhead = Spread.of([r - 1 for r in t.ratio("1x1", "raw_pyscf").values])
        out["overhead_fraction_1x1"] = overhead.to_dict()
        out["overhead_fraction_1x1_fastest_rounds"] = round(
            t.fastest_ratio("1x1", "raw_pyscf") - 1, 4
        )
        print(f"overhead of aloop 1x1 over raw PySCF: {100 * overhead.median:.2f} %")
    if ANALYSIS:
        share = Spread.of([a / w for a, _, w in ANALYSIS])
        out["stability_analysis_share_of_label_1x1"] = share.to_dict()
        out["stability_analysis_over_scf_1x1"] = Spread.of(
            [a / s for a, s, _ in ANALYSIS]
        ).to_dict()
        print(f"stability analysis: {100 * share.median:.1f} % of each label's wall time")
    best = max(layouts, key=lambda k: out["layouts"][k]["labels_per_min"])
    out["best_layout"] = best
    out["default_layout"] = "{}x{}".format(*default_layout())
    if {"1x2", "2x1"} <= set(layouts):
        out["2x1_over_1x2"] = t.ratio("1x2", "2x1").to_dict()
        out["2x1_over_1x2_fastest_rounds"] = round(t.fastest_ratio("1x2", "2x1"), 3)
    out["timings"] = t.to_dict()
    print(json.dumps({k: v for k, v in out.items() if k != "timings"}, indent=2))
    print(f"best layout: {best}; default here: {out['default_layout']}")
    save("label_bench", out)


if __name__ == "__main__":
    main()
