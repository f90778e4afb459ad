"""What periodic stress costs, and what FFTDF (which has it) costs beside multigrid.

    python benchmarks/stress_bench.py [--rounds 3] [--ke-cutoff 40]

One small cell, as a periodic label computes it (dft.scf.build_system, run_ladder,
gradient; dft.stress.periodic_stress): 4-atom Si (diamond, the orthogonal a/√2 x a/√2 x a
cell, since PySCF's multigrid GGA wants an orthogonal cell), rattled, PBE/gth-szv,
gth-pade. Three arms, alternated round by round (benchmarks/harness.py):

- ``fftdf_forces``: KRKS at the single Γ k-point, SCF + forces;
- ``fftdf_forces_stress``: the same + the analytic stress;
- ``multigrid_forces``: pbc.dft.RKS on MultiGridNumInt2, SCF + forces (the default: no
  stress).

Reported: the stress overhead (median of per-round ratios stress / no stress) and how
much slower FFTDF is than multigrid for forces alone. Results: stdout and
benchmarks/results/stress_bench.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.units import GPa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import alternate, print_round, save  # noqa: E402
from dft.scf import build_system, gradient, run_ladder  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402
from dft.stress import periodic_stress  # noqa: E402
from dft.units import FORCE_AU_EV_ANG, HARTREE_EV  # noqa: E402


def silicon():
    atoms = bulk("Si", "diamond", a=5.43, orthorhombic=True)
    atoms.rattle(0.03, seed=7)
    return atoms


def label(atoms, settings: LabelSettings, stress: bool) -> dict:
    mf, _ = run_ladder(build_system(atoms, settings, 0, 1), settings)
    out = {
        "energy": float(mf.e_tot) * HARTREE_EV,
        "forces": -gradient(mf, settings) * FORCE_AU_EV_ANG,
    }
    if stress:
        out["stress"] = periodic_stress(mf, settings)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ke-cutoff", type=float, default=40.0)
    args = ap.parse_args()
    atoms = silicon()
    common = {"periodic": True, "xc": "PBE", "ke_cutoff_hartree": args.ke_cutoff}
    fftdf = LabelSettings(multigrid=False, **common)
    multigrid = LabelSettings(multigrid=True, **common)
    cell = build_system(atoms, fftdf, 0, 1)
    print(f"Si{len(atoms)}: {cell.nao} AOs, mesh {[int(m) for m in cell.mesh]}", flush=True)
    arms = {
        "fftdf_forces": lambda: label(atoms, fftdf, stress=False),
        "fftdf_forces_stress": lambda: label(atoms, fftdf, stress=True),
        "multigrid_forces": lambda: label(atoms, multigrid, stress=False),
    }
    timings = alternate(arms, rounds=args.rounds, warmup=1, on_round=print_round)
    overhead = timings.ratio("fftdf_forces_stress", "fftdf_forces")
    fftdf_vs_mg = timings.ratio("fftdf_forces", "multigrid_forces")
    ref, mg = timings.results["fftdf_forces_stress"][0], timings.results["multigrid_forces"][0]
    checks = {
        "stress_eV_per_A3": np.round(ref["stress"], 6).tolist(),
        "pressure_GPa": round(float(-np.trace(ref["stress"]) / 3 / GPa), 3),
        "fftdf_minus_multigrid_energy_eV": round(ref["energy"] - mg["energy"], 6),
        "fftdf_minus_multigrid_max_force_eV_per_A": round(
            float(np.abs(ref["forces"] - mg["forces"]).max()), 6
        ),
    }
    print(f"stress overhead (with / without): {overhead}")
    print(f"FFTDF / multigrid, forces only: {fftdf_vs_mg}")
    print(checks)
    path = save(
        "stress_bench",
        {
            "system": f"Si{len(atoms)} diamond (orthogonal cell), PBE/gth-szv, gth-pade",
            "ke_cutoff_hartree": args.ke_cutoff,
            "nao": int(cell.nao),
            "mesh": [int(m) for m in cell.mesh],
            "timings": timings.to_dict(),
            "stress_over_forces_only": overhead.to_dict(),
            "stress_over_forces_only_fastest": round(
                timings.fastest_ratio("fftdf_forces_stress", "fftdf_forces"), 4
            ),
            "fftdf_over_multigrid": fftdf_vs_mg.to_dict(),
            "fftdf_over_multigrid_fastest": round(
                timings.fastest_ratio("fftdf_forces", "multigrid_forces"), 4
            ),
            "checks": checks,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
