"""Test geometries beyond what MD at the campaign temperatures visits (round 3, test set c).

Ethanol's torsions and bonds, each moved away from the equilibrium geometry one at a
time: rigid scans of the methyl torsion (O-C-C-H) and the hydroxyl torsion (C-C-O-H) in
30-degree steps, which cross the barriers a 300-1000 K trajectory of a few hundred fs
rarely climbs, and the C-O and O-H bonds stretched from 1.1x to 1.6x their length, where
bonds begin to break. A model that learnt only the thermal basin is tested where users
need it to extrapolate (reaction paths, conformer changes). Each frame carries what it
is in ``info["probe"]`` and the value moved in ``info["value"]`` (degrees, or the
stretch factor); labelling is left to the caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule

#: ASE's g2 ethanol: C0 (methyl), C1 (methylene), O2, H3 (hydroxyl), H4 H5 (on C1),
#: H6 H7 H8 (on C0).
METHYL = (2, 1, 0, 6)  # O-C-C-H: the moved atoms at the far end, as set_dihedral wants
HYDROXYL = (0, 1, 2, 3)  # C-C-O-H
METHYL_HYDROGENS = [6, 7, 8]
TORSION_STEP_DEG = 30
STRETCHES = (1.1, 1.2, 1.3, 1.4, 1.5, 1.6)


def beyond_exploration() -> list[Atoms]:
    """The probe geometries: 2 torsion scans of 12 angles and 2 bonds x 6 stretches."""
    base = molecule("CH3CH2OH")
    frames = []
    for probe, (a, b, c, d), moved in (
        ("methyl_torsion", METHYL, METHYL_HYDROGENS),
        ("hydroxyl_torsion", HYDROXYL, [3]),
    ):
        start = base.get_dihedral(a, b, c, d)
        for step in range(360 // TORSION_STEP_DEG):
            atoms = base.copy()
            angle = (start + step * TORSION_STEP_DEG) % 360
            atoms.set_dihedral(a, b, c, d, angle, indices=moved)
            frames.append(_tagged(atoms, probe, float(step * TORSION_STEP_DEG)))
    for probe, (a, b), moved in (("co_stretch", (1, 2), [2, 3]), ("oh_stretch", (2, 3), [3])):
        length = base.get_distance(a, b)
        for factor in STRETCHES:
            atoms = base.copy()
            # the far group moves rigidly along the bond, the rest stays
            shift = (factor - 1.0) * length * _unit(atoms.positions[b] - atoms.positions[a])
            atoms.positions[moved] += shift
            frames.append(_tagged(atoms, probe, factor))
    return frames


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _tagged(atoms: Atoms, probe: str, value: float) -> Atoms:
    atoms.info.update({"probe": probe, "value": value})
    return atoms


def labelled_beyond(dft: dict, out: Path) -> tuple[list[Atoms], int]:
    """The probes labelled at a campaign's ``dft`` section (so at its settings hash),
    written once to ``out`` and read back afterwards; and how many labels failed (those
    frames are left out)."""
    from ase.io import read, write

    from aloop.config import DFTConfig
    from dft.batch import LabelTask, label_batch
    from dft.settings import LabelSettings

    failed_file = out.with_suffix(".failed")
    if out.exists() and failed_file.exists():
        return read(out, ":"), int(failed_file.read_text())
    probes = beyond_exploration()
    tasks = [LabelTask(f"probe{i}", a) for i, a in enumerate(probes)]
    settings = LabelSettings.from_config(DFTConfig(**dft), periodic=False)
    records = {r.structure_id: r for r in label_batch(tasks, settings, on_progress=lambda p: None)}
    done = [
        r.labelled_atoms(t.atoms)
        for t in tasks
        if (r := records[t.structure_id]).energy is not None
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    write(out, done, format="extxyz")
    failed_file.write_text(str(len(tasks) - len(done)))
    return done, len(tasks) - len(done)
