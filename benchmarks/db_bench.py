"""Insert and read back ethanol-sized structures on each database backend.

    python benchmarks/db_bench.py [--n 10000] [--wire-n 1000] [--wire-batch 50]

Backends: the embedded store (litemongo, SQLite files), the in-memory store, and a
MongoDB wire-protocol server (mongoeco's proxy, started from .venv-wire or
ALOOP_TEST_WIRE_PYTHON; or any server given as ALOOP_BENCH_MONGO_URI). Each run
inserts N distinct 9-atom frames through ``db.structures.insert_structures`` (hashing,
dedupe lookup, validation, insert_many), inserts them again (all duplicates), then streams
them back with ``iter_structures`` (arrays decoded). Target: 10,000 inserted in < 5 s on
the embedded store. Results go to stdout and benchmarks/results/db_bench.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.records import StructureRecord  # noqa: E402
from benchmarks.harness import save, timed  # noqa: E402
from db import campaigns, connection, labels, structures  # noqa: E402


def ethanol_frames(n: int, seed: int = 0) -> list[StructureRecord]:
    rng = np.random.default_rng(seed)
    base = molecule("CH3CH2OH")
    out = []
    for i in range(n):
        pos = base.positions + rng.normal(scale=0.1, size=base.positions.shape)
        out.append(
            StructureRecord(
                numbers=base.numbers,
                positions=pos,
                cell=np.zeros((3, 3)),
                pbc=[False] * 3,
                system="ethanol",
                origin="md",
                iteration=i % 10,
                lineage={"walker": i % 16, "temperature": 300.0, "md_step": i},
                uncertainty={"force_dev_max": float(rng.random()), "force_dev_mean": 0.01},
                verdict="candidate",
            )
        )
    return out


def run(uri: str, n: int, batch: int) -> dict:
    records = ethanol_frames(n)
    connection.connect(uri)
    try:
        campaign, _ = campaigns.get_or_create_campaign(
            f"bench-{n}", {"campaign": "bench"}, "b" * 64
        )
        # one-off steps in a fixed order (each needs the one before): timed, not alternated
        insert = partial(structures.insert_structures, campaign.id, records, batch_size=batch)
        insert_s, res = timed(insert)
        assert res.inserted == n, res.inserted
        dedupe_s, again = timed(insert)
        assert again.duplicates == n
        read_s, read = timed(lambda: sum(1 for _ in structures.iter_structures(campaign.id)))
        assert read == n
        # the aggregation the campaign's outcome runs (labels by status)
        agg_s, _ = timed(lambda: labels.label_counts(campaign.id))
    finally:
        connection.disconnect()
    return {
        "n": n,
        "batch": batch,
        "insert_s": round(insert_s, 3),
        "insert_per_s": round(n / insert_s),
        "dedupe_s": round(dedupe_s, 3),
        "read_s": round(read_s, 3),
        "read_per_s": round(n / read_s),
        "aggregate_s": round(agg_s, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--wire-n", type=int, default=1000)
    ap.add_argument(
        "--wire-batch",
        type=int,
        default=50,
        help="mongoeco's insert cost grows with the batch size; 50 is its sweet spot",
    )
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["embedded"] = run(f"embedded://{tmp}/store", args.n, structures.INSERT_BATCH)
        print("embedded", results["embedded"], flush=True)
        results["memory"] = run("memory://bench", args.n, structures.INSERT_BATCH)
        print("memory  ", results["memory"], flush=True)
        uri = os.environ.get("ALOOP_BENCH_MONGO_URI")
        server = None
        if not uri and args.wire_n:
            sys.path.insert(0, str(ROOT / "tests"))
            from support.wire import WireServer

            server = WireServer(Path(tmp))
            uri = server.uri("aloop_bench")
        if uri:
            try:
                results["wire"] = run(uri, args.wire_n, args.wire_batch)
                print("wire    ", results["wire"], flush=True)
            finally:
                if server:
                    server.stop()
    save("db_bench", results)
    target = results["embedded"]["insert_s"]
    print(f"embedded: {args.n} inserted in {target:.2f} s (target < 5 s for 10,000)")


if __name__ == "__main__":
    main()
