"""End to end: ``aloop run`` on a tiny campaign with real PySCF and real MACE."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import yaml

from aloop.vocabulary import CampaignStatus, Stage
from db import campaigns, connection, iterations
from tests.flows.conftest import campaign_env, run_aloop
from tests.flows.consistency import check_campaign

pytestmark = pytest.mark.slow


def test_aloop_run_completes_and_resumes_without_new_work(prefect_api, tiny_config, tmp_path):
    db = f"embedded://{tmp_path / 'db'}"
    env = campaign_env(prefect_api, tmp_path / "data")
    first = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "campaign tiny-water: stopped" in first.stdout
    assert "iteration cap reached (2)" in first.stdout
    # The production committee is trained once the cap fired, and its error reported.
    assert re.search(r"iteration 3 final", first.stderr), first.stderr
    assert re.search(r"production committee: [0-9.]+ eV/Å force RMSE on 4 hold-out", first.stdout)
    # The live display names every stage of every iteration.
    for stage in (Stage.TRAIN, Stage.EXPLORE, Stage.SELECT, Stage.LABEL):
        assert re.search(rf"iteration 2 {stage}", first.stderr), first.stderr
    # Iteration 0 seeds (its own stage) and labels.
    for stage in (Stage.SEED, Stage.LABEL):
        assert re.search(rf"iteration 0 {stage}", first.stderr), first.stderr

    connection.connect(db)
    try:
        counts = check_campaign("tiny-water", committee_size=2)
        assert counts["iterations"] == 4  # seed + 2 exploring iterations (the cap) + final
        assert counts["labels_ok"] >= 12 + 1  # the seeds, and something learnt after
        campaign = campaigns.get_campaign("tiny-water")
        _check_trained_on_isolated_atom_e0s(campaign.id, counts["labels_ok"])
        stats = {it.index: it.stats for it in iterations.campaign_iterations(campaign.id)}
        assert stats[0].seed is not None and stats[0].selected == stats[0].labelling.to_label
        assert Stage.SEED in stats[0].timings and Stage.EXPLORE not in stats[0].timings
        for k in (1, 2):
            assert stats[k].explore.sampled > 0
            labelling = stats[k].labelling
            assert labelling.holdout_to_label == stats[k].selection.holdout == 2
            assert stats[k].committee_error.n == labelling.labelled - labelling.holdout_labelled
            # the hold-out accumulates: two frames drawn per iteration (tiny-water's default)
            assert (stats[k].holdout_error.n, stats[k].holdout_error.n_new) == (2 * k, 2)
            assert stats[k].calibration.n == stats[k].committee_error.n + 2 * k
            label = stats[k].timings[Stage.LABEL]
            assert label.wall_s >= label.compute_s
        assert stats[3].final.final_holdout.n == 4
        before = campaign.updated_at
    finally:
        connection.disconnect()
    # The Prefect UI gets each exploring iteration's table as a markdown artifact.
    for k in (1, 2):
        markdown = _artifact(f"tiny-water-iteration-{k}")
        assert f"# tiny-water: iteration {k}" in markdown
        assert re.search(rf"\| water \| {stats[k].explore.sampled} \|", markdown), markdown

    again = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already stopped" in again.stderr

    # Interrupted after its last labels but before their statistics (so before the final
    # iteration) and before its status was written: a re-run measures the hold-out error
    # first, as the rules read it, then trains the final committee (its members already
    # stored: none retrained) and finishes with the rules' status, not "interrupted".
    connection.connect(db)
    try:
        campaign = campaigns.get_campaign("tiny-water")
        campaigns.set_campaign_status(campaign.id, CampaignStatus.STOPPED, "interrupted")
        store = connection.database()["iterations"]
        store.delete_one({"campaign": campaign.id, "index": 3})
        unset = dict.fromkeys(("stats.holdout_error", "stats.calibration"), "")
        store.update_one({"campaign": campaign.id, "index": 2}, {"$unset": unset})
    finally:
        connection.disconnect()
    finish = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert "iteration cap reached (2)" in finish.stdout
    assert "hold-out: " in finish.stderr + finish.stdout
    connection.connect(db)
    try:
        assert check_campaign("tiny-water", committee_size=2)["label_ids"] == counts["label_ids"]
        restored = {it.index: it.stats for it in iterations.campaign_iterations(campaign.id)}
        # the same numbers (the batched evaluation's sums may differ in the last bit)
        assert _close(restored[2].holdout_error, stats[2].holdout_error)
        assert _close(restored[2].calibration, stats[2].calibration)
        assert _close(restored[3].final.final_holdout, stats[3].final.final_holdout)
        assert restored[3].final.final.members_trained == 0
        before = campaigns.get_campaign("tiny-water").updated_at
    finally:
        connection.disconnect()
    again = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert "already stopped" in again.stderr
    connection.connect(db)
    try:
        assert check_campaign("tiny-water", committee_size=2)["label_ids"] == counts["label_ids"]
        assert campaigns.get_campaign("tiny-water").updated_at == before
    finally:
        connection.disconnect()


def _close(a, b) -> bool:
    """Two statistics records equal up to floating-point rounding."""
    da, db = a.model_dump(), b.model_dump()
    return da.keys() == db.keys() and all(
        np.allclose(da[k], db[k], rtol=1e-9, atol=0)
        if isinstance(da[k], (float, list))
        else da[k] == db[k]
        for k in da
    )


def _check_trained_on_isolated_atom_e0s(campaign_id, labels_ok: int) -> None:
    """The H and O atoms were labelled once each (UHF, doublet and triplet) and every
    member of every committee trained with their energies as MACE's explicit E0s."""
    from aloop.vocabulary import LabelStatus
    from db import isolated_atoms, labels
    from db.documents import Model

    atoms = isolated_atoms.campaign_isolated_atom_labels(campaign_id)
    assert [(a.symbol, a.status, a.multiplicity) for a in atoms] == [
        ("H", LabelStatus.OK, 2),
        ("O", LabelStatus.OK, 3),
    ]
    e0s = {a.symbol: a.energy for a in atoms}
    members = list(Model.objects(campaign=campaign_id))
    assert len(members) == 6  # two iterations and the final committee, two members each
    for m in members:
        assert m.hyperparameters["e0s"] == "isolated_atoms"
        assert m.hyperparameters["atomic_energies"] == e0s
        used = m.hyperparameters["atomic_energy_labels"]
        assert {k: v["label_id"] for k, v in used.items()} == {a.symbol: a.label_id for a in atoms}
    # They are no campaign structure's labels.
    assert labels.label_counts(campaign_id)[LabelStatus.OK] == labels_ok - len(atoms)


def _artifact(key: str) -> str:
    """The latest markdown of a Prefect artifact, read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    # The API server is the session's: other tests' runs of tiny-water write this key too.
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
    assert found, f"no artifact {key}"
    return found[0].data


def test_changed_science_is_refused_and_raising_the_cap_continues(
    prefect_api, tiny_config, tmp_path
):
    db = f"embedded://{tmp_path / 'db'}"
    env = campaign_env(prefect_api, tmp_path / "data")
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["stop"]["max_iterations"] = 1
    # The trust window in calibrated units: iteration 2 reads iteration 1's scale.
    cfg["select"]["trust"]["calibrated"] = True
    # MACE training is not bit-reproducible here: a fitted scale on this tiny committee
    # can put the walkers' stop below their first step's deviation (a recorded dead
    # end, seen once in CI). What is tested is the resume, so walkers never stop on
    # uncertainty.
    cfg["explore"].setdefault("stop", {})["force_dev_factor"] = 1000.0
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump(cfg))
    done = run_aloop(["run", str(short), "--db", db], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "iteration cap reached (1)" in done.stdout

    cfg["dft"]["basis"] = "6-31g"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    refused = run_aloop(["run", str(changed), "--db", db], env)
    assert refused.returncode == 2
    assert "different configuration" in refused.stderr
    assert "--allow-config-change" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout

    # The stopping rules are not part of the results: raising the cap continues.
    cfg["dft"]["basis"] = "sto-3g"
    cfg["stop"]["max_iterations"] = 2
    longer = tmp_path / "longer.yaml"
    longer.write_text(yaml.safe_dump(cfg))
    more = run_aloop(["run", str(longer), "--db", db], env)
    assert more.returncode == 0, more.stdout + more.stderr
    # The final iteration (2) becomes an exploring one: its members, trained on every
    # label before it, are that iteration's committee, not trained again.
    assert "resuming campaign tiny-water at iteration 2" in more.stderr
    assert "iteration 2: the stopping rules no longer hold; exploring on" in more.stderr
    assert re.search(r"iteration 2 train .* 0 member\(s\) trained", more.stderr), more.stderr
    assert "iteration cap reached (2)" in more.stdout
    connection.connect(db)
    try:
        assert check_campaign("tiny-water", committee_size=2)["iterations"] == 4
        cid = campaigns.get_campaign("tiny-water").id
        stats = {it.index: it.stats for it in iterations.campaign_iterations(cid)}
        assert stats[1].explore.systems[0].calibration_scale == 1.0  # nothing fitted yet
        fitted = stats[1].calibration
        assert fitted.n >= 5 and fitted.scale > 0
        (water,) = stats[2].explore.systems
        assert water.calibration_scale == fitted.scale
        # lo is read on the calibrated deviation: the accurate frames are those whose
        # scaled deviation lies below it
        assert water.fixed_lo == 0.02
    finally:
        connection.disconnect()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
