"""Hard SCF cases: does the ladder converge, and to the lowest stable solution?

    python benchmarks/scf_hard_cases.py [--only NAME-SUBSTRING]

Each case is labelled three ways: plain DIIS alone, the default ladder under
``dft.spin: restricted`` and, for closed-shell singlets, under ``dft.spin:
broken_symmetry``. Independently of the ladder, a search collects every solution it can
reach for the case: second-order SCF (Newton) from several initial guesses (minao, atom,
huckel), restricted and unrestricted, plus an unrestricted start with the HOMO and
LUMO mixed by 45 degrees (alpha +, beta -), each followed downhill through internal
instabilities (``dft.scf.settle``). A label's energy is compared with the lowest solution
found by any of these for its spin treatment: restricted labels against restricted
solutions, unrestricted (and broken-symmetry policy) labels against all solutions.

Table on stdout and in benchmarks/results/scf_hard_cases.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aloop.vocabulary import LabelStatus, SpinPolicy, SpinTreatment, Stability  # noqa: E402
from dft.label import label_structure  # noqa: E402
from dft.scf import Attempt, build_system, make_mean_field, settle  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402
from dft.units import HARTREE_EV  # noqa: E402

PBE = LabelSettings(method="DFT", xc="PBE", basis="6-31g", max_cycle=50)
PBE_MIN = replace(PBE, basis="sto-3g")
CELL = LabelSettings(
    method="DFT", xc="PBE", periodic=True, ke_cutoff_hartree=40, max_cycle=50, multigrid=False
)
GUESSES = ("minao", "atom", "huckel")
#: Same solution when energies agree this closely (eV).
SAME_EV = 1e-3


def stretched(name: str, index: int, length: float) -> Atoms:
    a = molecule(name)
    v = a.positions[index] - a.positions[0]
    a.positions[index] = a.positions[0] + v / np.linalg.norm(v) * length
    return a


def square(d: float) -> Atoms:
    return Atoms("H4", positions=[[0, 0, 0], [d, 0, 0], [0, d, 0], [d, d, 0]])


def dimer(symbols: str, d: float) -> Atoms:
    return Atoms(symbols, positions=[[0, 0, 0], [0, 0, d]])


#: name: (atoms, charge, multiplicity, settings)
CASES = {
    "H2O, one O-H at 2.2 A (PBE/STO-3G)": (stretched("H2O", 1, 2.2), 0, 1, PBE_MIN),
    "H2O, one O-H at 2.6 A": (stretched("H2O", 1, 2.6), 0, 1, PBE),
    "H2O, one O-H at 2.0 A": (stretched("H2O", 1, 2.0), 0, 1, PBE),
    "H2O triplet, O-H at 2.6 A": (stretched("H2O", 1, 2.6), 0, 3, PBE),
    "N2 at 2.2 A": (dimer("N2", 2.2), 0, 1, PBE),
    "N2 at 3.0 A": (dimer("N2", 3.0), 0, 1, PBE),
    "square H4, 1.8 A": (square(1.8), 0, 1, PBE),
    "square H4, 1.2 A": (square(1.2), 0, 1, PBE),
    "ethoxy radical, doublet": (molecule("CH3CH2O"), 0, 2, PBE),
    "CH3 radical, doublet": (molecule("CH3"), 0, 2, PBE),
    "NO2 radical, doublet": (molecule("NO2"), 0, 2, PBE),
    "vinyl radical, doublet": (molecule("C2H3"), 0, 2, PBE),
    "O2 triplet": (molecule("O2"), 0, 3, PBE),
    "O2 singlet": (molecule("O2"), 0, 1, PBE),
    "Cr atom, septet": (Atoms("Cr"), 0, 7, PBE),
    "Cr2 at 1.68 A, singlet (PBE/STO-3G)": (dimer("Cr2", 1.68), 0, 1, PBE_MIN),
    "FeO, quintet (PBE/STO-3G)": (dimer("FeO", 1.62), 0, 5, PBE_MIN),
    "TiO, triplet (PBE/STO-3G)": (dimer("TiO", 1.62), 0, 3, PBE_MIN),
    "CuH, singlet": (dimer("CuH", 1.46), 0, 1, PBE),
    "LiH cell, 4 A cubic (PBE/gth-szv, FFTDF)": (
        Atoms("LiH", positions=[[0, 0, 0], [2.1, 1.9, 2.05]], cell=np.eye(3) * 4.0, pbc=True),
        0,
        1,
        CELL,
    ),
    "H2 at 1.6 A in a 4 A cell, singlet (FFTDF)": (
        Atoms("H2", positions=[[0.3, 0.2, 0.1], [1.9, 0.2, 0.1]], cell=np.eye(3) * 4.0, pbc=True),
        0,
        1,
        CELL,
    ),
}


def search(atoms: Atoms, charge: int, mult: int, settings: LabelSettings) -> list[dict]:
    """Every solution Newton reaches from several guesses, followed to stability."""
    system = build_system(atoms, settings, charge, mult)
    found = []
    treatments = [False, True] if mult == 1 else [True]
    for unrestricted in treatments:
        starts: list[tuple[str, object]] = [(g, None) for g in GUESSES]
        if unrestricted and mult == 1:
            starts.append(("homo-lumo mix", "mix"))
        for name, how in starts:
            mf = make_mean_field(system, settings, unrestricted=unrestricted)
            if how is None:
                mf.init_guess = name
                dm0 = None
            else:
                dm0 = _mixed_guess(system, settings, mf)
                if dm0 is None:
                    continue
            mf = mf.newton()
            attempt = Attempt(strategy=f"search/{name}", converged=False)
            try:
                mf.kernel() if dm0 is None else mf.kernel(dm0=dm0)
            except Exception as exc:  # a guess PySCF cannot start from: no solution
                print(f"    search {name}: {type(exc).__name__}", flush=True)
                continue
            if not mf.converged:
                continue
            attempt.converged = True  # settle() clears it when a re-convergence fails
            verdict = settle(mf, attempt, replace(settings, stability_rounds=5), None)
            treatment = SpinTreatment.UNRESTRICTED if unrestricted else SpinTreatment.RESTRICTED
            found.append(
                {
                    "start": f"{treatment}/{name}",
                    "treatment": str(treatment),
                    "energy_ev": float(mf.e_tot) * HARTREE_EV,
                    "stability": str(verdict.stability),
                    "converged": attempt.converged,
                }
            )
    return [f for f in found if f["converged"]]


def _mixed_guess(system, settings, umf):
    """An unrestricted density from the restricted solution, HOMO and LUMO mixed 45°."""
    rmf = make_mean_field(system, settings, unrestricted=False).newton()
    rmf.kernel()
    if not rmf.converged:
        return None
    mo, occ = rmf.mo_coeff, rmf.mo_occ
    kpts = isinstance(mo, list) or getattr(mo, "ndim", 2) == 3
    mos, occs = (mo, occ) if kpts else ([mo], [occ])
    alpha, beta = [], []
    for c, o in zip(mos, occs, strict=True):
        homo = int(np.count_nonzero(o > 0)) - 1
        ca, cb = np.array(c, copy=True), np.array(c, copy=True)
        h, lu = c[:, homo], c[:, homo + 1]
        ca[:, homo], ca[:, homo + 1] = (h + lu) / np.sqrt(2), (lu - h) / np.sqrt(2)
        cb[:, homo], cb[:, homo + 1] = (h - lu) / np.sqrt(2), (lu + h) / np.sqrt(2)
        alpha.append(ca)
        beta.append(cb)
    half = [o / 2 for o in occs]
    if kpts:
        return umf.make_rdm1((alpha, beta), (half, half))
    return umf.make_rdm1((alpha[0], beta[0]), (half[0], half[0]))


def row_of(name: str, policy: SpinPolicy | None, rec, solutions: list[dict]) -> dict:
    converged_with = next(
        (
            a["strategy"]
            for a in reversed(rec.scf_attempts)
            if a["converged"] and a.get("stability") != Stability.INTERNAL_UNSTABLE
        ),
        None,
    )
    row = {
        "case": name,
        "policy": None if policy is None else str(policy),
        "status": str(rec.status),
        "converged_with": converged_with,
        "stability": None if rec.stability is None else str(rec.stability),
        "spin_treatment": None if rec.spin_treatment is None else str(rec.spin_treatment),
        "energy_ev": rec.energy,
        "s2": rec.s2,
        "seconds": rec.wall_time,
        "scf_seconds": round(sum(a["seconds"] for a in rec.scf_attempts), 3),
        "stability_seconds": round(
            sum(a.get("stability_seconds", 0.0) for a in rec.scf_attempts), 3
        ),
        "attempts": [
            (a["strategy"], a["cycles"], a["converged"], a.get("stability"))
            for a in rec.scf_attempts
        ],
        "stability_note": rec.stability_note,
        "error": rec.error,
    }
    if rec.status == LabelStatus.OK and policy is not None:
        pool = [
            s["energy_ev"]
            for s in solutions
            if policy is SpinPolicy.BROKEN_SYMMETRY
            or rec.spin_treatment == SpinTreatment.UNRESTRICTED
            or s["treatment"] == SpinTreatment.RESTRICTED
        ]
        lowest = min([*pool, rec.energy])
        row["lowest_known_ev"] = lowest
        row["above_lowest_ev"] = round(rec.energy - lowest, 6)
        row["at_lowest"] = rec.energy - lowest < SAME_EV
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    rows, searches = [], {}
    start = time.perf_counter()
    for name, (atoms, charge, mult, settings) in CASES.items():
        if args.only and args.only not in name:
            continue
        print(name, flush=True)
        solutions = search(atoms, charge, mult, settings)
        searches[name] = solutions
        diis = replace(settings, recovery=("diis",))
        plain = label_structure(name, atoms, diis, charge=charge, multiplicity=mult)
        rows.append({**row_of(name, None, plain, solutions), "policy": "diis alone"})
        policies = [SpinPolicy.RESTRICTED]
        if mult == 1:
            policies.append(SpinPolicy.BROKEN_SYMMETRY)
        for policy in policies:
            s = replace(settings, spin=policy)
            rec = label_structure(name, atoms, s, charge=charge, multiplicity=mult)
            row = row_of(name, policy, rec, solutions)
            row["rescued"] = plain.status != LabelStatus.OK and rec.status == LabelStatus.OK
            rows.append(row)
            print(
                f"  {policy:16s} {row['status']:7s} {row['converged_with']!s:24s} "
                f"{row['stability']!s:18s} {row['spin_treatment']!s:13s} "
                f"dE={row.get('above_lowest_ev')!s:>10} eV  {row['seconds']:.1f} s",
                flush=True,
            )
    labels = [r for r in rows if r["policy"] != "diis alone"]
    ok = [r for r in labels if r["status"] == LabelStatus.OK]
    summary = {
        "labels": len(labels),
        "ok": len(ok),
        "failed": len(labels) - len(ok),
        "rescued_by_ladder": sum(bool(r.get("rescued")) for r in labels),
        "at_lowest_known": sum(bool(r.get("at_lowest")) for r in ok),
        "internally_unstable_ok_labels": sum(
            r["stability"] == Stability.INTERNAL_UNSTABLE for r in ok
        ),
        "verdicts": {
            str(v): sum(r["stability"] == v for r in ok)
            for v in Stability
            if any(r["stability"] == v for r in ok)
        },
        "stability_share_of_label_wall": round(
            sum(r["stability_seconds"] for r in ok) / sum(r["seconds"] for r in ok), 3
        ),
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    out = ROOT / "benchmarks" / "results" / "scf_hard_cases.json"
    if not args.only:
        out.write_text(
            json.dumps({"summary": summary, "rows": rows, "searches": searches}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
