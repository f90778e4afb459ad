"""The molten-salt demo's figures, read from its campaign: what it cost and what it gives.

Run the demo first (``make demo-molten-salt``, which also runs ``aloop density``), then

    python benchmarks/molten_salt.py [--db URI] [--campaign demo-molten-salt]

It reads the stored campaign: per iteration the labels, their DFT seconds, the hold-out
errors (energy, force and stress, with n) and the stage times; the production committee's
hold-out error; the stored density table; the wall time of the whole run as the sum of
the iterations' wall times. The one thing computed is the production committee's pressure
bias on the hold-out cells (mean of committee minus DFT pressure, with its standard error):
the sign says which way the model's own error moves its density. Writes benchmarks/results/
molten_salt.json and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Experimental density of molten MgCl2 near its melting point (987 K), g/cm³: about
#: 1.67-1.68 (Janz's molten-salt tables, the value the issue quotes).
EXPERIMENT_G_CM3 = 1.67


def collect(db_uri: str | None, name: str) -> dict:
    from aloop.analysis.density import DensityRun
    from aloop.vocabulary import LabelStatus
    from db import campaigns, connection, iterations
    from db.documents import Label

    connection.connect(db_uri)
    try:
        campaign = campaigns.get_campaign(name)
        if campaign is None:
            raise SystemExit(f"no campaign {name!r}: run `make demo-molten-salt` first")
        rows = []
        for it in iterations.campaign_iterations(campaign.id):
            st = it.stats
            held = st.final.final_holdout if st.final is not None else st.holdout_error
            rows.append(
                {
                    "iteration": it.index,
                    "final": it.is_final,
                    "labelled": st.labelling.labelled if st.labelling else 0,
                    "label_failures": st.labelling.label_failures if st.labelling else 0,
                    "holdout_labelled": st.labelling.holdout_labelled if st.labelling else 0,
                    "dft_wall_s": st.labelling.dft_wall_s if st.labelling else 0.0,
                    "sampled": st.explore.sampled if st.explore else None,
                    "time_ratio": st.explore.systems[0].time_ratio if st.explore else None,
                    "stress_dev_median_gpa": st.explore.systems[0].stress_dev_median_gpa
                    if st.explore
                    else None,
                    "holdout": held.model_dump() if held is not None else None,
                    "wall_s": st.wall_s,
                    "stages_s": {str(k): v.wall_s for k, v in st.timings.items()},
                }
            )
        labels = list(Label.objects(campaign=campaign.id).only("status", "wall_time"))
        ok_walls = [lab.wall_time for lab in labels if lab.status == LabelStatus.OK]
        density = campaigns.analyses(campaign.id, kind=DensityRun.KIND)
        bias = pressure_bias(campaign.id)
        return {
            "campaign": name,
            "status": str(campaign.status),
            "status_reason": campaign.status_reason,
            "iterations": rows,
            "labels_ok": len(ok_walls),
            "labels_failed": len(labels) - len(ok_walls),
            "dft_s_per_label_median": statistics.median(ok_walls) if ok_walls else None,
            "dft_s_per_label_max": max(ok_walls) if ok_walls else None,
            "run_wall_s": sum(r["wall_s"] or 0.0 for r in rows),
            "density": DensityRun.from_doc(density[-1]).to_doc() if density else None,
            "experiment_density_g_cm3": EXPERIMENT_G_CM3,
            "holdout_pressure_bias_gpa": bias,
        }
    finally:
        connection.disconnect()


def pressure_bias(campaign_id) -> dict | None:
    """Mean committee minus DFT pressure (GPa) on the hold-out cells, with its standard
    error and n; None without a production committee or hold-out cells."""
    import numpy as np
    from ase.units import GPa

    from aloop.models.committee import Committee
    from aloop.models.io import load_model
    from db import labels
    from db.documents import Label
    from db.models import final_committee, load_model_weights

    members = final_committee(campaign_id)
    hashes = Label.objects(campaign=campaign_id).distinct("settings_hash")
    _, held = labels.labelled_frames(campaign_id, hashes, holdout=True)
    held = [a for a in held if a.pbc.all() and "REF_stress" in a.info]
    if not members or not held:
        return None
    committee = Committee([load_model(load_model_weights(m.id), m.sha256) for m in members])
    predicted = committee.evaluate(held, stress=True).stress
    diff = np.array(
        [
            -(p[:3].mean() - np.asarray(a.info["REF_stress"])[:3].mean()) / GPa
            for p, a in zip(predicted, held, strict=True)
        ]
    )
    return {
        "mean": float(diff.mean()),
        "stderr": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else None,
        "n": len(diff),
    }


def report(res: dict) -> str:
    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    lines = [
        f"campaign {res['campaign']}: {res['status']} ({res['status_reason']})",
        f"run wall time {res['run_wall_s'] / 60:.1f} min; labels {res['labels_ok']} ok, "
        f"{res['labels_failed']} failed; DFT per label median "
        f"{fmt(res['dft_s_per_label_median'], '.1f')} s, max "
        f"{fmt(res['dft_s_per_label_max'], '.1f')} s",
        "",
        "| iteration | labels (hold-out) | DFT s | walker-time accurate | stress dev median GPa "
        "| hold-out n | E RMSE meV/atom | F RMSE eV/Å | stress RMSE GPa (n) | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["iterations"]:
        h = r["holdout"] or {}
        e = h.get("energy_rmse_per_atom")
        lines.append(
            f"| {'final' if r['final'] else r['iteration']} | {r['labelled']} "
            f"({r['holdout_labelled']}) | {r['dft_wall_s']:.0f} | "
            f"{fmt(r['time_ratio'], '.0%')} | {fmt(r['stress_dev_median_gpa'], '.2f')} | "
            f"{h.get('n', '-')} | {fmt(None if e is None else 1000 * e, '.1f')} | "
            f"{fmt(h.get('forces_rmse'), '.3f')} | {fmt(h.get('stress_rmse_gpa'), '.2f')} "
            f"({h.get('stress_n', 0)}) | {fmt(r['wall_s'], '.0f')} |"
        )
    dens = res["density"]
    if dens is not None:
        lines += [
            "",
            f"density ({dens['walkers']} walker(s) x {dens['steps']} steps of "
            f"{dens['timestep_fs']:g} fs, {dens['equilibration']} equilibration, cell "
            f"repeated {'x'.join(map(str, dens.get('repeats', (1, 1, 1))))} to "
            f"{dens.get('atoms') or '-'} atoms, barostat "
            f"{dens.get('barostat_time_fs') or '-'} fs):",
            "",
            "| T (K) | density g/cm³ | ± s.e. | walkers used | samples | stopped |",
            "|---|---|---|---|---|---|",
        ]
        for p in dens["points"]:
            lines.append(
                f"| {p['temperature_k']:g} | {fmt(p['density_g_cm3'], '.3f')} | "
                f"{fmt(p['stderr_g_cm3'], '.3f')} | {p['walkers_used']}/{p['walkers']} | "
                f"{p['samples']} | {', '.join(p['stopped']) or '-'} |"
            )
        lines.append(f"experiment near 1000 K: {res['experiment_density_g_cm3']} g/cm³")
    bias = res.get("holdout_pressure_bias_gpa")
    if bias is not None:
        lines.append(
            f"production committee pressure minus DFT on {bias['n']} hold-out cells: "
            f"{bias['mean']:+.2f} ± {fmt(bias['stderr'], '.2f')} GPa"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URI (default: ALOOP_DB_URI)")
    parser.add_argument("--campaign", default="demo-molten-salt")
    args = parser.parse_args()
    from aloop.settings import resolve_db_uri

    res = collect(args.db or resolve_db_uri(None), args.campaign)
    out = ROOT / "benchmarks" / "results" / "molten_salt.json"
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(report(res))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
