"""``aloop import`` refuses what would poison a campaign, before it stores anything; export
refuses (one line, no traceback, no ``.part`` left) a non-finite label an older release
stored."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from typer.testing import CliRunner

from aloop.cli import app
from aloop.records import REF_ENERGY, REF_FORCES, LabelRecord, StructureRecord
from aloop.vocabulary import LabelStatus, Origin
from db import campaigns, connection, labels, structures
from db.documents import Campaign, Label, Structure
from tests.dataset.conftest import SETTINGS
from tests.dataset.test_import_show import _config

runner = CliRunner()

#: HF/STO-3G water is about -74.96 Ha.
WATER_EV = -2039.8


def _frames(n: int = 3, formula: str = "H2O", energy: float = WATER_EV) -> list:
    frames = []
    for i in range(n):
        a = molecule(formula)
        a.positions += np.random.default_rng(i).normal(scale=0.05, size=a.positions.shape)
        a.info[REF_ENERGY] = energy + 0.01 * i
        a.arrays[REF_FORCES] = np.full((len(a), 3), 0.1 * i)
        frames.append(a)
    return frames


def _import(tmp_path, frames, *args: str):
    source = tmp_path / "data.xyz"
    write(source, frames, format="extxyz")
    uri = f"embedded://{tmp_path / 'db'}"
    config = _config(tmp_path, "imp")
    result = runner.invoke(app, ["import", config, str(source), *args, "--db", uri])
    return result, uri


def _stored(uri: str) -> tuple[int, int]:
    """(structures, labels) stored in campaign 'imp' (0, 0 when it does not exist)."""
    connection.connect(uri)
    try:
        camp = Campaign.objects(name="imp").first()
        if camp is None:
            return 0, 0
        return Structure.objects(campaign=camp.id).count(), Label.objects(campaign=camp.id).count()
    finally:
        connection.disconnect()


def _refused(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("what", ["energy", "forces", "stress"])
def test_a_non_finite_label_is_refused_with_its_frame_and_nothing_is_stored(tmp_path, what):
    frames = _frames(4)
    bad = frames[2]
    if what == "energy":
        bad.info[REF_ENERGY] = float("nan")
    elif what == "forces":
        bad.arrays[REF_FORCES][1, 2] = np.inf
    else:
        for f in frames:
            f.info["REF_stress"] = np.zeros(6)
        bad.info["REF_stress"] = np.array([0.0, 0, 0, np.nan, 0, 0])
    result, uri = _import(tmp_path, frames)
    _refused(result, "frame 2", what, "not finite")
    assert _stored(uri) == (0, 0)
    # The corrected file then imports every frame: nothing was half stored to skip.
    frames[2].info[REF_ENERGY] = WATER_EV
    frames[2].arrays[REF_FORCES][:] = 0.0
    frames[2].info.pop("REF_stress", None)
    for f in frames:
        f.info.pop("REF_stress", None)
    result, uri = _import(tmp_path, frames)
    assert result.exit_code == 0, result.output
    assert _stored(uri) == (4, 4)


def test_frames_of_another_composition_are_refused_unless_the_system_is_named(tmp_path):
    frames = _frames(2) + _frames(1, "NH3", energy=-55.45 * 27.211)
    result, uri = _import(tmp_path, frames)
    _refused(result, "frame 2", "H3N", "H2O", "--system water")
    assert _stored(uri) == (0, 0)
    result, uri = _import(tmp_path, frames, "--system", "water")
    assert result.exit_code == 0, result.output
    assert _stored(uri) == (3, 3)


def test_an_energy_key_missing_on_every_frame_is_an_error(tmp_path):
    result, uri = _import(tmp_path, _frames(2), "--energy-key", "E_dft")
    _refused(result, "'E_dft'", "no frame")
    result, uri = _import(tmp_path, _frames(2), "--forces-key", "F_dft")
    _refused(result, "'F_dft'", "no frame")
    assert _stored(uri) == (0, 0)


def test_labels_under_other_keys_are_not_taken_for_unlabelled_frames(tmp_path):
    """ASE writes a calculator's results as ``energy`` / ``forces``: the default REF_ keys
    find nothing, and that must not turn labelled data into structures to label."""
    frames = []
    for a in _frames(2):
        energy, forces = a.info.pop(REF_ENERGY), a.arrays.pop(REF_FORCES)
        a.calc = SinglePointCalculator(a, energy=energy, forces=forces)
        frames.append(a)
    result, uri = _import(tmp_path, frames)
    _refused(result, "REF_energy", "--energy-key energy")
    assert _stored(uri) == (0, 0)
    result, uri = _import(tmp_path, frames, "--energy-key", "energy", "--forces-key", "forces")
    assert result.exit_code == 0, result.output
    assert _stored(uri) == (2, 2)


def test_an_energy_without_forces_is_refused(tmp_path):
    frames = _frames(2)
    del frames[1].arrays[REF_FORCES]
    result, uri = _import(tmp_path, frames)
    _refused(result, "frame 1", "REF_energy", "REF_forces")
    assert _stored(uri) == (0, 0)


def test_plain_structures_still_import_as_unlabelled(tmp_path):
    frames = _frames(2)
    for a in frames:
        a.info.pop(REF_ENERGY)
        a.arrays.pop(REF_FORCES)
    result, _ = _import(tmp_path, frames)
    assert result.exit_code == 0, result.output
    assert "2 to label" in result.output


@pytest.mark.parametrize(
    ("energy", "units", "hint"),
    [
        (WATER_EV * 27.211, "eV", "not in eV"),  # -55,500 "eV": kcal/mol-like or Ha*Ha
        (WATER_EV, "hartree", "drop --units hartree"),  # eV data said to be hartree
        (-74.96, "eV", "--units hartree"),  # hartree data said to be eV
    ],
)
def test_an_energy_in_the_wrong_unit_is_refused_with_a_hint(tmp_path, energy, units, hint):
    result, uri = _import(tmp_path, _frames(2, energy=energy), "--units", units)
    _refused(result, "frame 0", hint)
    assert _stored(uri) == (0, 0)
    result, uri = _import(tmp_path, _frames(2, energy=energy), "--units", units, "--trust-units")
    assert result.exit_code == 0, result.output


def test_a_plausible_energy_passes_the_unit_check(tmp_path):
    for energy, units in ((WATER_EV, "eV"), (-74.96, "hartree"), (-14.2, "eV"), (-466.0, "eV")):
        result, _ = _import(tmp_path, _frames(1, energy=energy), "--units", units)
        assert result.exit_code == 0, (energy, units, result.output)


def test_export_refuses_a_non_finite_label_stored_by_an_older_release(tmp_path):
    uri = f"embedded://{tmp_path / 'db'}"
    connection.connect(uri)
    try:
        camp, _ = campaigns.get_or_create_campaign("old", {"campaign": "old"}, "o" * 64)
        recs = [StructureRecord.from_atoms(a, "water", Origin.IMPORTED) for a in _frames(3)]
        ids = structures.insert_structures(camp.id, recs).ids
        for i, sid in enumerate(ids):
            labels.record_label(
                camp.id,
                LabelRecord(
                    structure_id=sid,
                    settings_hash=SETTINGS.settings_hash(),
                    settings=SETTINGS.result_fields(),
                    status=LabelStatus.OK,
                    energy=float("nan") if i == 1 else WATER_EV,
                    forces=np.zeros((3, 3)),
                ),
            )
    finally:
        connection.disconnect()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["export", "old", "--out", str(out), "--db", uri])
    _refused(result, ids[1], "not finite")
    assert not list(out.glob("*.part")) and not (out / "train.xyz").exists()
