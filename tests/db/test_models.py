"""The model aggregate on every backend: weights in GridFS, hash-checked on the way back,
and the committee of an iteration."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from db import models
from db.blobs import BlobIntegrityError
from db.connection import database
from db.documents import Model
from tests.db.factories import new_campaign


@pytest.fixture
def campaign(backend):
    return new_campaign()


def test_model_weights_round_trip_with_sha256_check(campaign):
    weights = np.random.default_rng(0).bytes(700_000)  # three GridFS chunks
    model_id = models.store_model(
        campaign,
        iteration=1,
        member=0,
        seed=7,
        weights=weights,
        hyperparameters={"r_max": 5.0},
        training_set=["a" * 24],
    )
    assert models.load_model_weights(model_id) == weights
    stored = Model.objects.get(id=model_id)
    assert stored.campaign.id == campaign.id and stored.training_set == ["a" * 24]
    chunks = database()["fs.chunks"]
    assert chunks.count_documents({"files_id": stored.weights_file}) == 3
    # flip one byte of a stored chunk: loading must refuse it
    chunk = chunks.find_one({"files_id": stored.weights_file, "n": 1})
    data = bytearray(chunk["data"])
    data[10] ^= 0xFF
    chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})
    with pytest.raises(BlobIntegrityError, match="sha256"):
        models.load_model_weights(model_id)


def test_committee_members_by_index_with_their_validation(campaign):
    ids = {}
    for member in (1, 0):
        blob = f"weights-{member}".encode()
        ids[member] = models.store_model(
            campaign,
            iteration=2,
            member=member,
            seed=10 + member,
            weights=blob,
            hyperparameters={},
            metrics={"valid": {"forces_rmse": 0.1 * (member + 1)}, "epochs": 3},
        )
    models.store_model(campaign, iteration=3, member=0, seed=0, weights=b"x", hyperparameters={})
    got = models.committee_models(campaign.id, 2)
    assert [(m.id, m.member, m.seed) for m in got] == [(ids[0], 0, 10), (ids[1], 1, 11)]
    assert got[1].sha256 == hashlib.sha256(b"weights-1").hexdigest()
    assert got[1].valid == {"forces_rmse": pytest.approx(0.2)}
    assert models.committee_models(campaign.id, 4) == []


def test_a_member_is_read_back_with_the_head_it_is_evaluated_with(campaign):
    """A multihead member is evaluated with its fine-tuned head, stored as a field;
    members stored before the field read it from the heads MACE left, or Default."""
    models.store_model(
        campaign, iteration=0, member=0, seed=0, weights=b"a", hyperparameters={}, head="target"
    )
    models.store_model(campaign, iteration=0, member=1, seed=1, weights=b"b", hyperparameters={})
    heads = {"heads": ["pt_head", "Default"]}
    for member, hp in ((2, heads), (3, {})):
        mid = models.store_model(
            campaign, iteration=0, member=member, seed=member, weights=b"c", hyperparameters=hp
        )
        Model.objects(id=mid).update_one(unset__head=True)  # as stored before the field
    got = models.committee_models(campaign.id, 0)
    assert [m.head for m in got] == ["target", "Default", "Default", "Default"]
    assert Model.objects.get(campaign=campaign.id, member=2).head is None
