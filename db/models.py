"""The model aggregate: committee members, their provenance, and weights in GridFS."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from mongoengine.connection import get_db

from aloop.records import FINETUNED_HEAD, CampaignRecord, MemberRecord, fine_tuned_head
from aloop.versions import code_versions
from aloop.vocabulary import Stage, StageStatus
from db.blobs import get_blob, put_blob
from db.documents import Model
from db.iterations import final_iteration


def store_model(
    campaign: CampaignRecord,
    *,
    iteration: int,
    member: int,
    seed: int,
    weights: bytes,
    hyperparameters: dict,
    training_set: Sequence[str] = (),
    validation_set: Sequence[str] = (),
    parent: Any = None,
    metrics: dict | None = None,
    device: str = "cpu",
    wall_time: float | None = None,
    head: str = FINETUNED_HEAD,
) -> Any:
    """Store a committee member: weights into GridFS, provenance into a Model document.

    Returns the model's id.
    """
    file_id = put_blob(
        get_db(),
        weights,
        filename=f"{campaign.name}-it{iteration}-m{member}.model",
        metadata={"campaign": campaign.id, "iteration": iteration, "member": member},
    )
    model = Model(
        campaign=campaign.id,
        iteration=iteration,
        member=member,
        seed=seed,
        hyperparameters=hyperparameters,
        parent=parent,
        training_set=list(training_set),
        validation_set=list(validation_set),
        metrics=metrics or {},
        weights_file=file_id,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        weights_bytes=len(weights),
        device=device,
        wall_time=wall_time,
        code_versions=code_versions(),
        head=head,
    )
    model.save(force_insert=True)
    return model.id


def load_model_weights(model_id: Any) -> bytes:
    """The member's weights, verified against the sha256 on its Model document.

    Raises
    ------
    db.blobs.BlobIntegrityError
        The stored bytes do not hash to the recorded sha256 (never hand them to torch).
    """
    model = Model.objects.only("weights_file", "weights_sha256").get(id=model_id)
    return get_blob(get_db(), model.weights_file, expected_sha256=model.weights_sha256)


def committee_models(campaign_id: Any, iteration: int) -> list[MemberRecord]:
    """The members trained in an iteration, by member index."""
    return [
        MemberRecord(
            id=m.id,
            member=m.member,
            seed=m.seed,
            sha256=m.weights_sha256,
            valid=dict((m.metrics or {}).get("valid", {})),
            head=m.head or _head_before_the_field(m.hyperparameters),
        )
        for m in Model.objects(campaign=campaign_id, iteration=iteration)
        .only(
            "id",
            "member",
            "seed",  # not vocabulary: a field name
            "weights_sha256",
            "metrics",
            "hyperparameters",
            "head",
        )
        .order_by("member")
    ]


def _head_before_the_field(hyperparameters: dict | None) -> str:
    """The evaluated head of a member stored without the ``head`` field: from the heads
    MACE left on it, or ``Default`` (single-head models)."""
    return fine_tuned_head((hyperparameters or {}).get("heads"))


def final_committee(campaign_id: Any) -> list[MemberRecord]:
    """The campaign's production committee (its final iteration's members, once that
    stage is done), or [] when no stopping rule has fired and been acted on yet."""
    final = final_iteration(campaign_id)
    if final is None or final.stage_status(Stage.FINAL) is not StageStatus.DONE:
        return []
    return committee_models(campaign_id, final.index)
