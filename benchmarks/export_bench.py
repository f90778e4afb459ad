"""Dataset export from the embedded store: seconds and peak memory for N structures.

    python benchmarks/export_bench.py [--sizes 10000 100000]

For each N: a fresh embedded store is filled with N labelled ethanol structures (bulk
inserts, not part of the timing), then ``aloop export`` (the real command, in its own
process) writes them as extxyz with the default split. Reported: export wall time, its
process's peak RSS, and the baseline RSS of a process that only imports aloop and
connects, so the growth with N is visible. Results: stdout and
benchmarks/results/export_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import save, timed  # noqa: E402


def seed(uri: str, n: int) -> None:
    """N rattled ethanol structures, each with an ok label, inserted in bulk."""
    import numpy as np
    from ase.build import molecule
    from bson import ObjectId

    from aloop.records import StructureRecord
    from db import campaigns, connection, structures
    from db.arrays import encode_array
    from db.documents import Label, utcnow
    from dft.settings import LabelSettings

    settings = LabelSettings(method="DFT", xc="PBE", basis="def2-svp")
    connection.connect(uri)
    campaign, _ = campaigns.get_or_create_campaign("bench", {"campaign": "bench"}, "b" * 64)
    base = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    labels = Label._get_collection()
    for start in range(0, n, 5000):
        recs = []
        for _ in range(min(5000, n - start)):
            a = base.copy()
            a.positions += rng.normal(scale=0.05, size=a.positions.shape)
            recs.append(StructureRecord.from_atoms(a, "ethanol", "md", iteration=1))
        ids = structures.insert_structures(campaign.id, recs).ids
        now = utcnow()
        labels.insert_many(
            [
                {
                    "_id": ObjectId(),
                    "created_at": now,
                    "updated_at": now,
                    "structure": sid,
                    "campaign": campaign.id,
                    "settings_hash": settings.settings_hash(),
                    "settings": settings.result_fields(),
                    "status": "ok",
                    "energy": float(-4200 + rng.normal()),
                    "forces": encode_array(rng.normal(size=(9, 3))),
                    "iteration": 1,
                }
                for sid in ids
            ]
        )
    connection.disconnect()


#: Peak RSS of this process in MiB. /proc's VmHWM, not getrusage: ru_maxrss survives
#: fork and exec, so a child would report the parent's peak (the seeding) as its own.
_HWM = (
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1]) / 1024\n"
)


def baseline_rss(uri: str) -> float:
    """Peak RSS (MiB) of a process that imports the CLI's export path and connects."""
    code = (
        "from db import connection\nimport db.export, aloop.dataset.export, aloop.cli\n"
        f"connection.connect({uri!r})\n"
        f"{_HWM}\nprint(hwm())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(out.stdout.strip())


def export(uri: str, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of `aloop export` in a child process."""
    argv = ["aloop", "export", "bench", "--out", str(out), "--format", "extxyz", "--db", uri]
    code = (
        "import atexit, runpy, sys\n"
        f"{_HWM}\n"
        "atexit.register(lambda: print('PEAK', hwm(), file=sys.stderr))\n"
        f"sys.argv = {argv!r}\n"
        "runpy.run_module('aloop', run_name='__main__')\n"
    )
    wall, run = timed(
        partial(
            subprocess.run, [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
        )
    )
    if run.returncode != 0:
        raise RuntimeError(f"export failed: {run.stdout}{run.stderr}")
    peak = float(run.stderr.rsplit("PEAK", 1)[1].split()[0])
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    rows = []
    for n in args.sizes:
        work = Path(tempfile.mkdtemp(prefix=f"aloop-export-{n}-"))
        uri = f"embedded://{work / 'db'}"
        seeded, _ = timed(partial(seed, uri, n))
        base = baseline_rss(uri)
        wall, peak = export(uri, work / "out")
        size = sum(f.stat().st_size for f in (work / "out").glob("*.xyz"))
        rows.append(
            {
                "structures": n,
                "seed_s": round(seeded, 1),
                "export_s": round(wall, 2),
                "structures_per_s": round(n / wall),
                "peak_rss_mib": round(peak, 1),
                "baseline_rss_mib": round(base, 1),
                "extxyz_mib": round(size / 2**20, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(work, ignore_errors=True)
    save("export_bench", {"rows": rows})


if __name__ == "__main__":
    main()
