"""Fine-tuning a foundation model vs training from scratch: test force error against labels.

    python benchmarks/finetune_bench.py [--counts 10 25 50 100] [--seeds 3] [--epochs 60]

No model hub is reachable here, so the foundation is a stand-in built by this script
(:func:`build_standin_foundation`): a MACE model (32 channels, L=0, r_max 5 Å) trained on
a broad set of small H/C/N/O molecules, rattled, all labelled at one level (HF/STO-3G,
PySCF), with the isolated atoms at that level as its E0s; its training set is the replay
file. The target system is ethanol, which the foundation never saw (its isomer dimethyl
ether is left out too), rattled and labelled at the same level: a pool of training frames
and a separate test set.

For each label count n and each seed, one model is trained on the same first n pool
frames in three ways, with the same epoch count and optimizer-step floor (a multihead
epoch also steps through the replayed frames, so it reaches the floor in fewer epochs;
each run records its epochs, learning rate and EMA):

- ``scratch``: the config's own architecture, from random weights;
- ``naive``: every weight of the foundation trained on the n labels, with the learning
  rate and EMA MACE uses for multihead runs (1e-4, 0.99999), so that the difference
  from ``multihead`` is the replay;
- ``multihead``: MACE's replay fine-tuning (the foundation's head replays
  ``--replay-samples`` frames of its data, drawn by the seed; MACE's own learning rate
  and EMA for this mode).

It reports each one's test force RMSE (eV/Å) and energy RMSE (meV/atom), the median and
spread over seeds, and, taking the seeds at one n as a committee, how correlated their
force errors are (mean pairwise Pearson correlation over the test components) and the
committee's spread against its true error. Results: stdout, benchmarks/results/
finetune_bench.json and finetune_bench.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import molecule
from ase.io import write

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.config import ModelConfig  # noqa: E402
from aloop.models.committee import Committee  # noqa: E402
from aloop.models.io import load_model  # noqa: E402
from aloop.models.train import train_committee  # noqa: E402
from dft.batch import LabelTask, label_batch  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402

LEVEL = LabelSettings(method="HF", basis="sto-3g")
#: The foundation's chemistry: H, C, N, O molecules from ASE's g2 set; no ethanol and
#: no dimethyl ether (the target and its isomer).
FOUNDATION_MOLECULES = (
    "H2O",
    "NH3",
    "CH4",
    "CH3OH",
    "C2H6",
    "C2H4",
    "C2H2",
    "H2CO",
    "HCOOH",
    "H3CNH2",
    "HCN",
    "CO2",
    "CH3CHO",
    "N2H4",
    "CH3CN",
    "H2O2",
)
TARGET = "CH3CH2OH"
FOUNDATION_MODEL = {
    "num_channels": 32,
    "max_L": 0,
    "r_max": 5.0,
    "epochs": 120,
    "batch_size": 8,
    "patience": 100,
}
METHODS = ("scratch", "naive", "multihead")
#: What MACE 0.3.16 sets for multihead fine-tuning (unless --force_mh_ft_lr).
MULTIHEAD_LR = 1e-4
MULTIHEAD_EMA = 0.99999


def rattled(name: str, n: int, rng: np.random.Generator, scales=(0.05, 0.1, 0.15)) -> list:
    out = []
    for i in range(n):
        a = molecule(name)
        a.positions += rng.normal(scale=scales[i % len(scales)], size=a.positions.shape)
        out.append(a)
    return out


def label(frames: list, prefix: str) -> tuple[list, list[str]]:
    """Frames with HF/STO-3G REF_ labels (failures dropped) and their ids."""
    tasks = [LabelTask(f"{prefix}{i}", a) for i, a in enumerate(frames)]
    records = {r.structure_id: r for r in label_batch(tasks, LEVEL, on_progress=lambda p: None)}
    done = [t for t in tasks if records[t.structure_id].energy is not None]
    return [records[t.structure_id].labelled_atoms(t.atoms) for t in done], [
        t.structure_id for t in done
    ]


def isolated_e0s() -> dict[int, float]:
    """H, C, N, O atoms at the level, in their ground-state multiplicities (eV)."""
    from aloop.isolated_atoms import isolated_atom

    tasks = []
    for z in (1, 6, 7, 8):
        atom = isolated_atom(z, periodic=False)
        tasks.append(LabelTask(f"atom{z}", atom, multiplicity=atom.info["multiplicity"]))
    records = label_batch(tasks, LEVEL, on_progress=lambda p: None)
    failed = [r.structure_id for r in records if r.energy is None]
    if failed:
        raise SystemExit(f"isolated-atom labels failed: {failed}")
    return {int(r.structure_id.removeprefix("atom")): r.energy for r in records}


def build_standin_foundation(workdir: Path, per_molecule: int = 24) -> dict:
    """Label the foundation's data, train it; its model file, replay file and E0s."""
    rng = np.random.default_rng(2026)
    frames = [a for name in FOUNDATION_MOLECULES for a in rattled(name, per_molecule, rng)]
    start = time.perf_counter()
    labelled, ids = label(frames, "f")
    e0s = isolated_e0s()
    label_s = time.perf_counter() - start
    cfg = ModelConfig(committee_size=2, seeds=[0, 1], warm_start="none", **FOUNDATION_MODEL)
    start = time.perf_counter()
    (member,) = train_committee(
        labelled, ids, cfg, workdir / "foundation-train", members=[0], atomic_energies=e0s
    )
    model = workdir / "foundation.model"
    model.write_bytes(member.weights)
    replay = workdir / "foundation-replay.xyz"
    write(replay, labelled, format="extxyz")
    return {
        "model": model,
        "replay": replay,
        "e0s": e0s,
        "frames": len(labelled),
        "molecules": list(FOUNDATION_MOLECULES),
        "label_s": round(label_s, 1),
        "train_s": round(time.perf_counter() - start, 1),
        "valid_forces_rmse": member.metrics["valid"]["forces_rmse"],
    }


def method_config(method: str, foundation: dict, args, seed: int) -> ModelConfig:
    common = {
        "committee_size": 2,
        "seeds": [seed, seed + 1000],
        "epochs": args.epochs,
        "min_updates": args.min_updates,
        "batch_size": 5,
        "patience": 1000,
    }
    if method == "scratch":
        return ModelConfig(warm_start="none", **FOUNDATION_MODEL | common)
    if method == "naive":
        # the optimizer MACE uses for multihead runs, so the difference is the replay
        common |= {"lr": MULTIHEAD_LR, "ema_decay": MULTIHEAD_EMA}
    return ModelConfig(
        warm_start="foundation",
        foundation_model=str(foundation["model"]),
        finetune=method,
        replay_file=str(foundation["replay"]) if method == "multihead" else None,
        replay_samples=args.replay_samples,
        **common,
    )


def errors(model, test: list) -> tuple[np.ndarray, np.ndarray]:
    """(force errors, all components; energy errors per atom) of one model on ``test``."""
    res = Committee([model]).evaluate(test)
    df = np.concatenate(
        [(f - a.arrays["REF_forces"]).ravel() for f, a in zip(res.forces, test, strict=True)]
    )
    de = np.array(
        [(e - a.info["REF_energy"]) / len(a) for e, a in zip(res.energy, test, strict=True)]
    )
    return df, de


def committee_stats(force_errors: list[np.ndarray], test: list, models: list) -> dict:
    """Mean pairwise correlation of the members' force errors; committee spread vs its
    true force error (RMS over the test components)."""
    pairs = [float(np.corrcoef(a, b)[0, 1]) for a, b in itertools.combinations(force_errors, 2)]
    res = Committee(models).evaluate(test, per_member=True)
    spread = np.concatenate([f.std(axis=0).ravel() for f in res.forces_members])
    mean_err = np.concatenate(
        [(f - a.arrays["REF_forces"]).ravel() for f, a in zip(res.forces, test, strict=True)]
    )
    return {
        "error_correlation": statistics.mean(pairs),
        "spread_rms": float(np.sqrt(np.mean(spread**2))),
        "committee_error_rms": float(np.sqrt(np.mean(mean_err**2))),
    }


def run(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        foundation = build_standin_foundation(work)
        print(
            f"stand-in foundation: {foundation['frames']} frames of "
            f"{len(foundation['molecules'])} molecules, labelled in {foundation['label_s']} s, "
            f"trained in {foundation['train_s']} s, valid force RMSE "
            f"{foundation['valid_forces_rmse']:.3f} eV/Å",
            flush=True,
        )
        rng = np.random.default_rng(7)
        # a few spare frames: an SCF that fails drops its frame
        pool, pool_ids = label(rattled(TARGET, max(args.counts) + 10, rng), "p")
        pool, pool_ids = pool[: max(args.counts)], pool_ids[: max(args.counts)]
        if len(pool) < max(args.counts):
            raise SystemExit(f"only {len(pool)} of {max(args.counts)} pool labels succeeded")
        test, _ = label(rattled(TARGET, args.test, np.random.default_rng(8)), "t")
        rows, committees = [], []
        for n in args.counts:
            for method in METHODS:
                models, ferrs = [], []
                for seed in range(args.seeds):
                    cfg = method_config(method, foundation, args, seed)
                    start = time.perf_counter()
                    (member,) = train_committee(
                        pool[:n],
                        pool_ids[:n],
                        cfg,
                        work / f"{method}-{n}-{seed}",
                        members=[0],
                        atomic_energies=foundation["e0s"],
                    )
                    model = load_model(member.weights, member.sha256)
                    df, de = errors(model, test)
                    models.append(model)
                    ferrs.append(df)
                    rows.append(
                        {
                            "n": n,
                            "method": method,
                            "seed": seed,
                            "force_rmse": float(np.sqrt(np.mean(df**2))),
                            "energy_rmse_mev_atom": float(1000 * np.sqrt(np.mean(de**2))),
                            "train_s": round(time.perf_counter() - start, 1),
                            "lr": member.hyperparameters["lr"],
                            "ema_decay": member.hyperparameters["ema_decay"],
                            "epochs": member.epochs,
                        }
                    )
                    print(
                        f"n={n:4d} {method:9s} seed {seed}: force RMSE "
                        f"{rows[-1]['force_rmse']:.4f} eV/Å, energy "
                        f"{rows[-1]['energy_rmse_mev_atom']:.1f} meV/atom "
                        f"({rows[-1]['train_s']} s)",
                        flush=True,
                    )
                if len(models) > 1:
                    committees.append(
                        {"n": n, "method": method} | committee_stats(ferrs, test, models)
                    )
        foundation_info = {k: v for k, v in foundation.items() if k not in ("model", "replay")}
        return {
            "level": "HF/STO-3G (PySCF)",
            "target": TARGET,
            "test_frames": len(test),
            "pool_frames": len(pool),
            "counts": args.counts,
            "seeds": args.seeds,
            "epochs": args.epochs,
            "min_updates": args.min_updates,
            "replay_samples": args.replay_samples,
            "foundation": foundation_info,
            "runs": rows,
            "committees": committees,
            "summary": summarize(rows),
        }


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["n"], r["method"]) for r in rows}, key=lambda k: (k[0], METHODS.index(k[1])))
    for n, method in keys:
        f = [r["force_rmse"] for r in rows if r["n"] == n and r["method"] == method]
        out.append(
            {
                "n": n,
                "method": method,
                "force_rmse_median": statistics.median(f),
                "force_rmse_min": min(f),
                "force_rmse_max": max(f),
            }
        )
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for method in METHODS:
        pts = [s for s in res["summary"] if s["method"] == method]
        x = [s["n"] for s in pts]
        y = [s["force_rmse_median"] for s in pts]
        lo = [s["force_rmse_median"] - s["force_rmse_min"] for s in pts]
        hi = [s["force_rmse_max"] - s["force_rmse_median"] for s in pts]
        ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training labels (ethanol, HF/STO-3G)")
    ax.set_ylabel(f"test force RMSE (eV/Å), n_test={res['test_frames']}")
    ax.set_title(f"median and range over {res['seeds']} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[10, 25, 50, 100])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--test", type=int, default=60, help="test frames")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--min-updates", type=int, default=300)
    ap.add_argument("--replay-samples", type=int, default=100)
    args = ap.parse_args()
    res = run(args)
    out = ROOT / "benchmarks" / "results"
    (out / "finetune_bench.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    plot(res, out / "finetune_bench.png")
    for s in res["summary"]:
        print(
            f"n={s['n']:4d} {s['method']:9s} force RMSE median {s['force_rmse_median']:.4f} "
            f"(range {s['force_rmse_min']:.4f}-{s['force_rmse_max']:.4f}) eV/Å"
        )
    for c in res["committees"]:
        print(
            f"n={c['n']:4d} {c['method']:9s} member error correlation "
            f"{c['error_correlation']:.2f}, spread {c['spread_rms']:.3f} vs error "
            f"{c['committee_error_rms']:.3f} eV/Å"
        )
    print(f"wrote {out / 'finetune_bench.json'} and {out / 'finetune_bench.png'}")


if __name__ == "__main__":
    main()
