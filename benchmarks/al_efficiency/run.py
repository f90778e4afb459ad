"""Data-efficiency study: aloop's active learning against pool-based random sampling.

    python benchmarks/al_efficiency/run.py [--seeds 0 1 2] [--arms ...] [--work DIR]

One command runs the whole study and resumes it when run again after an interruption:

1. test sets: DFT-driven MD of ethanol at 300, 600 and 1000 K (testset.py), written once
   to results/testset.xyz and hashed, and a second one at 1500 K;
2. campaigns: arms A and A3 (aloop) and B (random) for every seed, each a real ``aloop run``
   on one embedded database in the work folder (a re-run resumes each campaign where it
   stopped; finished ones are skipped by the loop itself);
3. evaluation: every trained committee on the test set, and MD stability of each
   campaign's final model (10 ps at 1000 K), cached by model hash;
4. report: results/results.json, results/table.md and the plots (the main test set, and
   a second one at 1500 K, beyond the exploration temperatures).

The work folder (gitignored) holds the database, logs and caches; the results folder is
committed. Read benchmarks/al_efficiency/README.md for the set-up and the findings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.al_efficiency import arms, evaluate, report  # noqa: E402
from benchmarks.al_efficiency.testset import TestSetPlan, generate  # noqa: E402

#: MD stability of the final models: 10 ps at the highest test temperature. 1 fs steps
#: (the DFT-driven test trajectories ran at 1 fs at 1000 K and stayed physical).
STABILITY = {"temperature": 1000.0, "trajectories": 8, "length_ps": 10.0, "timestep_fs": 1.0}

#: A second, smaller test set beyond the exploration temperatures (added in round 2,
#: after round 1): both arms explore up to 1000 K, so errors at 1500 K measure how each
#: arm's training set extrapolates, which is where selecting by uncertainty and
#: diversity is meant to pay off. Same DFT, integrator and sampling as the main set.
BEYOND = TestSetPlan(temperatures=(1500.0,))


@contextlib.contextmanager
def prefect_api(work: Path) -> Iterator[dict[str, str]]:
    """One Prefect server for all campaigns (each ``aloop run`` would start its own)."""
    if os.environ.get("PREFECT_API_URL"):
        yield {}
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = (work / "logs").joinpath("prefect-server.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("a") as out:
        server = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Prefect server did not start; see {log}")
            time.sleep(1)
        yield {"PREFECT_API_URL": url, "PREFECT_HOME": str(work / "prefect")}
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=arms.ARMS, default=list(arms.STUDY_ARMS))
    parser.add_argument(
        "--jobs", type=int, default=2, help="campaigns run at once (one thread each)"
    )
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    work, results = args.work.resolve(), args.results.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # 1. the test set, fixed once written
    plan = TestSetPlan()
    dft = {"method": arms.DFT["method"], "basis": arms.DFT["basis"]}
    dft["conv_tol"] = arms.DFT["scf"]["conv_tol"]
    t0 = time.perf_counter()
    testset = generate(plan, dft, work / "testset", results / "testset.xyz")
    timings["testset_s"] = time.perf_counter() - t0
    print(f"test set: {testset['frames']} frames, sha256 {testset['sha256'][:16]}", flush=True)
    beyond = generate(BEYOND, dft, work / "testset", results / "testset-1500K.xyz")
    print(f"1500 K test set: {beyond['frames']} frames, sha256 {beyond['sha256'][:16]}")

    # 2. the campaigns, arm by arm and seed by seed (each resumes on its own)
    env = {"ALOOP_DATA_DIR": str(work / "data")}
    t0 = time.perf_counter()
    # Campaigns side by side with one thread each: a 9-atom model is too small to keep
    # two threads busy, so two at a time on 2 cores beat one at a time with two threads.
    # Results do not depend on it (one thread is deterministic; seeds fix the rest).
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with prefect_api(work) as prefect_env, ThreadPoolExecutor(args.jobs) as pool:
        runs = [(arm, seed) for seed in args.seeds for arm in args.arms]
        futures = {
            pool.submit(_run_campaign, arm, seed, work, {**env, **prefect_env}): (
                arm,
                seed,
            )
            for arm, seed in runs
        }
        for fut in as_completed(futures):
            fut.result()
    timings["campaigns_s"] = time.perf_counter() - t0

    # 3. evaluation against the test set, and MD stability of the final models
    from ase.io import read

    from aloop.models.io import pick_device
    from aloop.versions import code_versions
    from db import connection

    device = pick_device("auto")
    test_frames = read(results / "testset.xyz", ":")
    beyond_frames = read(results / "testset-1500K.xyz", ":")
    rows: dict[str, dict[int, list[dict]]] = {arm: {} for arm in args.arms}
    rows_beyond: dict[str, dict[int, list[dict]]] = {arm: {} for arm in args.arms}
    finals: dict[tuple[str, int], dict] = {}
    spent: dict[str, dict[int, dict]] = {arm: {} for arm in args.arms}
    t0 = time.perf_counter()
    for arm in args.arms:
        for seed in args.seeds:
            name = arms.campaign_name(arm, seed)
            connection.connect(campaign_db(work, name))
            try:
                rows[arm][seed] = evaluate.test_errors(
                    name, test_frames, testset["sha256"], work / "evaluation.json", device
                )
                rows_beyond[arm][seed] = evaluate.test_errors(
                    name, beyond_frames, beyond["sha256"], work / "evaluation.json", device
                )
                finals[(arm, seed)] = evaluate.final_model(name)
                spent[arm][seed] = evaluate.campaign_summary(name)
            finally:
                connection.disconnect()
            print(f"evaluated {name}: {len(rows[arm][seed])} committees", flush=True)
    timings["evaluation_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stability = run_stability(finals, _start_geometry(), work / "evaluation.json")
    timings["stability_s"] = time.perf_counter() - t0

    # 4. the report, against the random baseline
    if "random" not in args.arms:
        print("no report: it compares every arm with arm 'random', which was not run")
        return
    curve, target, summary = report.against_random(rows)
    table = report.markdown_table(curve)
    report.plot(curve, target, str(results / "rmse_vs_labels.png"))
    curve_beyond, target_beyond, summary_beyond = report.against_random(rows_beyond)
    table_beyond = report.markdown_table(curve_beyond)
    report.plot(
        curve_beyond,
        target_beyond,
        str(results / "rmse_vs_labels_1500K.png"),
        title="Ethanol, HF/STO-3G: committee mean at 1500 K, beyond the exploration",
    )
    blocks = [
        table,
        report.target_table(summary, curve),
        report.calibration_table(curve),
        "1500 K test set:",
        table_beyond,
        report.target_table(summary_beyond, curve_beyond),
        report.stability_table({"settings": STABILITY, **stability}),
        report.campaigns_table(spent),
    ]
    (results / "table.md").write_text("\n\n".join(blocks) + "\n")
    out = {
        "command": "python benchmarks/al_efficiency/run.py --seeds "
        + " ".join(map(str, args.seeds))
        + " --arms "
        + " ".join(args.arms)
        + f" --jobs {args.jobs}",
        "versions": code_versions(),
        "device": device,
        "seeds": args.seeds,
        "configs": {arm: arms.campaign_config(arm, args.seeds[0]) for arm in args.arms},
        "testset": {**testset, "plan": plan.__dict__, "dft": dft},
        "target": {
            "definition": "arm B's mean test force RMSE with its largest training set",
            **summary,
        },
        "curves": curve,
        "beyond_exploration": {
            "testset": {**beyond, "plan": BEYOND.__dict__},
            "target": {
                "definition": "arm B's mean 1500 K force RMSE with its largest training set",
                **summary_beyond,
            },
            "curves": curve_beyond,
            "per_seed": rows_beyond,
        },
        "per_seed": rows,
        "campaigns": spent,
        "stability": {"settings": STABILITY, **stability},
        # this invocation only (a resumed study skips what is done); what each campaign
        # spent is under "campaigns"
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (results / "results.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(table)
    print(f"target force RMSE {target:.4f} eV/Å (arm B's final):")
    print("\n".join(report.target_lines(summary)))
    print("\n".join(report.target_lines(summary_beyond, where="at 1500 K, ")))
    print(f"results in {results}")


def campaign_db(work: Path, name: str) -> str:
    """Each campaign has its own embedded store: two run at once, as two processes."""
    return f"embedded://{work / 'db' / name}"


def _run_campaign(arm: str, seed: int, work: Path, env: dict[str, str]) -> None:
    name = arms.campaign_name(arm, seed)
    db_uri = campaign_db(work, name)
    start = time.perf_counter()
    print(f"campaign {name}: running (log: {work / 'logs' / name}.log)", flush=True)
    code = arms.run_arm(arm, seed, work, db_uri, env)
    if code != 0:
        raise SystemExit(f"campaign {name} failed with exit code {code}; see its log")
    print(f"campaign {name}: done in {time.perf_counter() - start:.0f} s", flush=True)


def run_stability(
    models: dict[tuple[str, int], dict], start: Any, cache: Path
) -> dict[str, dict[int, dict]]:
    """MD stability of every campaign's final model, two models at a time."""
    cache_now = json.loads(cache.read_text()) if cache.exists() else {}
    todo = {
        key: m
        for key, m in models.items()
        if evaluate.stability_key(m, STABILITY, key[1]) not in cache_now
    }
    if todo:
        print(f"MD stability: {len(todo)} final models, {STABILITY}", flush=True)
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {
                pool.submit(evaluate.md_stability, m, start, STABILITY, key[1]): key
                for key, m in todo.items()
            }
            for fut in as_completed(futures):
                arm, seed = futures[fut]
                m = todo[(arm, seed)]
                s = evaluate.cached(cache, evaluate.stability_key(m, STABILITY, seed), fut.result)
                print(
                    f"  {m['campaign']}: {s['stable']}/{s['trajectories']} stayed physical "
                    f"({s['wall_s']:.0f} s)",
                    flush=True,
                )
    stored = json.loads(cache.read_text())
    out: dict[str, dict[int, dict]] = {arm: {} for arm, _ in models}
    for (arm, seed), m in models.items():
        out[arm][seed] = stored[evaluate.stability_key(m, STABILITY, seed)]
    return out


def _start_geometry():
    from aloop.config import SystemConfig
    from aloop.structures import load_system_structures

    return load_system_structures(SystemConfig(**arms.COMMON["systems"][0]), ROOT)[0]


if __name__ == "__main__":
    main()
