"""Dashboard response times on a big campaign: 50 iterations, 100,000 structures.

    python benchmarks/dashboard_bench.py [--iterations 50] [--structures 100000]

Seeds an embedded store (the tests' seeding: iterations with full statistics, their
selected structures and labels, one failed label every other iteration), starts the real
`aloop dashboard` in its own process and times, over HTTP: the campaigns list API, the
campaign API, the campaign page, a structure page and its API. Each is timed cold (its
first request in the fresh server, when the store builds its in-memory indexes) and warm
(median of 20); the requests alternate round by round (``benchmarks.harness``), the
first (warm-up) round being the cold one.
Results: stdout and benchmarks/results/dashboard_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import alternate, save, timed  # noqa: E402


def seed(uri: str, iterations: int, structures: int) -> str:
    """One campaign of ``iterations`` exploring iterations holding ``structures``."""
    from db import campaigns, connection
    from db.structures import iter_structures
    from tests.dashboard.seed import CONFIG_STOP, add_iteration

    connection.connect(uri)
    campaign, _ = campaigns.get_or_create_campaign(
        "big", {"campaign": "big", "stop": CONFIG_STOP}, "b" * 64
    )
    per = structures // (iterations + 1)
    for k in range(iterations + 1):
        add_iteration(campaign, k, structures=per)
    sid = next(iter_structures(campaign.id, iteration=iterations))["_id"]
    connection.disconnect()
    return sid


def get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=120) as r:
        r.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--structures", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aloop-dash-bench-"))
    uri = f"embedded://{work / 'db'}"
    seeded, sid = timed(partial(seed, uri, args.iterations, args.structures))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aloop", "dashboard", "--port", str(port), "--db", uri],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        paths = {
            "campaign API": "/api/campaigns/big",
            "campaign page (HTML)": "/campaigns/big",
            "campaigns list API": "/api/campaigns",
            "structure API": f"/api/structures/{sid}",
            "structure page (HTML)": f"/structures/{sid}",
        }
        t = alternate({n: partial(get, base + p) for n, p in paths.items()}, rounds=20, warmup=1)
        rows = {
            n: {
                "cold_s": round(t.warmup_seconds[n][0], 4),
                "warm_median_s": round(t.median_s(n), 4),
            }
            for n in paths
        }
        for n, row in rows.items():
            print(f"{n:24s} cold {row['cold_s']:7.3f} s   warm {row['warm_median_s']:7.4f} s")
    finally:
        proc.terminate()
        proc.wait()
    out = {
        "iterations": args.iterations,
        "structures": args.structures,
        "seed_s": round(seeded, 1),
        "requests": rows,
    }
    save("dashboard_bench", out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
