"""Labelling throughput and aloop's overhead over raw PySCF (PBE/def2-SVP ethanol).

    python benchmarks/label_bench.py [--n 8] [--layouts 1x1,1x2,2x1]

Raw PySCF: the same RKS energy + analytic gradient, built directly with pyscf.gto/dft in
this process, one thread, one structure after another. aloop: ``dft.batch.label_batch``
(guard, recovery ladder, worker processes, records) for each workers x threads layout.
Overhead = (aloop 1x1 wall - raw wall) / raw wall. Results: stdout and
benchmarks/results/label_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def raw_pyscf(atoms_list: list) -> float:
    import pyscf.grad  # noqa: F401
    from pyscf import dft, gto, lib

    lib.num_threads(1)
    start = time.perf_counter()
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
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--layouts", default="1x1,1x2,2x1")
    args = ap.parse_args()
    atoms_list = frames(args.n)
    tasks = [LabelTask(f"e{i}", a) for i, a in enumerate(atoms_list)]
    out: dict = {"n": args.n, "level": SETTINGS.description, "cores": os.cpu_count()}
    out["raw_pyscf_s"] = round(raw_pyscf(atoms_list), 2)
    print(f"raw PySCF, 1 thread, {args.n} labels: {out['raw_pyscf_s']} s", flush=True)
    out["layouts"] = {}
    for layout in args.layouts.split(","):
        w, t = (int(x) for x in layout.split("x"))
        start = time.perf_counter()
        recs = label_batch(tasks, SETTINGS, workers=w, threads=t, on_progress=lambda p: None)
        wall = time.perf_counter() - start
        assert all(r.status == "ok" for r in recs), [r.error for r in recs]
        out["layouts"][layout] = {
            "wall_s": round(wall, 2),
            "labels_per_min": round(60 * args.n / wall, 2),
        }
        print(
            f"aloop {layout} (workers x threads): {wall:.2f} s, "
            f"{60 * args.n / wall:.2f} labels/min",
            flush=True,
        )
    if "1x1" in out["layouts"]:
        overhead = out["layouts"]["1x1"]["wall_s"] / out["raw_pyscf_s"] - 1
        out["overhead_fraction_1x1"] = round(overhead, 4)
        print(f"overhead of aloop 1x1 over raw PySCF: {100 * overhead:.2f} %")
    best = max(out["layouts"], key=lambda k: out["layouts"][k]["labels_per_min"])
    out["best_layout"] = best
    out["default_layout"] = "{}x{}".format(*default_layout())
    print(f"best layout: {best}; default here: {out['default_layout']}")
    path = ROOT / "benchmarks" / "results" / "label_bench.json"
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
