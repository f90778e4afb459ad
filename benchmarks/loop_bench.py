"""Orchestration overhead of the campaign loop: the share of one iteration's wall time
spent outside DFT, training and MD (Prefect, database, selection, bookkeeping).

    python benchmarks/loop_bench.py [--config configs/demo-water.yaml]

Runs the real flow (``flows.campaign.campaign_flow``, Prefect's temporary API server)
for the seed iteration and two exploring iterations of the campaign, on a fresh embedded
database, then reads the timings every stage stores on its iterations:

- ``compute_s`` of train / explore / label: the time inside ``train_committee``,
  ``run_walkers`` and the labelling fan-out;
- the rest of each stage, the select stage, the committee-error statistics and the
  stage bookkeeping between them: overhead.

The labelling fan-out itself includes Prefect's per-task cost; a stricter figure counts
as DFT only the PySCF wall time divided by the workers (perfect packing) and the rest
of the fan-out as overhead. Both are reported. Results: stdout and
benchmarks/results/loop_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXPLORING = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo-water.yaml"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aloop-loop-bench-"))
    os.environ.update(
        ALOOP_DATA_DIR=str(work / "data"),
        PREFECT_HOME=str(work / "prefect"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["stop"]["max_iterations"] = EXPLORING
    cfg["campaign"] = "loop-bench"
    config = Path(args.config).with_name(".loop-bench.yaml")
    config.write_text(yaml.safe_dump(cfg))

    from db import connection
    from db.documents import Iteration
    from dft.batch import default_layout
    from flows.campaign import campaign_flow

    db_uri = f"embedded://{work / 'db'}"
    start = time.perf_counter()
    try:
        result = campaign_flow(config_path=str(config), db_uri=db_uri)
    finally:
        config.unlink()
    total = time.perf_counter() - start

    connection.connect(db_uri)
    stats = {it.index: it.stats for it in Iteration.objects.order_by("index")}
    connection.disconnect()
    workers = cfg.get("execution", {}).get("label_workers") or default_layout()[0]
    rows, wall_sum, science_sum, strict_sum = [], 0.0, 0.0, 0.0
    for k in range(1, EXPLORING + 1):
        it = stats[k]
        t = it["timings"]
        wall = it["iteration_wall_s"]
        md_train = t["train"]["compute_s"] + t["explore"]["compute_s"]
        science = md_train + t["label"]["compute_s"]
        strict = md_train + it["dft_wall_s"] / workers
        stage_walls = sum(t[s]["wall_s"] for s in ("train", "explore", "select", "label"))
        rows.append(
            {
                "iteration": k,
                "wall_s": wall,
                **{s: t[s] for s in ("train", "explore", "select")},
                "label": {**t["label"], "dft_wall_s": it["dft_wall_s"], "workers": workers},
                "statistics_and_bookkeeping_s": round(wall - stage_walls, 3),
                "labels": it["labelled"] + it["label_failures"],
                "frames": it["sampled"],
                "overhead_share": round((wall - science) / wall, 4),
                "overhead_share_strict": round((wall - strict) / wall, 4),
            }
        )
        wall_sum, science_sum, strict_sum = (
            wall_sum + wall,
            science_sum + science,
            strict_sum + strict,
        )
    out = {
        "config": str(Path(args.config).relative_to(ROOT)),
        "result": result,
        "run_wall_s": round(total, 2),
        "iteration0_wall_s": stats[0]["iteration_wall_s"],
        "iterations": rows,
        "overhead_share": round((wall_sum - science_sum) / wall_sum, 4),
        "overhead_share_strict": round((wall_sum - strict_sum) / wall_sum, 4),
        "per_run_startup_s": round(total - wall_sum - stats[0]["iteration_wall_s"], 2),
    }
    print(json.dumps(out, indent=2))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "loop_bench.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
