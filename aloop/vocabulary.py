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
    failed); selection then marks candidates selected or duplicate, and draws a random
    hold-out of explored frames (labelled, never trained on); labelling may reject.
    """

    ACCURATE = "accurate"
    CANDIDATE = "candidate"
    FAILED = "failed"
    SELECTED = "selected"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    #: A random sample of explored frames, labelled as the campaign's unbiased test set:
    #: never trained on, never used for model selection.
    HOLDOUT = "holdout"


class Origin(StrEnum):
    """How a structure entered the campaign."""

    INITIAL = "initial"
    RATTLED = "rattled"
    #: A starting cell strained (isotropic and shear) and rattled: iteration 0's view of
    #: other volumes and shapes, so the committee's virial is trained before NPT.
    STRAINED = "strained"
    MD = "md"
    IMPORTED = "imported"
    #: One element's atom alone, labelled for its reference energy (MACE's E0s).
    ISOLATED_ATOM = "isolated_atom"


class LabelStatus(StrEnum):
    """Outcome of one reference calculation."""

    OK = "ok"
    FAILED = "failed"
    REJECTED = "rejected"


class Stability(StrEnum):
    """What PySCF's stability analysis said about a label's SCF solution."""

    #: A minimum: no lower solution of the same spin treatment nearby.
    STABLE = "stable"
    #: A restricted singlet kept by the ``restricted`` spin policy although an
    #: unrestricted (broken-symmetry) solution is lower: the label says so.
    EXTERNAL_UNSTABLE = "external_unstable"
    #: Still a saddle point after every round of following the instability (the label
    #: fails with it).
    INTERNAL_UNSTABLE = "internal_unstable"
    #: PySCF has no stability analysis for this mean field; nothing is claimed.
    NOT_ANALYSED = "not_analysed"


class Engine(StrEnum):
    """The code that computes a campaign's labels (``dft.engine``)."""

    #: PySCF: molecules, and periodic cells at the Γ point (the default).
    PYSCF = "pyscf"
    #: CP2K's Quickstep (GPW) through ASE's calculator and ``cp2k_shell``: periodic cells
    #: with energy, forces and stress from one SCF (molten salts, solids).
    CP2K = "cp2k"


class SpinPolicy(StrEnum):
    """How a singlet whose restricted solution is unstable towards an unrestricted one is
    labelled (``dft.spin``)."""

    #: Keep the restricted surface; flag the label EXTERNAL_UNSTABLE.
    RESTRICTED = "restricted"
    #: Re-solve unrestricted from the unstable orbitals and keep that surface.
    BROKEN_SYMMETRY = "broken_symmetry"


class SpinTreatment(StrEnum):
    """Which mean field a label's SCF solution is: one set of orbitals for both spins, or
    one per spin (open shells, and broken-symmetry singlets)."""

    RESTRICTED = "restricted"
    UNRESTRICTED = "unrestricted"


class E0Source(StrEnum):
    """Where the isolated-atom reference energies a model trains with come from
    (``model.e0s``)."""

    #: Each element's atom labelled at the campaign's DFT settings.
    ISOLATED_ATOMS = "isolated_atoms"
    #: MACE's least-squares fit over the training set (``--E0s=average``).
    AVERAGE = "average"


class FinetuneMode(StrEnum):
    """How a foundation model is fine-tuned (``model.finetune``)."""

    #: MACE's recommended multihead replay: a new head learns the campaign's labels while
    #: the foundation's head keeps replaying a subset of its training data.
    MULTIHEAD = "multihead"
    #: Every weight trained on the campaign's labels alone.
    NAIVE = "naive"


class Stage(StrEnum):
    """A step of an iteration. Iteration 0 seeds and labels; later ones run the loop."""

    SEED = "seed"
    TRAIN = "train"
    EXPLORE = "explore"
    SELECT = "select"
    LABEL = "label"
    #: After a stopping rule fired: the production committee trained on every label.
    FINAL = "final"


#: The stages of iteration 0 and of every later iteration, in the order they run.
SEED_STAGES: tuple[Stage, ...] = (Stage.SEED, Stage.LABEL)
LOOP_STAGES: tuple[Stage, ...] = (Stage.TRAIN, Stage.EXPLORE, Stage.SELECT, Stage.LABEL)
#: The stages of the final iteration (one past the last exploring one).
FINAL_STAGES: tuple[Stage, ...] = (Stage.FINAL,)


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


class StopRule(StrEnum):
    """Which stopping rule ended a campaign (named in its status reason)."""

    ACCURATE_RATIO = "accurate_ratio"
    ADAPTIVE_LO = "adaptive_lo"
    HOLDOUT_ERROR = "holdout_error"
    ITERATION_CAP = "iteration_cap"


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
