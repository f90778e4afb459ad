"""Which rung of the SCF recovery ladder rescues which hard case.

    python benchmarks/scf_hard_cases.py

Each case runs twice at PBE/6-31G with max_cycle 50: plain DIIS alone, then the default
ladder (diis -> damping_levelshift -> newton -> initial_guess). Cases: bonds stretched
towards dissociation, a square H4 (degenerate frontier orbitals), open-shell molecules
and a septet Cr atom. Table on stdout and in benchmarks/results/scf_hard_cases.json.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dft.label import label_structure  # noqa: E402
from dft.settings import LabelSettings  # noqa: E402

LADDER = LabelSettings(method="DFT", xc="PBE", basis="6-31g", max_cycle=50)
DIIS_ONLY = LabelSettings(method="DFT", xc="PBE", basis="6-31g", max_cycle=50, recovery=("diis",))


def stretched(name: str, index: int, length: float) -> Atoms:
    a = molecule(name)
    v = a.positions[index] - a.positions[0]
    a.positions[index] = a.positions[0] + v / np.linalg.norm(v) * length
    return a


def square(d: float) -> Atoms:
    return Atoms("H4", positions=[[0, 0, 0], [d, 0, 0], [0, d, 0], [d, d, 0]])


CASES = {
    "H2O, one O-H at 2.6 A": (stretched("H2O", 1, 2.6), 0, 1),
    "H2O, one O-H at 2.0 A": (stretched("H2O", 1, 2.0), 0, 1),
    "H2O triplet, O-H at 2.6 A": (stretched("H2O", 1, 2.6), 0, 3),
    "N2 at 2.2 A": (Atoms("N2", positions=[[0, 0, 0], [0, 0, 2.2]]), 0, 1),
    "N2 at 3.0 A": (Atoms("N2", positions=[[0, 0, 0], [0, 0, 3.0]]), 0, 1),
    "square H4, 1.8 A": (square(1.8), 0, 1),
    "square H4, 1.2 A": (square(1.2), 0, 1),
    "CH3CH2O radical (ethoxy), doublet": (molecule("CH3CH2O"), 0, 2),
    "O2 triplet": (molecule("O2"), 0, 3),
    "Cr atom, septet": (Atoms("Cr"), 0, 7),
}


def main() -> None:
    rows = []
    for name, (atoms, charge, mult) in CASES.items():
        plain = label_structure(name, atoms, DIIS_ONLY, charge=charge, multiplicity=mult)
        full = label_structure(name, atoms, LADDER, charge=charge, multiplicity=mult)
        rescued_by = next((a["strategy"] for a in full.scf_attempts if a["converged"]), None)
        rows.append(
            {
                "case": name,
                "diis_alone": plain.status,
                "ladder": full.status,
                "converged_with": rescued_by,
                "attempts": [
                    (a["strategy"], a["cycles"], a["converged"]) for a in full.scf_attempts
                ],
            }
        )
        print(
            f"{name:38s} DIIS alone: {plain.status:7s} ladder: {full.status:7s} "
            f"converged with: {rescued_by}",
            flush=True,
        )
    rescued = Counter(
        r["converged_with"] for r in rows if r["diis_alone"] != "ok" and r["ladder"] == "ok"
    )
    print("rescued (DIIS alone failed, ladder converged):", dict(rescued))
    out = ROOT / "benchmarks" / "results" / "scf_hard_cases.json"
    out.write_text(json.dumps({"cases": rows, "rescued_by": dict(rescued)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
