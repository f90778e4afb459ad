"""mongoengine documents: one class per concept of DESIGN.md, each with its provenance."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    EmbeddedDocumentListField,
    FloatField,
    IntField,
    ListField,
    MapField,
    ObjectIdField,
    ReferenceField,
    StringField,
)

from aloop.vocabulary import (
    CampaignStatus,
    LabelStatus,
    Origin,
    SpinTreatment,
    Stability,
    StageStatus,
    Verdict,
)
from db.arrays import ArrayField


def _choices(values: type) -> tuple[str, ...]:
    """An enum's stored strings, as mongoengine's choices."""
    return tuple(v.value for v in values)


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC by every backend."""
    return datetime.now(UTC)


class _Timestamped(Document):
    """Creation and last-update times on every document."""

    created_at = DateTimeField(default=utcnow, required=True)
    updated_at = DateTimeField(default=utcnow, required=True)

    meta = {"abstract": True}

    def save(self, *args, **kwargs):
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)


class Campaign(_Timestamped):
    """An active-learning campaign: its config as stored, where it stands, and why."""

    name = StringField(required=True, unique=True, max_length=100)
    config = DictField(required=True)
    config_hash = StringField(required=True)
    config_changes = ListField(DictField())
    # Labels recomputed because their settings hash went out of use (db/relabel.py).
    relabels = ListField(DictField())
    # What the campaign's committees were used for afterwards (aloop density): each entry
    # names its kind, the committee, the settings and the results.
    analyses = ListField(DictField())
    status = StringField(
        choices=_choices(CampaignStatus), default=CampaignStatus.RUNNING.value, required=True
    )
    status_reason = StringField(default="")
    current_iteration = IntField(default=0, min_value=0)
    code_versions = DictField()
    # The run that holds the campaign (db/campaigns.py): absent or None when none does.
    # ``lease_expires`` is in seconds since the epoch, so every backend compares it alike.
    lease_owner = StringField(null=True)
    lease_host = StringField(null=True)
    lease_pid = IntField(null=True)
    lease_since = DateTimeField(null=True)
    lease_expires = FloatField(null=True)

    meta = {"collection": "campaigns", "indexes": ["status"]}


class StageState(EmbeddedDocument):
    """One stage of an iteration: where it stands, when it ran, why it failed."""

    status = StringField(
        choices=_choices(StageStatus), default=StageStatus.PENDING.value, required=True
    )
    started_at = DateTimeField()
    ended_at = DateTimeField()
    error = StringField()
    attempts = IntField(default=0)


class Iteration(_Timestamped):
    """One loop iteration: stage states, statistics and the committees involved."""

    campaign = ReferenceField(Campaign, required=True, dbref=False)
    index = IntField(required=True, min_value=0)
    stages = MapField(EmbeddedDocumentField(StageState))
    stats = DictField()
    explore_committee = ListField(ObjectIdField())
    trained_committee = ListField(ObjectIdField())

    meta = {
        "collection": "iterations",
        "indexes": [{"fields": ["campaign", "index"], "unique": True}],
    }


class Lineage(EmbeddedDocument):
    """Where a structure came from, beyond the indexed top-level fields."""

    walker = IntField()
    temperature = FloatField()
    pressure_gpa = FloatField()
    md_step = IntField()
    committee = ListField(ObjectIdField())
    #: the last sample before the walker stopped on uncertainty (a candidate whatever its
    #: deviation, so the loop labels where the committee was about to go wrong)
    before_stop = BooleanField()
    parent = StringField()
    source_file = StringField()
    source_index = IntField()


class Uncertainty(EmbeddedDocument):
    """Committee disagreement on a frame (eV/Å for forces, eV for energy, GPa for stress)."""

    force_dev_max = FloatField()
    force_dev_mean = FloatField()
    energy_dev = FloatField()
    #: Periodic frames: max over Voigt components of the members' stress std.
    stress_dev_gpa = FloatField()


class Structure(_Timestamped):
    """An atomic configuration with its content hash, lineage and selection verdict.

    Its id is derived from the campaign and the content hash (:func:`structure_id`), so
    storing the same geometry twice in a campaign is a no-op by construction, on every
    backend, without a compound unique index.
    """

    id = StringField(primary_key=True, regex=r"^[0-9a-f]{24}$")
    campaign = ReferenceField(Campaign, required=True, dbref=False)
    hash = StringField(required=True)
    numbers = ArrayField(dtype="int64", ndim=1, required=True)
    positions = ArrayField(dtype="float64", ndim=2, required=True)
    cell = ArrayField(dtype="float64", ndim=2, required=True)
    pbc = ListField(BooleanField(), required=True)
    charge = IntField(default=0)
    multiplicity = IntField(default=1, min_value=1)
    system = StringField(required=True)
    origin = StringField(choices=_choices(Origin), required=True)
    iteration = IntField(default=0, min_value=0)
    lineage = EmbeddedDocumentField(Lineage, default=Lineage)
    uncertainty = EmbeddedDocumentField(Uncertainty)
    verdict = StringField(choices=_choices(Verdict))
    verdict_reason = StringField()
    tags = ListField(StringField())

    meta = {
        "collection": "structures",
        "indexes": [
            ("campaign", "hash"),
            ("campaign", "iteration", "system"),
            ("campaign", "verdict"),
        ],
    }


def structure_id(campaign_id: object, digest: str) -> str:
    """Id of the structure with content hash ``digest`` in a campaign (24 hex digits)."""
    return hashlib.sha256(f"{campaign_id}:{digest}".encode()).hexdigest()[:24]


class SCFAttempt(EmbeddedDocument):
    """One rung of the SCF recovery ladder as it was tried."""

    strategy = StringField(required=True)
    cycles = IntField()
    converged = BooleanField(required=True)
    energy_change = FloatField()
    seconds = FloatField()
    error = StringField()
    # Absent on attempts stored before issue 18: not required.
    energy = FloatField()  # eV
    spin_treatment = StringField(choices=_choices(SpinTreatment), null=True)
    stability = StringField(choices=_choices(Stability), null=True)
    stability_rounds = IntField(default=0)
    stability_seconds = FloatField()


class Label(_Timestamped):
    """A reference calculation on one structure at one settings hash (at most one)."""

    structure = ReferenceField(Structure, required=True, dbref=False)
    campaign = ReferenceField(Campaign, required=True, dbref=False)
    settings_hash = StringField(required=True)
    settings = DictField()
    status = StringField(choices=_choices(LabelStatus), required=True)
    energy = FloatField()
    forces = ArrayField(dtype="float64", ndim=2)
    stress = ArrayField(dtype="float64", ndim=1)
    stress_note = StringField()
    s2 = FloatField()
    # Absent on labels stored before issue 18 (they still load): not required.
    stability = StringField(choices=_choices(Stability), null=True)
    stability_note = StringField(null=True)
    spin_treatment = StringField(choices=_choices(SpinTreatment), null=True)
    internal_energy = FloatField(null=True)  # eV; a smeared SCF's, beside its free energy
    scf_attempts = EmbeddedDocumentListField(SCFAttempt)
    error = StringField()
    wall_time = FloatField()
    host = StringField()
    threads = IntField()
    code_versions = DictField()
    iteration = IntField(default=0)

    meta = {
        "collection": "labels",
        "indexes": [
            {"fields": ["structure", "settings_hash"], "unique": True},
            ("campaign", "status"),
            ("campaign", "iteration"),
        ],
    }


class Model(_Timestamped):
    """One trained committee member; its weights live in GridFS."""

    campaign = ReferenceField(Campaign, required=True, dbref=False)
    iteration = IntField(required=True, min_value=0)
    member = IntField(required=True, min_value=0)
    seed = IntField(required=True)
    hyperparameters = DictField()
    parent = ObjectIdField()
    training_set = ListField(StringField())
    validation_set = ListField(StringField())
    dataset = ObjectIdField()
    metrics = DictField()
    weights_file = ObjectIdField(required=True)
    weights_sha256 = StringField(required=True)
    weights_bytes = IntField()
    device = StringField()
    wall_time = FloatField()
    code_versions = DictField()
    #: The head the member is evaluated with (MACE's ``Default``, the fine-tuned head of
    #: a multihead model). Unset on documents stored before it was a field.
    head = StringField()

    meta = {
        "collection": "models",
        "indexes": [{"fields": ["campaign", "iteration", "member"], "unique": True}],
    }


class Dataset(_Timestamped):
    """An export: the query that chose it, the ids, the split and the written files."""

    campaign = ReferenceField(Campaign, dbref=False)
    name = StringField()
    query = DictField()
    structure_ids = ListField(StringField())
    split = DictField()
    format = StringField()
    files = ListField(DictField())
    manifest = DictField()
    code_versions = DictField()

    meta = {"collection": "datasets", "indexes": ["campaign"]}


ALL_DOCUMENTS = (Campaign, Iteration, Structure, Label, Model, Dataset)
