"""Orchestration overhead of the campaign loop: the share of one iteration's wall time
spent outside DFT, training and MD (Prefect, database, selection, bookkeeping).

    python benchmarks/loop_bench.py [--config configs/demo-water.yaml] [--rounds 3]

Runs the real flow (``flows.campaign.campaign_flow``, Prefect's temporary API server)
for the seed iteration and two exploring iterations of the campaign, on a fresh embedded
database, then reads the timings every stage stores on its iterations:

- ``compute_s`` of train / explore / label: the time inside ``train_committee``,
  ``run_walkers`` and the labelling fan-out;
- the rest of each stage, the select stage (with the hold-out draw), the statistics
  (hold-out error, calibration, committee error) and the stage bookkeeping between
  them: overhead;
- the final stage (the production committee once the cap fires): its training is
  science, its bookkeeping and hold-out evaluation overhead.

The labelling fan-out itself includes Prefect's per-task cost; a stricter figure counts
as DFT only the PySCF wall time divided by the workers (perfect packing) and the rest
of the fan-out as overhead. Both are reported. There is no second arm to alternate with:
both parts of the share are measured inside the same run, stage by stage. The run is
repeated ``--rounds`` times (``benchmarks.harness``, each on a fresh database) and the
median share over rounds is reported with its spread. Results: stdout and
benchmarks/results/loop_bench.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.stats import IterationStats  # noqa: E402
from aloop.vocabulary import LOOP_STAGES, Stage  # noqa: E402
from benchmarks.harness import Spread, alternate, save  # noqa: E402

EXPLORING = 2


def run_campaign(config: Path, cfg: dict, work: Path, counter: Iterator[int]) -> dict:
    """One seed + ``EXPLORING`` iterations on a fresh database: result and stored stats."""
    from db import campaigns, connection, iterations
    from flows.campaign import campaign_flow

    # a campaign of its own per run: the data directory (models, logs) is shared
    name = f"loop-bench-{next(counter)}"
    config.write_text(yaml.safe_dump({**cfg, "campaign": name}))
    db_uri = f"embedded://{work / name}"
    try:
        result = campaign_flow(config_path=str(config), db_uri=db_uri)
    finally:
        config.unlink()
    connection.connect(db_uri)
    campaign_id = campaigns.get_campaign(name).id
    stats = {it.index: it.stats for it in iterations.campaign_iterations(campaign_id)}
    connection.disconnect()
    held = result.final_holdout  # a pydantic record inside the dataclass
    outcome = {**dataclasses.asdict(result), "final_holdout": held and held.to_doc()}
    return {"result": outcome, "stats": stats}


def iteration_row(k: int, it: IterationStats, workers: int) -> tuple[dict, float, float, float]:
    """One exploring iteration's row, and its wall, science and strict-science seconds."""
    t, labelling = it.timings, it.labelling
    wall = it.wall_s
    md_train = t[Stage.TRAIN].compute_s + t[Stage.EXPLORE].compute_s
    science = md_train + t[Stage.LABEL].compute_s
    strict = md_train + labelling.dft_wall_s / workers
    stage_walls = sum(t[s].wall_s for s in LOOP_STAGES)
    row = {
        "iteration": k,
        "wall_s": wall,
        **{s.value: t[s].model_dump() for s in (Stage.TRAIN, Stage.EXPLORE, Stage.SELECT)},
        "label": {
            **t[Stage.LABEL].model_dump(),
            "dft_wall_s": labelling.dft_wall_s,
            "workers": workers,
        },
        "statistics_and_bookkeeping_s": round(wall - stage_walls, 3),
        "labels": labelling.labelled + labelling.label_failures,
        "frames": it.explore.sampled,
        "overhead_share": round((wall - science) / wall, 4),
        "overhead_share_strict": round((wall - strict) / wall, 4),
    }
    return row, wall, science, strict


def summarise(run: dict, total: float, workers: int) -> dict:
    """The overhead shares of one run's exploring iterations, each and together."""
    stats = run["stats"]
    rows, sums = [], [0.0, 0.0, 0.0]
    for k in range(1, EXPLORING + 1):
        row, *seconds = iteration_row(k, stats[k], workers)
        rows.append(row)
        sums = [a + b for a, b in zip(sums, seconds, strict=True)]
    # The final stage (the production committee): training is science, its bookkeeping
    # and the hold-out evaluation are overhead.
    final = stats[EXPLORING + 1].timings[Stage.FINAL]
    sums = [sums[0] + final.wall_s, sums[1] + final.compute_s, sums[2] + final.compute_s]
    wall, science, strict = sums
    return {
        "result": run["result"],
        "run_wall_s": round(total, 2),
        "iteration0_wall_s": stats[0].wall_s,
        "iterations": rows,
        "final": {**final.model_dump(), "overhead_s": round(final.wall_s - final.compute_s, 3)},
        "overhead_share": round((wall - science) / wall, 4),
        "overhead_share_strict": round((wall - strict) / wall, 4),
        "per_run_startup_s": round(total - wall - stats[0].wall_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo-water.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
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
    # exactly EXPLORING iterations: the cap, not an earlier rule, ends every run
    cfg["stop"].update(
        max_iterations=EXPLORING,
        force_error_target=None,
        accurate_ratio=1.0,
        patience=EXPLORING + 1,
    )
    config = Path(args.config).with_name(".loop-bench.yaml")

    from dft.batch import default_layout

    workers = cfg.get("execution", {}).get("label_workers") or default_layout()[0]
    # no warm-up: the first run's start-up (Prefect's server) is a figure of its own
    t = alternate(
        {"campaign": partial(run_campaign, config, cfg, work, itertools.count(1))},
        rounds=args.rounds,
        warmup=0,
    )
    runs = [
        summarise(run, total, workers)
        for run, total in zip(t.results["campaign"], t.seconds["campaign"], strict=True)
    ]
    out = {
        "config": str(Path(args.config).relative_to(ROOT)),
        "rounds": args.rounds,
        "overhead_share": Spread.of([r["overhead_share"] for r in runs]).to_dict(),
        "overhead_share_strict": Spread.of([r["overhead_share_strict"] for r in runs]).to_dict(),
        "runs": runs,
        "timings": t.to_dict(),
    }
    print(json.dumps(out, indent=2))
    save("loop_bench", out)


if __name__ == "__main__":
    main()
