"""End to end: ``aloop run`` on a tiny campaign with real PySCF and real MACE."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from db import connection
from db import repository as repo
from db.documents import Campaign, Iteration
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
    # The live display names every stage of every iteration.
    for stage in ("train", "explore", "select", "label"):
        assert re.search(rf"iteration 2 {stage}", first.stderr), first.stderr

    connection.connect(db)
    try:
        counts = check_campaign("tiny-water", committee_size=2)
        assert counts["iterations"] == 3  # seed + 2 exploring iterations (the cap)
        assert counts["labels_ok"] >= 12 + 1  # the seeds, and something learnt after
        stats = {it.index: it.stats for it in Iteration.objects.order_by("index")}
        for k in (1, 2):
            assert stats[k]["sampled"] > 0
            assert stats[k]["committee_error"]["n"] == stats[k]["labelled"]
            assert (
                stats[k]["timings"]["label"]["wall_s"] >= stats[k]["timings"]["label"]["compute_s"]
            )
        before = Campaign.objects.get(name="tiny-water").updated_at
    finally:
        connection.disconnect()
    # The Prefect UI gets each exploring iteration's table as a markdown artifact.
    for k in (1, 2):
        markdown = _artifact(f"tiny-water-iteration-{k}")
        assert f"# tiny-water: iteration {k}" in markdown
        assert re.search(rf"\| water \| {stats[k]['sampled']} \|", markdown), markdown

    again = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already stopped" in again.stderr

    # Interrupted after its last labels but before its status was written: a re-run
    # finishes it with the rules' status instead of staying "interrupted".
    connection.connect(db)
    try:
        repo.set_campaign_status(Campaign.objects.get(name="tiny-water"), "stopped", "interrupted")
    finally:
        connection.disconnect()
    finish = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert "iteration cap reached (2)" in finish.stdout
    connection.connect(db)
    try:
        assert check_campaign("tiny-water", committee_size=2)["label_ids"] == counts["label_ids"]
        before = Campaign.objects.get(name="tiny-water").updated_at
    finally:
        connection.disconnect()
    again = run_aloop(["run", str(tiny_config), "--db", db], env)
    assert "already stopped" in again.stderr
    connection.connect(db)
    try:
        assert check_campaign("tiny-water", committee_size=2)["label_ids"] == counts["label_ids"]
        assert Campaign.objects.get(name="tiny-water").updated_at == before
    finally:
        connection.disconnect()


def _artifact(key: str) -> str:
    """The latest markdown of a Prefect artifact, read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    return found[-1].data


def test_changed_science_is_refused_and_raising_the_cap_continues(
    prefect_api, tiny_config, tmp_path
):
    db = f"embedded://{tmp_path / 'db'}"
    env = campaign_env(prefect_api, tmp_path / "data")
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["stop"]["max_iterations"] = 1
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
    assert "resuming campaign tiny-water at iteration 1" in more.stderr
    assert "iteration cap reached (2)" in more.stdout
    connection.connect(db)
    try:
        assert check_campaign("tiny-water", committee_size=2)["iterations"] == 3
    finally:
        connection.disconnect()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
