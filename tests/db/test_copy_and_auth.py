"""Moving a campaign between databases (`aloop db copy`, embedded store -> wire server)
and authenticated connections (SCRAM on the wire server)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from ase.build import molecule
from typer.testing import CliRunner

from aloop.cli import app
from aloop.records import LabelRecord, StructureRecord
from aloop.stats import LabelStats
from aloop.vocabulary import LabelStatus, Origin
from db import campaigns, connection, iterations, labels, models, structures
from db.blobs import get_blob
from db.documents import Campaign, Iteration, Label, Model, Structure
from tests.db.conftest import wire_uri
from tests.support.wire import WireServer, wire_python

pytestmark = pytest.mark.wire
runner = CliRunner()


def _seed(uri: str) -> dict:
    connection.connect(uri)
    try:
        camp, _ = campaigns.get_or_create_campaign("move-me", {"campaign": "move-me"}, "m" * 64)
        other, _ = campaigns.get_or_create_campaign("stay", {"campaign": "stay"}, "s" * 64)
        recs = []
        for i in range(12):
            a = molecule("H2O")
            a.positions += np.random.default_rng(i).normal(scale=0.05, size=(3, 3))
            recs.append(StructureRecord.from_atoms(a, "water", Origin.MD, iteration=1))
        ids = structures.insert_structures(camp.id, recs).ids
        structures.insert_structures(other.id, recs[:3])
        for sid in ids[:8]:
            labels.record_label(
                camp.id,
                LabelRecord(structure_id=sid, settings_hash="h" * 64, status=LabelStatus.OK,
                            energy=-2080.0, forces=np.ones((3, 3)), iteration=1),
            )  # fmt: skip
        weights = {}
        for m in range(2):
            blob = np.random.default_rng(m).bytes(300_000)  # two GridFS chunks
            model_id = models.store_model(
                camp,
                iteration=1,
                member=m,
                seed=m,
                weights=blob,
                hyperparameters={"r_max": 4.0},
                training_set=ids[:6],
            )
            weights[str(model_id)] = hashlib.sha256(blob).hexdigest()
        it = iterations.get_or_create_iteration(camp.id, 1)
        iterations.merge_stats(it.id, {"sampled": 12})
        iterations.merge_stats(it.id, LabelStats(to_label=8, labelled=8, label_failures=0))
        return {"structures": ids, "weights": weights}
    finally:
        connection.disconnect()


def test_db_copy_moves_a_campaign_with_its_files_intact(wire_server, tmp_path):
    src = f"embedded://{tmp_path / 'db'}"
    dst = wire_uri(wire_server, "copy_target")
    seeded = _seed(src)
    result = runner.invoke(app, ["db", "copy", src, dst, "--campaign", "move-me"])
    assert result.exit_code == 0, result.output
    assert "GridFS files: 2, sha256 verified: 2" in result.output
    connection.connect(dst)
    try:
        camp = Campaign.objects.get(name="move-me")
        assert Campaign.objects(name="stay").count() == 0  # only what was asked
        assert Structure.objects(campaign=camp.id).count() == 12
        assert Label.objects(campaign=camp.id).count() == 8
        for m in Model.objects(campaign=camp.id):
            data = models.load_model_weights(m.id)  # hash-checked against the Model document
            assert hashlib.sha256(data).hexdigest() == seeded["weights"][str(m.id)]
            assert get_blob(connection.database(), m.weights_file)
        atoms = structures.load_atoms(seeded["structures"][:1])[0]
        assert atoms.info["structure_id"] == seeded["structures"][0]
        (it,) = iterations.campaign_iterations(campaigns.get_campaign("move-me").id)
        raw = Iteration._get_collection().find_one({"_id": it.id})
        assert (it.index, raw["stats"]["sampled"], it.stats.labelled) == (1, 12, 8)
    finally:
        connection.disconnect()
    again = runner.invoke(app, ["db", "copy", src, dst, "--campaign", "move-me"])
    assert again.exit_code == 0, again.output
    assert "       0 written" in again.output  # nothing twice
    missing = runner.invoke(app, ["db", "copy", src, dst, "--campaign", "nosuch"])
    assert missing.exit_code == 2 and "no campaign named 'nosuch'" in missing.output


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    if wire_python() is None:
        pytest.skip("no wire server environment")
    server = WireServer(tmp_path_factory.mktemp("auth"), user="aloop", password="s3cret-pw")
    yield server
    server.stop()


def test_credentials_connect_and_a_wrong_password_fails_clearly(auth_server):
    good = auth_server.uri("aloop_auth")
    connection.connect(good)
    try:
        campaigns.get_or_create_campaign("secured", {"campaign": "secured"}, "a" * 64)
        assert [c["name"] for c in campaigns.list_campaigns()] == ["secured"]
    finally:
        connection.disconnect()
    bad = auth_server.uri("aloop_auth", password="wrong-pw")
    with pytest.raises(connection.DatabaseUnavailable, match="authentication failed") as exc:
        connection.connect(bad)
    assert "wrong-pw" not in str(exc.value) and "***" in str(exc.value)
    result = runner.invoke(app, ["status", "--db", bad])
    assert result.exit_code == 1
    assert "authentication failed" in result.output and "wrong-pw" not in result.output
