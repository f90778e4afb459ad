"""The active-learning loop from a foundation model against from scratch: labels to reach
a target hold-out error.

    python benchmarks/finetune_loop.py [--target 0.15] [--max-iterations 8] [--work DIR]

Two real ``aloop run`` campaigns on ethanol at HF/STO-3G, side by side (one thread each),
that differ only in where their committee starts:

- ``scratch``: ``warm_start: previous`` (random weights at iteration 0, then the previous
  iteration's members), with the stand-in foundation's architecture (32 channels, L=0,
  r_max 5 Å);
- ``foundation``: ``warm_start: foundation``, MACE's multihead replay fine-tuning from the
  stand-in foundation of ``finetune_bench.py`` (built once into the work folder), each
  member replaying its own 100-frame subset of the foundation's data, with MACE's own
  multihead optimizer (learning rate 1e-4, EMA 0.99999);
- ``foundation_lr1e-2`` and ``foundation_lr1e-3`` (added after ``foundation``
  plateaued): the same with the campaign's EMA (0.99) and a learning rate of 0.01 (the
  scratch arm's) or 0.001, ``model.finetune_optimizer: campaign``.

Everything else is arm A of the data-efficiency study (benchmarks/al_efficiency/arms.py:
committee of 3, 8 labels per iteration by farthest-point sampling, walkers at 300, 600
and 1000 K, the same seeds), plus:

- a hold-out of 4 explored frames per iteration, and the hold-out rule as the stopping
  rule: ``stop.force_error_target`` = ``--target`` once 8 hold-out frames are in (the
  accurate-ratio rule is switched off by a patience beyond the cap);
- a calibrated trust window (lo 0.05, hi 1.0 eV/Å of estimated true error): members
  fine-tuned from one foundation agree far more closely than their error
  (finetune_bench), so a raw window would call nearly every frame accurate.

Each campaign's own hold-out comes from its own exploration, so the two are also scored
on common test sets that neither trained on: the data-efficiency study's DFT-driven MD of
ethanol at 300/600/1000 K (120 frames) and at 1500 K (beyond the exploration), both at the
same level (benchmarks/al_efficiency/results/), and round 3's probes beyond the
exploration (benchmarks/al_efficiency/beyond.py: torsion scans and stretched bonds,
labelled here at the campaign's DFT settings). Reported per campaign: why and when it
stopped, its training labels and every DFT call it made (hold-out, isolated atoms,
failures), and each iteration's hold-out and test-set force RMSE. Results: stdout and
benchmarks/results/finetune_loop.json. Re-running resumes (the campaigns resume; the
foundation and evaluations are kept in the work folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.al_efficiency import arms, evaluate  # noqa: E402
from benchmarks.al_efficiency.beyond import labelled_beyond  # noqa: E402
from benchmarks.al_efficiency.run import prefect_api  # noqa: E402
from benchmarks.finetune_bench import FOUNDATION_MODEL, build_standin_foundation  # noqa: E402

#: Each arm's learning rate when it does not use MACE's multihead optimizer (1e-4).
CAMPAIGN_LR = {"scratch": 0.01, "foundation_lr1e-2": 0.01, "foundation_lr1e-3": 0.001}
ARMS = ("scratch", "foundation", "foundation_lr1e-2", "foundation_lr1e-3")
TESTSETS = ROOT / "benchmarks" / "al_efficiency" / "results"
HOLDOUT_PER_ITERATION = 4
HOLDOUT_MIN_FRAMES = 8
REPLAY_SAMPLES = 100


def foundation(work: Path) -> dict:
    """The stand-in foundation (model, replay file, E0s), built once into ``work``."""
    info = work / "foundation.json"
    if info.exists():
        return json.loads(info.read_text())
    print("building the stand-in foundation (finetune_bench.py) ...", flush=True)
    built = build_standin_foundation(work)
    out = {k: str(v) if isinstance(v, Path) else v for k, v in built.items()}
    info.write_text(json.dumps(out, indent=1) + "\n")
    return out


def campaign_name(arm: str, seed: int) -> str:
    return f"finetune-loop-{arm}-seed{seed}"


def campaign_config(arm: str, base: dict, args: argparse.Namespace) -> dict:
    """Arm A of the data-efficiency study, started from scratch or from the foundation."""
    cfg = arms.campaign_config("al", args.seed)
    cfg["campaign"] = campaign_name(arm, args.seed)
    cfg["description"] = f"Foundation fine-tuning in the loop, arm {arm}, seed {args.seed}"
    arch = {k: FOUNDATION_MODEL[k] for k in ("num_channels", "max_L", "r_max")}
    cfg["model"] |= arch | {"e0s": "isolated_atoms"}
    if arm.startswith("foundation"):
        cfg["model"] |= {
            "warm_start": "foundation",
            "foundation_model": base["model"],
            "finetune": "multihead",
            "replay_file": base["replay"],
            "replay_samples": REPLAY_SAMPLES,
        }
    if arm.startswith("foundation_lr"):
        cfg["model"] |= {"finetune_optimizer": "campaign", "lr": CAMPAIGN_LR[arm]}
    cfg["select"]["trust"] = {"lo": 0.05, "hi": 1.0, "calibrated": True}
    cfg["select"]["holdout_per_system"] = HOLDOUT_PER_ITERATION
    cfg["stop"] = {
        "max_iterations": args.max_iterations,
        "accurate_ratio": 1.0,
        "patience": args.max_iterations + 1,
        "force_error_target": args.target,
        "holdout_min_frames": HOLDOUT_MIN_FRAMES,
    }
    return cfg


def run_campaign(arm: str, base: dict, args: argparse.Namespace, env: dict[str, str]) -> None:
    import os
    import subprocess

    name = campaign_name(arm, args.seed)
    path = args.work / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(campaign_config(arm, base, args), sort_keys=False))
    log = args.work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"campaign {name}: running (log: {log})", flush=True)
    aloop = Path(sys.executable).with_name("aloop")
    with log.open("a") as out:
        code = subprocess.run(
            [str(aloop), "run", str(path), "--db", campaign_db(args.work, name)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    # a campaign that fails (a dead end, say) is a result too: its committees and its
    # stored reason are reported with the others
    how = "done" if code == 0 else f"ended with exit code {code} (see {log})"
    print(f"campaign {name}: {how} after {time.perf_counter() - start:.0f} s", flush=True)


def campaign_db(work: Path, name: str) -> str:
    return f"embedded://{work / 'db' / name}"


def spent(name: str) -> dict:
    """Why and when the campaign stopped, and what it spent, iteration by iteration."""
    from db.campaigns import get_campaign
    from db.isolated_atoms import isolated_atom_ids
    from db.iterations import campaign_iterations
    from db.labels import holdout_label_count, label_counts

    campaign = get_campaign(name)
    its = campaign_iterations(campaign.id)
    counts = label_counts(campaign.id)
    return {
        "status": campaign.status,
        "reason": campaign.status_reason,
        "iterations": [
            {
                "iteration": it.index,
                "holdout_forces_rmse": it.stats.holdout_forces_rmse,
                "holdout_frames": it.stats.holdout_error.n if it.stats.holdout_error else 0,
                "labelled": it.stats.labelled,
                "wall_s": round(it.stats.wall_s or 0.0, 1),
            }
            for it in its
        ],
        "labels_by_status": {s.value: n for s, n in counts.items()},
        "holdout_labels": holdout_label_count(campaign.id),
        "isolated_atoms": len(isolated_atom_ids(campaign.id)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=0.15, help="hold-out force RMSE, eV/Å")
    ap.add_argument("--max-iterations", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "finetune_loop_work")
    args = ap.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = foundation(args.work)
    env = {
        "ALOOP_DATA_DIR": str(args.work / "data"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    with prefect_api(args.work) as prefect_env, ThreadPoolExecutor(2) as pool:
        # two at a time, one thread each (2 cores); a finished campaign is not re-run
        futures = [pool.submit(run_campaign, a, base, args, env | prefect_env) for a in args.arms]
        for fut in futures:
            fut.result()
    campaigns_s = time.perf_counter() - t0

    from ase.io import read

    from aloop.models.io import pick_device
    from aloop.versions import code_versions
    from db import connection

    device = pick_device("auto")
    probes, probes_failed = labelled_beyond(arms.DFT, args.work / "beyond-probes.xyz")
    tests = {
        "md_300-1000K": read(TESTSETS / "testset.xyz", ":"),
        "md_1500K": read(TESTSETS / "testset-1500K.xyz", ":"),
        "beyond_probes": probes,
    }
    out: dict = {
        "command": "python benchmarks/finetune_loop.py "
        f"--target {args.target} --max-iterations {args.max_iterations} --seed {args.seed} "
        f"--arms {' '.join(args.arms)}",
        "versions": code_versions(),
        "device": device,
        "target_forces_rmse": args.target,
        "foundation": {k: v for k, v in base.items() if k not in ("model", "replay")},
        "configs": {a: campaign_config(a, base, args) for a in args.arms},
        "testsets": {k: len(v) for k, v in tests.items()},
        "beyond_probes_failed_labels": probes_failed,
        "arms": {},
    }
    for arm in args.arms:
        name = campaign_name(arm, args.seed)
        connection.connect(campaign_db(args.work, name))
        try:
            rows = {
                test: evaluate.test_errors(
                    name, frames, test, args.work / "evaluation.json", device
                )
                for test, frames in tests.items()
            }
            res = spent(name) | {"test": rows}
            out["arms"][arm] = res | {"to_target": to_target(res, args.target)}
        finally:
            connection.disconnect()
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["campaigns_s"] = round(campaigns_s, 1)
    path = ROOT / "benchmarks" / "results" / "finetune_loop.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    report(out)
    print(f"wrote {path}")


def to_target(res: dict, target: float) -> dict:
    """The first committee below ``target`` on the campaign's own hold-out and on each
    common test set: its iteration, the training labels it had, and the DFT calls the
    campaign had made by then (training and hold-out labels of earlier iterations, and
    the isolated atoms); None where it never got there."""
    trained = {row["iteration"]: row["labels"] for row in next(iter(res["test"].values()))}
    its = {it["iteration"]: it for it in res["iterations"]}

    def at(k: int | None) -> dict | None:
        if k is None:
            return None
        calls = sum(its[j]["labelled"] or 0 for j in its if j < k) + res["isolated_atoms"]
        return {"iteration": k, "training_labels": trained.get(k), "dft_calls": calls}

    held = [k for k, it in sorted(its.items()) if (it["holdout_forces_rmse"] or 1e9) < target]
    out = {"holdout": at(held[0] if held else None)}
    for test, rows in res["test"].items():
        below = [r["iteration"] for r in rows if r["forces_rmse"] < target]
        out[test] = at(min(below) if below else None)
    return out


def report(out: dict) -> None:
    for arm, res in out["arms"].items():
        print(f"{arm}: {res['status']} ({res['reason']})")
        print(f"  labels by status {res['labels_by_status']}, hold-out {res['holdout_labels']}")
        for where, hit in res["to_target"].items():
            got = (
                "not reached"
                if hit is None
                else f"iteration {hit['iteration']}, {hit['training_labels']} training labels, "
                f"{hit['dft_calls']} DFT calls"
            )
            print(f"  below {out['target_forces_rmse']} eV/Å on {where}: {got}")
        tests = res["test"]
        for it in res["iterations"]:
            k = it["iteration"]
            per_test = "  ".join(
                f"{test} {row['forces_rmse']:.3f}"
                for test, rows in tests.items()
                for row in rows
                if row["iteration"] == k
            )
            held = it["holdout_forces_rmse"]
            print(
                f"  iteration {k}: labelled {it['labelled']}, hold-out "
                f"{'-' if held is None else f'{held:.3f}'} on {it['holdout_frames']}; "
                f"test force RMSE {per_test}"
            )


if __name__ == "__main__":
    main()
