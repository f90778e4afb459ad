"""The loop's vocabulary, defined once: verdicts, origins, statuses and stages.

Every value is a :class:`~enum.StrEnum`, so what is stored (MongoDB documents, exported
files, the JSON API) is the same plain string it always was, and a member compares equal
to that string. No other module spells these values as literals (``tests/`` checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What the loop decided about a structure.

    Exploration classifies each frame by the trust window (accurate, candidate,
    failed); selection then marks candidates selected or duplicate; labelling may reject.
    """

    ACCURATE = "accurate"
    CANDIDATE = "candidate"
    FAILED = "failed"
    SELECTED = "selected"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Origin(StrEnum):
    """How a structure entered the campaign."""

    INITIAL = "initial"
    RATTLED = "rattled"
    MD = "md"
    IMPORTED = "imported"


class LabelStatus(StrEnum):
    """Outcome of one reference calculation."""

    OK = "ok"
    FAILED = "failed"
    REJECTED = "rejected"


class Stage(StrEnum):
    """A step of an iteration. Iteration 0 seeds and labels; later ones run the loop."""

    SEED = "seed"
    TRAIN = "train"
    EXPLORE = "explore"
    SELECT = "select"
    LABEL = "label"


#: The stages of iteration 0 and of every later iteration, in the order they run.
SEED_STAGES: tuple[Stage, ...] = (Stage.SEED, Stage.LABEL)
LOOP_STAGES: tuple[Stage, ...] = (Stage.TRAIN, Stage.EXPLORE, Stage.SELECT, Stage.LABEL)


def stages_of(iteration: int) -> tuple[Stage, ...]:
    """The stages iteration ``iteration`` runs."""
    return SEED_STAGES if iteration == 0 else LOOP_STAGES


class StageStatus(StrEnum):
    """Where a stage stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class CampaignStatus(StrEnum):
    """Where a campaign stands: running, finished by a rule (converged or stopped), or
    failed."""

    RUNNING = "running"
    CONVERGED = "converged"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether a stopping rule ended the campaign."""
        return self in (CampaignStatus.CONVERGED, CampaignStatus.STOPPED)


class RejectionKind(StrEnum):
    """Why selection passed a candidate over."""

    SAME_HASH = "same_hash"
    NEAR_DESCRIPTOR = "near_descriptor"
    NOT_DIVERSE = "not_diverse"


@dataclass(frozen=True)
class Rejection:
    """A candidate selection passed over: the kind, and the words stored as its reason."""

    kind: RejectionKind
    detail: str

    @property
    def verdict(self) -> Verdict:
        """Duplicates are marked as such; a candidate that was merely not chosen stays one."""
        if self.kind is RejectionKind.NOT_DIVERSE:
            return Verdict.CANDIDATE
        return Verdict.DUPLICATE
