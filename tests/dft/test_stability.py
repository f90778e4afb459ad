"""SCF solutions that are minima: stability analysis, following instabilities, spin policy.

The stretched water is the issue's case, measured on PySCF 2.14 at PBE/STO-3G with one
O-H at 2.2 Å: DIIS and damping do not converge in 50 cycles, Newton converges to an RKS
solution (-2041.3517 eV) that is internally stable (lowest Hessian eigenvalue 0.166 Ha)
but unstable towards UKS (-0.090 Ha); the broken-symmetry UKS solution is 0.7855 eV lower,
<S^2> = 0.845, internally stable (0.0107 Ha).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from aloop.vocabulary import LabelStatus, SpinPolicy, SpinTreatment, Stability
from dft.label import label_structure
from dft.scf import Attempt, _run_attempt, build_system, make_mean_field, settle
from dft.settings import LabelSettings


def stretched_water(oh: float = 2.2) -> Atoms:
    w = molecule("H2O")
    v = w.positions[1] - w.positions[0]
    w.positions[1] = w.positions[0] + v / np.linalg.norm(v) * oh
    return w


PBE_MIN = LabelSettings(method="DFT", xc="pbe", basis="sto-3g", max_cycle=50)


def test_restricted_policy_keeps_the_rks_solution_and_flags_it():
    rec = label_structure("w", stretched_water(), PBE_MIN)
    assert rec.status == LabelStatus.OK
    tried = [(a["strategy"], a["converged"]) for a in rec.scf_attempts]
    assert tried == [("diis", False), ("damping_levelshift", False), ("newton", True)]
    # before issue 18 this label was stored as if it were a minimum, with no flag
    assert rec.stability is Stability.EXTERNAL_UNSTABLE
    assert rec.spin_treatment is SpinTreatment.RESTRICTED
    assert "RHF->UHF" in rec.stability_note and "lies lower" in rec.stability_note
    assert rec.s2 is None
    # every attempt records its energy (eV), converged or not
    assert all(a["energy"] is not None for a in rec.scf_attempts)
    assert rec.scf_attempts[-1]["energy"] == pytest.approx(rec.energy, abs=1e-9)
    assert rec.energy == pytest.approx(-2041.3517, abs=2e-3)
    assert rec.scf_attempts[-1]["stability"] == Stability.EXTERNAL_UNSTABLE


def test_broken_symmetry_policy_labels_the_lower_unrestricted_solution():
    bs = replace(PBE_MIN, spin=SpinPolicy.BROKEN_SYMMETRY, recovery=("newton",))
    assert bs.settings_hash() != PBE_MIN.settings_hash()  # two surfaces, two hashes
    rec = label_structure("w", stretched_water(), bs)
    assert rec.status == LabelStatus.OK
    assert rec.stability is Stability.STABLE
    assert rec.spin_treatment is SpinTreatment.UNRESTRICTED
    restricted = rec.scf_attempts[0]
    assert (restricted["strategy"], restricted["stability"]) == (
        "newton",
        Stability.EXTERNAL_UNSTABLE,
    )
    last = rec.scf_attempts[-1]
    assert last["strategy"].startswith(SpinPolicy.BROKEN_SYMMETRY)
    assert last["spin_treatment"] == SpinTreatment.UNRESTRICTED and last["converged"]
    assert restricted["energy"] - rec.energy == pytest.approx(0.7855, abs=0.01)
    assert rec.s2 == pytest.approx(0.845, abs=0.01)
    assert rec.forces.shape == (3, 3) and np.isfinite(rec.forces).all()


def test_an_ordinary_molecule_costs_one_scf_and_is_stable():
    rec = label_structure("w", molecule("H2O"), LabelSettings(method="HF", basis="sto-3g"))
    assert rec.stability is Stability.STABLE
    assert rec.spin_treatment is SpinTreatment.RESTRICTED
    assert len(rec.scf_attempts) == 1 and rec.scf_attempts[0]["stability_rounds"] == 0
    assert "orbital-Hessian eigenvalue" in rec.stability_note
    radical = label_structure(
        "oh",
        molecule("OH"),
        LabelSettings(method="DFT", xc="pbe", basis="sto-3g"),
        multiplicity=2,
    )
    assert radical.stability is Stability.STABLE
    assert radical.spin_treatment is SpinTreatment.UNRESTRICTED
    assert "UHF/UKS" in radical.stability_note and "RHF->UHF" not in radical.stability_note


def _symmetric_uhf_h2(settings: LabelSettings):
    """UHF of H2 at 2.5 Å converged from the RHF density: the spin-symmetric solution,
    a saddle point of UHF (the broken-symmetry one is 3.8 eV lower)."""
    system = build_system(Atoms("H2", positions=[[0, 0, 0], [0, 0, 2.5]]), settings, 0, 1)
    rhf = make_mean_field(system, settings)
    rhf.kernel()
    uhf = make_mean_field(system, settings, unrestricted=True)
    attempt = Attempt("diis", converged=False)
    dm = rhf.make_rdm1()
    _run_attempt(uhf, attempt, None, dm0=(dm / 2, dm / 2))
    assert attempt.converged and abs(uhf.spin_square()[0]) < 1e-6
    return uhf, attempt, float(rhf.e_tot)


def test_an_internal_instability_is_followed_to_the_minimum_below():
    settings = LabelSettings(method="HF", basis="6-31g")
    uhf, attempt, e_saddle = _symmetric_uhf_h2(settings)
    found = settle(uhf, attempt, settings, None)
    assert found.stability is Stability.STABLE and attempt.stability is Stability.STABLE
    assert attempt.stability_rounds >= 1
    assert float(uhf.e_tot) < e_saddle - 0.1  # Ha: it went downhill
    assert uhf.spin_square()[0] > 0.5  # to the broken-symmetry solution
    assert attempt.energy == pytest.approx(float(uhf.e_tot) * 27.211386, abs=1e-4)


def test_a_solution_left_unstable_fails_its_rung_with_the_reason():
    settings = LabelSettings(method="HF", basis="6-31g", stability_rounds=0)
    uhf, attempt, e_saddle = _symmetric_uhf_h2(settings)
    found = settle(uhf, attempt, settings, None)
    assert found.stability is Stability.INTERNAL_UNSTABLE
    assert attempt.stability is Stability.INTERNAL_UNSTABLE
    assert "internally unstable after 0 rounds" in attempt.error
    assert float(uhf.e_tot) == pytest.approx(e_saddle, abs=1e-8)


def test_mean_fields_without_an_analysis_say_so_and_claim_nothing():
    cell = Atoms("LiH", positions=[[0, 0, 0], [2.1, 1.9, 2.05]], cell=np.eye(3) * 4.0, pbc=True)
    settings = LabelSettings(
        method="DFT", xc="pbe", periodic=True, ke_cutoff_hartree=30, multigrid=True
    )
    rec = label_structure("lih", cell, settings)
    assert rec.status == LabelStatus.OK
    assert rec.stability is Stability.NOT_ANALYSED
    assert "multigrid" in rec.stability_note


@pytest.fixture
def memory_db():
    from db import connection

    target = connection.connect(f"memory://aloop_test_{uuid.uuid4().hex[:12]}")
    yield target
    connection.database().client.drop_database(target.db_name)
    connection.disconnect()


def test_stability_fields_are_stored_and_old_labels_still_load(memory_db):
    from aloop.records import StructureRecord
    from aloop.vocabulary import Origin
    from db import campaigns, labels, structures
    from db.documents import Label

    campaign, _ = campaigns.get_or_create_campaign("stab", {"campaign": "stab"}, "s" * 64)
    atoms = molecule("H2O")
    sid = structures.insert_structures(
        campaign.id, [StructureRecord.from_atoms(atoms, "water", Origin.INITIAL)]
    ).ids[0]
    rec = label_structure(sid, atoms, LabelSettings(method="HF", basis="sto-3g"))
    labels.record_label(campaign.id, rec)
    stored = Label.objects.get(structure=sid)
    assert stored.stability == Stability.STABLE
    assert stored.spin_treatment == SpinTreatment.RESTRICTED
    assert stored.stability_note == rec.stability_note and stored.internal_energy is None
    assert stored.scf_attempts[0].energy == pytest.approx(rec.energy)
    assert stored.scf_attempts[0].stability == Stability.STABLE
    # a label written before these fields existed
    old = {
        "structure": "0" * 24,
        "campaign": campaign.id,
        "settings_hash": "old",
        "status": LabelStatus.OK.value,
        "energy": -1.0,
        "scf_attempts": [{"strategy": "diis", "converged": True, "cycles": 3}],
    }
    Label._get_collection().insert_one(old)
    loaded = Label.objects.get(settings_hash="old")
    assert loaded.stability is None and loaded.spin_treatment is None
    assert loaded.scf_attempts[0].energy is None
