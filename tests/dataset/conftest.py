"""A labelled campaign in an embedded store, for the export/import/show tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aloop.records import REF_ENERGY, REF_FORCES, LabelRecord, StructureRecord
from aloop.vocabulary import LabelStatus, Origin, Verdict
from db import campaigns, connection, labels, structures
from dft.settings import LabelSettings

SETTINGS = LabelSettings(method="HF", basis="sto-3g")
#: Index of the frame whose energy is shifted by +40 eV: a corrupt label to catch.
OUTLIER = 7


@pytest.fixture
def labelled_campaign(water_dataset, tmp_path):
    """(db uri, campaign name, {structure id: atoms with REF_ keys}).

    50 labelled water frames in two systems (30 "water", 20 "water-hot"), iterations 0
    and 1, one label made absurd (+40 eV), plus one structure whose label failed.
    """
    frames, _ = water_dataset
    uri = f"embedded://{tmp_path / 'db'}"
    connection.connect(uri)
    campaign, _ = campaigns.get_or_create_campaign("exp", {"campaign": "exp"}, "e" * 64)
    records = []
    for i, atoms in enumerate(frames):
        system = "water" if i < 30 else "water-hot"
        records.append(
            StructureRecord.from_atoms(
                atoms,
                system,
                Origin.RATTLED if i < 10 else Origin.MD,
                iteration=0 if i < 10 else 1,
                uncertainty=None if i < 10 else {"force_dev_max": 0.01 * i},
                verdict=Verdict.SELECTED,
            )
        )
    ids = structures.insert_structures(campaign.id, records).ids
    by_id = {}
    for i, (sid, atoms) in enumerate(zip(ids, frames, strict=True)):
        energy = atoms.info[REF_ENERGY] + (40.0 if i == OUTLIER else 0.0)
        labels.record_label(
            campaign.id,
            LabelRecord(
                structure_id=sid,
                settings_hash=SETTINGS.settings_hash(),
                settings=SETTINGS.result_fields(),
                status=LabelStatus.OK,
                energy=energy,
                forces=atoms.arrays[REF_FORCES],
                iteration=0 if i < 10 else 1,
            ),
        )
        labelled = atoms.copy()
        labelled.info[REF_ENERGY] = energy
        by_id[sid] = labelled
    broken = frames[0].copy()
    broken.positions[0] += 0.3
    failed_id = structures.insert_structures(
        campaign.id, [StructureRecord.from_atoms(broken, "water", Origin.MD, iteration=1)]
    ).ids[0]
    labels.record_label(
        campaign.id,
        LabelRecord(
            structure_id=failed_id,
            settings_hash=SETTINGS.settings_hash(),
            status=LabelStatus.FAILED,
            error="SCF did not converge",
            iteration=1,
        ),
    )
    connection.disconnect()
    return uri, "exp", by_id, failed_id


def run_mace_train(out: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    """mace_run_train (the real command) on an export's train/valid files: a minuscule
    model, on the CPU; ``extra`` adds flags (a test file, ``--E0s``, more epochs)."""
    mace = shutil.which("mace_run_train", path=str(Path(sys.executable).parent))
    assert mace is not None
    return subprocess.run(
        [
            mace,
            "--name=exported",
            f"--train_file={out / 'train.xyz'}",
            f"--valid_file={out / 'valid.xyz'}",
            "--energy_key=REF_energy",
            "--forces_key=REF_forces",
            "--model=MACE",
            "--num_channels=8",
            "--max_L=0",
            "--r_max=4.0",
            "--batch_size=5",
            "--device=cpu",
            "--default_dtype=float64",
            f"--work_dir={workdir}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
