"""Plain records that the science code hands to the data layer (and gets back)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from aloop.stats import HoldoutError, IterationStats
from aloop.structures import content_hash
from aloop.vocabulary import (
    CampaignStatus,
    LabelStatus,
    Origin,
    SpinTreatment,
    Stability,
    Stage,
    StageStatus,
    Verdict,
)

#: MACE's namespaced reference keys: an extxyz written with them feeds mace_run_train
#: (--energy_key REF_energy --forces_key REF_forces --stress_key REF_stress) unchanged.
REF_ENERGY = "REF_energy"
REF_FORCES = "REF_forces"
REF_STRESS = "REF_stress"

#: MACE's names for the head a fine-tuned model learns the campaign's labels with, and
#: for the foundation's own head that replays its training data (multihead runs).
FINETUNED_HEAD = "Default"
REPLAY_HEAD = "pt_head"


def model_heads(model: Any) -> list[str]:
    """A MACE model's heads (a model from before heads existed has MACE's one)."""
    return [str(h) for h in getattr(model, "heads", None) or [FINETUNED_HEAD]]


def fine_tuned_head(heads: Sequence[str] | None) -> str:
    """The head a model was trained on the campaign's labels with: the last one that is
    not MACE's replay head (``pt_head``, the foundation's own); ``Default`` when no
    heads are recorded (single-head models)."""
    own = [h for h in heads or [FINETUNED_HEAD] if h != REPLAY_HEAD]
    if not own:
        raise ValueError(f"a model with only the replay head {list(heads)} has no fine-tuned head")
    return own[-1]


@dataclass
class StructureRecord:
    """A structure to store: geometry plus lineage, as plain data."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: Sequence[bool]
    system: str
    origin: Origin
    charge: int = 0
    multiplicity: int = 1
    iteration: int = 0
    lineage: dict = field(default_factory=dict)
    uncertainty: dict | None = None
    verdict: Verdict | None = None
    verdict_reason: str | None = None
    tags: list[str] = field(default_factory=list)

    @classmethod
    def from_atoms(cls, atoms: Any, system: str, origin: Origin, **kw: Any) -> StructureRecord:
        """A record from an ASE Atoms object."""
        return cls(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell.array,
            pbc=[bool(p) for p in atoms.pbc],
            system=system,
            origin=origin,
            **kw,
        )

    @property
    def hash(self) -> str:
        """Canonical content hash (see :func:`aloop.structures.content_hash`)."""
        return content_hash(
            self.numbers, self.positions, self.cell, self.pbc, self.charge, self.multiplicity
        )


@dataclass
class LabelRecord:
    """A finished (or failed) reference calculation, as plain data from dft/."""

    structure_id: str
    settings_hash: str
    status: LabelStatus
    settings: dict = field(default_factory=dict)
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    stress_note: str | None = None
    s2: float | None = None
    #: Whether the SCF solution was shown to be a minimum (None: stored before the
    #: analysis existed, or no SCF solution at all).
    stability: Stability | None = None
    #: What the analysis found (lowest orbital-Hessian eigenvalues) or why none was made.
    stability_note: str | None = None
    spin_treatment: SpinTreatment | None = None
    #: eV. A smeared SCF's internal energy, beside ``energy`` (its free energy, whose
    #: derivative the forces are); None without smearing, where they are one number.
    internal_energy: float | None = None
    scf_attempts: list[dict] = field(default_factory=list)
    error: str | None = None
    wall_time: float | None = None
    host: str = field(default_factory=socket.gethostname)
    threads: int | None = None
    code_versions: dict = field(default_factory=dict)
    iteration: int = 0

    def labelled_atoms(self, atoms: Any) -> Any:
        """A copy of ``atoms`` carrying this label under MACE's REF_ keys.

        Raises
        ------
        ValueError
            The label is not ``ok`` (a failed label has no numbers to attach).
        """
        if self.status != LabelStatus.OK:
            raise ValueError(f"label of {self.structure_id} is {self.status}: {self.error}")
        out = atoms.copy()
        out.calc = None
        out.info[REF_ENERGY] = float(self.energy)
        out.arrays[REF_FORCES] = np.asarray(self.forces, dtype=np.float64).copy()
        if self.stress is not None:
            out.info[REF_STRESS] = np.asarray(self.stress, dtype=np.float64).copy()
        return out


@dataclass(frozen=True)
class StageState:
    """Where one stage of an iteration stands, as stored."""

    status: StageStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def seconds(self) -> float | None:
        """Wall time from start to end, once both are known."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class IterationRecord:
    """One iteration as the data layer returns it: stage states and typed statistics.

    ``stages`` holds what is stored; an iteration 0 stored before the seed had a stage of
    its own has train/explore/select entries, and its seed's state is the explore one.
    """

    id: Any
    index: int
    stages: dict[Stage, StageState]
    stats: IterationStats
    explore_committee: list[Any] = field(default_factory=list)
    trained_committee: list[Any] = field(default_factory=list)
    updated_at: datetime | None = None

    def stage_status(self, stage: Stage) -> StageStatus | None:
        """The stage's status, or None when this iteration has no such stage."""
        state = self.stages.get(stage)
        return state.status if state is not None else None

    @property
    def is_final(self) -> bool:
        """Whether this is the final iteration (the production committee), not a loop one."""
        return Stage.FINAL in self.stages

    @property
    def labelled_done(self) -> bool:
        """Whether the iteration's labelling finished (its stage statistics are stored;
        the hold-out error and calibration follow, see ``flows.campaign._measure``)."""
        return self.stage_status(Stage.LABEL) is StageStatus.DONE


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign as the data layer returns it."""

    id: Any
    name: str
    status: CampaignStatus
    status_reason: str = ""
    current_iteration: int = 0
    config: dict = field(default_factory=dict)
    config_hash: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class MemberRecord:
    """A stored committee member: enough to load it and to report its validation."""

    id: Any
    member: int
    seed: int
    sha256: str
    valid: dict = field(default_factory=dict)
    #: The head the member is evaluated with: MACE's ``Default``, the fine-tuned head of
    #: a multihead model.
    head: str = FINETUNED_HEAD


@dataclass(frozen=True)
class CampaignOutcome:
    """How a run of a campaign ended: what ``aloop run`` reports."""

    campaign: str
    status: CampaignStatus
    reason: str
    iterations: int
    labels_ok: int
    labels_failed: int
    labels_rejected: int = 0
    database: str = ""
    #: Of ``labels_ok``: the hold-out's (DFT spent on testing, never trained on).
    labels_holdout: int = 0
    #: The production committee's error on the whole hold-out (None: no final stage).
    final_holdout: HoldoutError | None = None
