"""MACE's ``--E0s=average`` on single-composition frames against isolated-atom E0s.

    python benchmarks/e0s_check.py [--frames 8] [--basis sto-3g] [--method HF]

Labels a handful of rattled ethanol frames and the isolated C, H and O atoms (UHF in
their ground-state multiplicities, aloop.isolated_atoms) with aloop's labeller, then
fits MACE's own average E0s (``mace.data.compute_average_E0s``, the code behind
``--E0s=average``) to the frames. Every frame is C2H6O, so the least-squares design
matrix has rank 1: numpy returns the minimum-norm solution, E0(Z) proportional to the
atom counts (2, 6, 1), which sums to the mean frame energy and has nothing to do with
the atoms. Printed: each element's two E0s, the rank, and what each set makes of the
atomisation energy (frame energy less the sum of its atoms' E0s). Results: stdout and
benchmarks/results/e0s_check.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.isolated_atoms import isolated_atom  # noqa: E402
from benchmarks.harness import save  # noqa: E402
from dft.batch import LabelTask, label_batch  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402


def _frames(n: int) -> list:
    rng = np.random.default_rng(5)
    out = []
    for _ in range(n):
        a = molecule("CH3CH2OH")
        a.positions += rng.normal(scale=0.04, size=a.positions.shape)
        out.append(a)
    return out


def _average_e0s(frames: list, energies: list[float]) -> dict[int, float]:
    """MACE's --E0s=average fit on these frames, through MACE's own function."""
    from mace import data
    from mace.tools.utils import AtomicNumberTable

    spec = data.KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={})
    configs = []
    for a, e in zip(frames, energies, strict=True):
        b = a.copy()
        b.info["REF_energy"] = e
        configs.append(data.config_from_atoms(b, key_specification=spec))
    zs = sorted({int(z) for a in frames for z in a.numbers})
    return {
        int(z): float(e)
        for z, e in data.compute_average_E0s(configs, AtomicNumberTable(zs)).items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--method", default="HF")
    ap.add_argument("--basis", default="sto-3g")
    args = ap.parse_args()
    settings = LabelSettings(method=args.method, basis=args.basis)
    frames = _frames(args.frames)
    atoms = {z: isolated_atom(z, periodic=False) for z in (1, 6, 8)}
    tasks = [LabelTask(f"f{i}", a) for i, a in enumerate(frames)]
    tasks += [LabelTask(f"z{z}", a, multiplicity=a.info["multiplicity"]) for z, a in atoms.items()]
    records = {r.structure_id: r for r in label_batch(tasks, settings, on_progress=lambda p: None)}
    bad = {k: r.error for k, r in records.items() if r.energy is None}
    if bad:
        raise SystemExit(f"labels failed: {bad}")
    energies = [records[f"f{i}"].energy for i in range(len(frames))]
    isolated = {z: records[f"z{z}"].energy for z in atoms}
    average = _average_e0s(frames, energies)
    counts = np.array([[np.count_nonzero(a.numbers == z) for z in (1, 6, 8)] for a in frames])
    rank = int(np.linalg.matrix_rank(counts))

    def atomisation(e0s: dict[int, float]) -> float:
        ref = sum(e0s[int(z)] for z in frames[0].numbers)
        return float(np.mean(energies) - ref)

    symbols = {1: "H", 6: "C", 8: "O"}
    print(f"{len(frames)} ethanol frames at {settings.description}; design matrix rank {rank}/3")
    print(f"{'':4}{'average (MACE)':>18}{'isolated atoms':>18}   eV")
    for z in (6, 1, 8):
        print(f"{symbols[z]:4}{average[z]:18.3f}{isolated[z]:18.3f}")
    print(
        f"mean atomisation energy (frame - sum of E0s): average {atomisation(average):.3f} eV, "
        f"isolated atoms {atomisation(isolated):.3f} eV"
    )
    save(
        "e0s_check",
        {
            "settings": settings.description,
            "frames": len(frames),
            "design_matrix_rank": rank,
            "mean_frame_energy_eV": float(np.mean(energies)),
            "average_e0s_eV": {symbols[z]: average[z] for z in (6, 1, 8)},
            "isolated_atom_e0s_eV": {symbols[z]: isolated[z] for z in (6, 1, 8)},
            "multiplicities": {symbols[z]: atoms[z].info["multiplicity"] for z in (6, 1, 8)},
            "atomisation_energy_eV": {
                "average": atomisation(average),
                "isolated_atoms": atomisation(isolated),
            },
        },
    )


if __name__ == "__main__":
    main()
