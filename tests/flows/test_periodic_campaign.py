"""A periodic campaign end to end: CP2K labels with stress, strained seeds, NPT
exploration whose frames carry the committee's stress deviation, members trained on
stress, the hold-out's stress error; killed mid-labelling and resumed.

Everything is real: Debian's cp2k_shell, MACE training, Prefect; the cell is two H2
molecules in a 3.3 Å box so that a label takes about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from ase.io import read
from mongoengine.connection import get_db

from aloop.analysis.density import DensityRun
from aloop.vocabulary import LabelStatus, Origin
from db import campaigns, connection, iterations
from db.documents import Label, Model, Structure
from tests.dataset.conftest import run_mace_train
from tests.flows.conftest import campaign_env, run_aloop, start_aloop
from tests.flows.consistency import check_campaign

pytestmark = pytest.mark.slow

if shutil.which("cp2k_shell") is None:
    if os.environ.get("ALOOP_REQUIRE_CP2K") == "1":
        pytest.fail("ALOOP_REQUIRE_CP2K=1 but cp2k_shell is not installed", pytrace=False)
    pytest.skip("cp2k_shell is not installed (apt-get install cp2k)", allow_module_level=True)

CONFIG = Path(__file__).with_name("tiny-cell.yaml")


def test_a_periodic_campaign_runs_with_stress_and_resumes_after_a_kill(prefect_api, tmp_path):
    db_uri = f"embedded://{tmp_path / 'db'}"
    env = campaign_env(prefect_api, tmp_path / "data")
    args = ["run", str(CONFIG), "--db", db_uri]
    log = tmp_path / "run.log"

    connection.connect(db_uri)
    try:
        db = get_db()
        proc = start_aloop(args, env, log)
        deadline = time.monotonic() + 600
        # killed once iteration 1 has labelled some of its selection, not all
        while db["labels"].count_documents({"iteration": 1}) < 1:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "never reached the labelling of iteration 1"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = {str(lab.id) for lab in Label.objects.only("id")}
        # no density before the campaign has a production committee, and it says why
        early = run_aloop(["density", str(CONFIG), "--db", db_uri], env)
        assert early.returncode == 2, early.stdout + early.stderr
        assert "no production committee" in early.stderr

        done = run_aloop([*args, "--take-over"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "resuming campaign tiny-cell" in done.stderr
        check_campaign("tiny-cell", committee_size=2)
        # the labels stored before the kill were kept, not computed again
        assert before <= {str(lab.id) for lab in Label.objects.only("id")}

        # every ok label of a cell is one CP2K surface with its stress
        ok = list(Label.objects(status=LabelStatus.OK))
        assert len(ok) >= 12
        for lab in ok:
            assert lab.stress is not None, lab.id
            assert "cp2k" in lab.code_versions
        # the seeds include strained cells: more than one volume before NPT
        seeds = Structure.objects(iteration=0, system="hcell")
        volumes = {round(abs(_det(s.cell)), 3) for s in seeds}
        assert len(volumes) >= 4
        # NPT frames carry the committee's stress deviation and moved the cell
        frames = list(Structure.objects(origin=Origin.MD))
        assert frames and all(f.uncertainty.stress_dev_gpa is not None for f in frames)
        assert len({round(abs(_det(f.cell)), 3) for f in frames}) > 1
        # every member trained on the stress
        assert all(m.hyperparameters["stress"] for m in Model.objects)
        # the stress deviation is in the exploration's statistics, and the hold-out's
        # stress error is measured every iteration, the production committee's included
        its = iterations.campaign_iterations(campaigns.get_campaign("tiny-cell").id)
        assert its[1].stats.explore.systems[0].stress_dev_max_gpa > 0
        assert its[1].stats.holdout_error.stress_n >= 1
        final = its[-1].stats.final.final_holdout
        assert final.stress_n >= 1 and final.stress_rmse_gpa > 0

        # the export trains the real mace_run_train with stress, on cells with a lattice
        export = tmp_path / "export"
        exported = run_aloop(["export", "tiny-cell", "--db", db_uri, "--out", str(export)], env)
        assert exported.returncode == 0, exported.stdout + exported.stderr
        manifest = json.loads((export / "manifest.json").read_text())
        assert "--loss=stress" in manifest["mace_run_train"]
        frames = [a for a in read(export / "train.xyz", ":") if len(a) > 1]
        assert frames and all(a.pbc.all() and a.cell.volume > 0 for a in frames)
        assert all(a.info["REF_stress"].shape == (6,) for a in frames)
        stress_flags = ["--loss=stress", "--stress_key=REF_stress", "--stress_weight=10"]
        trained = run_mace_train(export, tmp_path / "mace", *stress_flags, "--max_num_epochs=2")
        assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
        logs = "".join(p.read_text() for p in (tmp_path / "mace").rglob("*.log"))
        assert "WeightedEnergyForcesStressLoss" in trained.stdout + trained.stderr + logs
        assert (tmp_path / "mace" / "exported.model").is_file()

        # the density the users want: NPT with the production committee, stored with
        # the campaign, written as a table and a plot
        out = tmp_path / "density"
        options = ["--steps", "120", "--equilibration", "40", "--walkers", "2", "--blocks", "2"]
        dens = run_aloop(["density", str(CONFIG), "--db", db_uri, *options, "--out", str(out)], env)
        assert dens.returncode == 0, dens.stdout + dens.stderr
        assert "300.0 K:" in dens.stdout
        rows = (out / "density.csv").read_text().splitlines()
        assert len(rows) == 2 and rows[1].startswith("300,1,")
        assert (out / "density.png").stat().st_size > 0
        stored = campaigns.analyses(campaigns.get_campaign("tiny-cell").id, kind=DensityRun.KIND)
        assert len(stored) == 1
        run = DensityRun.from_doc(stored[0])
        assert run.steps == 120 and len(run.committee) == 2 and run.points[0].walkers == 2
        # the 3.3 Å cell is repeated to twice the model's 3 Å cutoff: 2x2x2, 32 atoms
        assert run.repeats == (2, 2, 2) and run.atoms == 32
        assert "repeated 2x2x2 (32 atoms" in dens.stdout
    finally:
        connection.disconnect()


def _det(cell) -> float:
    import numpy as np

    return float(np.linalg.det(np.asarray(cell, dtype=float).reshape(3, 3)))
