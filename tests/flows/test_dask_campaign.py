"""End to end: ``aloop run`` of the tiny campaign with ``execution.task_runner: dask``, on
a local cluster and on an external scheduler with two workers, as docs/scale-out.md says.

Each run must label the seed structures with the very numbers a local (thread runner)
run of the same campaign computes, label every structure it selects, and do each label
as a task run the Prefect API knows, computed by the Dask workers. (What later
iterations select depends on MACE training, which is not bit-reproducible across runs
on a CPU with several threads, so their counts are not compared.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aloop.vocabulary import LabelStatus
from db import campaigns, connection, labels
from db.documents import Label
from db.isolated_atoms import isolated_atom_ids
from tests.flows.conftest import campaign_env, run_aloop
from tests.flows.consistency import check_campaign
from tests.flows.dask_cluster import executed_per_worker, external_cluster, require_dask

pytestmark = pytest.mark.slow


def _config(tiny_config: Path, where: Path, **execution: object) -> Path:
    """The tiny campaign capped at one exploring iteration, with ``execution`` set."""
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["stop"]["max_iterations"] = 1
    cfg["execution"] = {"label_workers": 2, **execution}
    where.mkdir(parents=True, exist_ok=True)
    path = where / "tiny-water.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_campaign(prefect_api: str, config: Path, where: Path) -> dict:
    """``aloop run`` to its stopping rule; the consistency counts and the labels."""
    db = f"embedded://{where / 'db'}"
    done = run_aloop(["run", str(config), "--db", db], campaign_env(prefect_api, where / "data"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "iteration cap reached (1)" in done.stdout, done.stdout + done.stderr
    connection.connect(db)
    try:
        counts = check_campaign("tiny-water", committee_size=2)
        campaign = campaigns.get_campaign("tiny-water")
        by_status = labels.label_counts(campaign.id)
        # The campaign's labels, less its isolated atoms' (the E0s, tested apart).
        isolated = set(isolated_atom_ids(campaign.id))
        found = [
            lab for lab in Label.objects(campaign=campaign.id) if lab.structure.id not in isolated
        ]
        structures = [str(lab.structure.id) for lab in found]
        seeds = {lab.structure.hash: lab.energy for lab in found if lab.iteration == 0}
    finally:
        connection.disconnect()
    return {"counts": counts, "by_status": by_status, "structures": structures, "seeds": seeds}


@pytest.fixture(scope="module")
def local_run(prefect_api, tmp_path_factory) -> dict:
    """The same campaign on the default thread runner: the label counts to match."""
    where = tmp_path_factory.mktemp("local")
    tiny = Path(__file__).with_name("tiny-water.yaml")
    return _run_campaign(prefect_api, _config(tiny, where), where)


def _label_task_runs(structures: list[str]) -> dict[str, tuple[str, object]]:
    """State and flow run of each structure's ``label-<id>`` task run, from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    names = [f"label-{sid}" for sid in structures]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)), limit=200
        )
    return {run.name: (run.state_type.value, run.flow_run_id) for run in runs}


def _assert_like_local(run: dict, local: dict) -> None:
    # Every label ok and every selected structure labelled (check_campaign). How many
    # frames iteration 1 selects (possibly none) is the committee's call, not the runner's.
    assert set(run["by_status"]) == {LabelStatus.OK}
    assert run["by_status"][LabelStatus.OK] == len(run["structures"]) >= 12
    assert run["counts"]["iterations"] == local["counts"]["iterations"]
    # The same seed structures, labelled to the same numbers as on the thread runner.
    assert run["seeds"].keys() == local["seeds"].keys() and len(run["seeds"]) == 12
    for digest, energy in run["seeds"].items():
        assert energy == pytest.approx(local["seeds"][digest], abs=1e-8), digest
    # One Prefect task run per structure, finished, in the campaign's flow run.
    runs = _label_task_runs(run["structures"])
    states = {name: state for name, (state, _) in runs.items()}
    assert states == {f"label-{sid}": "COMPLETED" for sid in run["structures"]}
    flow_runs = {flow_run for _, flow_run in runs.values()}
    assert len(flow_runs) == 1 and None not in flow_runs, flow_runs


def test_the_campaign_labels_on_a_local_dask_cluster(prefect_api, local_run, tiny_config, tmp_path):
    require_dask()
    config = _config(tiny_config, tmp_path, task_runner="dask")
    _assert_like_local(_run_campaign(prefect_api, config, tmp_path), local_run)


def test_the_campaign_labels_on_an_external_dask_scheduler(
    prefect_api, local_run, tiny_config, tmp_path
):
    require_dask()
    env = campaign_env(prefect_api, tmp_path / "worker-data")
    with external_cluster(env, tmp_path / "dask-logs", workers=2) as address:
        config = _config(tiny_config, tmp_path, task_runner="dask", dask_address=address)
        run = _run_campaign(prefect_api, config, tmp_path)
        executed = executed_per_worker(address)
    _assert_like_local(run, local_run)
    # The cluster's two workers computed the labels (not a cluster of the flow's own).
    assert len(executed) == 2
    assert sum(executed.values()) >= len(run["structures"]), executed
