"""Isolated atoms before training: each (element, settings hash) labelled once with real
PySCF, resumable, extended when a new element appears, and a failure stops training
unless the campaign asked for MACE's average E0s."""

from __future__ import annotations

import uuid

import pytest
import yaml
from ase.build import molecule

from aloop.config import parse_config
from aloop.isolated_atoms import ground_state_multiplicity
from aloop.vocabulary import LabelStatus, Origin
from db import campaigns, connection, labels, structures
from db.documents import Label
from flows import stages
from flows.context import CampaignError, Loop
from tests.flows.conftest import TINY

HARTREE = 27.211386245988  # eV (CODATA 2018, as PySCF)


class Messages:
    """A reporter that keeps what the stages say."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)

    def labels(self, done: int, total: int, failed: int, rejected: int = 0) -> None:
        self.lines.append(f"labelled {done}/{total} ({failed} failed, {rejected} rejected)")


class CountingRunner:
    """The real labeller, counting the jobs it is given."""

    def __init__(self) -> None:
        self.jobs: list = []

    def __call__(self, jobs, on_record) -> None:
        self.jobs.extend(jobs)
        stages.label_here(jobs, on_record)


@pytest.fixture
def db():
    connection.connect(f"memory://aloop_test_{uuid.uuid4().hex[:12]}")
    yield
    connection.disconnect()


def _loop(tmp_path, name: str = "tiny-water", **changes) -> Loop:
    data = yaml.safe_load(TINY.read_text())
    data["campaign"] = name
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    cfg = parse_config(data, TINY.parent)
    campaign, _ = campaigns.get_or_create_campaign(cfg.campaign, cfg.model_dump(), "c" * 64)
    return Loop(cfg, campaign, TINY.parent, tmp_path / "work", Messages())


def _water(settings_hash: str) -> list:
    a = molecule("H2O")
    a.info[labels.LABEL_SETTINGS_HASH] = settings_hash
    return [a]


def test_each_element_is_labelled_once_per_settings_hash(db, tmp_path):
    loop = _loop(tmp_path)
    settings_hash = loop.label_settings("water").settings_hash()
    runner = CountingRunner()
    stored = stages.ensure_isolated_atoms(loop, runner, 1)
    assert [(t.atoms.get_chemical_symbols(), t.multiplicity) for t, _ in runner.jobs] == [
        (["H"], 2),
        (["O"], 3),
    ]
    assert [(lab.symbol, lab.status, lab.settings_hash) for lab in stored] == [
        ("H", LabelStatus.OK, settings_hash),
        ("O", LabelStatus.OK, settings_hash),
    ]
    # UHF/STO-3G hydrogen atom: -0.466582 Hartree (Szabo & Ostlund's STO-3G value).
    assert stored[0].energy == pytest.approx(-0.466582 * HARTREE, abs=1e-4)
    # Stored as ordinary labels, with their provenance, at the iteration that needed them.
    for lab in stored:
        (atom,) = structures.load_atoms([lab.structure_id])
        assert atom.info["origin"] == Origin.ISOLATED_ATOM
        assert atom.info["multiplicity"] == ground_state_multiplicity(lab.z)
    docs = Label.objects(structure__in=[lab.structure_id for lab in stored])
    assert all(d.iteration == 1 and d.host and d.scf_attempts for d in docs)
    assert labels.label_counts(loop.campaign.id) == {}  # no campaign structure labelled

    # A resumed run labels nothing; a training set with a new element labels just it.
    again = CountingRunner()
    assert stages.ensure_isolated_atoms(loop, again, 2) == stored and again.jobs == []
    methane = molecule("CH4")
    methane.info[labels.LABEL_SETTINGS_HASH] = settings_hash
    more = CountingRunner()
    grown = stages.ensure_isolated_atoms(loop, more, 2, [methane])
    assert [t.atoms.get_chemical_symbols() for t, _ in more.jobs] == [["C"]]
    assert [lab.symbol for lab in grown] == ["H", "C", "O"]  # by atomic number
    assert [t.multiplicity for t, _ in more.jobs] == [3]

    # The training E0s: one label per element of the training frames.
    e0s = stages.training_e0s(loop, 3, _water(settings_hash))
    assert {z: lab.energy for z, lab in e0s.items()} == {1: stored[0].energy, 8: stored[1].energy}


def test_a_failed_isolated_atom_stops_training_unless_e0s_are_average(db, tmp_path):
    # A time limit no SCF meets: a real failure, recorded like any other.
    loop = _loop(tmp_path, dft={"scf": {"timeout_s": 1e-6}})
    settings_hash = loop.label_settings("water").settings_hash()
    with pytest.raises(CampaignError) as err:
        stages.training_e0s(loop, 1, _water(settings_hash))
    text = str(err.value)
    # (A one-electron H atom converges before the first deadline check; oxygen cannot.)
    assert "iteration 1" in text and "O: its isolated atom's label failed: timeout" in text
    assert "model.e0s: average" in text
    # Failed labels are data: stored once, not retried by a rerun.
    rerun = CountingRunner()
    stored = stages.ensure_isolated_atoms(loop, rerun, 1)
    assert rerun.jobs == []
    assert {lab.symbol: lab.status for lab in stored}["O"] is LabelStatus.FAILED

    average = _loop(tmp_path, "avg", dft={"scf": {"timeout_s": 1e-6}}, model={"e0s": "average"})
    assert stages.training_e0s(average, 1, _water(settings_hash)) is None
    assert any("model.e0s is average" in line for line in average.reporter.lines)
