"""Typed statistics of an iteration: written by the stages, read by everyone else.

Each stage returns one of the ``*Stats`` models below; its :meth:`StageStats.to_doc` is
what the data layer merges into the iteration's ``stats`` document (the layout stored
since the first release, so old campaigns read back unchanged). :class:`IterationStats`
is the read side: built from a stored ``stats`` document, it is what convergence, the
CLI, the dashboard and the Prefect artifact all read, through attributes, not key strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aloop.vocabulary import CampaignStatus, Stage, StopRule


class _Stats(BaseModel):
    # Stored documents may carry keys a newer release added: ignore them when reading.
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_doc(self) -> dict[str, Any]:
        """The stored form: plain JSON types, unset (None) values left out."""
        return self.model_dump(mode="json", exclude_none=True)


class StageStats(_Stats):
    """What one stage adds to its iteration's statistics: its :meth:`to_doc` keys are
    top-level keys of the iteration's ``stats``."""

    def summary(self) -> str:
        """One line for the progress display."""
        raise NotImplementedError


# ------------------------------------------------------------------------------ seeding


class SeedStats(StageStats):
    """Iteration 0: the starting structures and their rattled copies, all selected."""

    seeded: int
    seeded_new: int = 0
    selected: int
    #: Of the seeds, the strained cells (None in documents stored before they existed).
    strained: int | None = None

    def summary(self) -> str:
        if self.strained:
            return f"{self.seeded} seed structures (initial + rattled + {self.strained} strained)"
        return f"{self.seeded} seed structures (initial + rattled)"


# ----------------------------------------------------------------------------- training


class TrainingStats(_Stats):
    """The committee trained at the start of an iteration (mean over members)."""

    structures: int
    members_trained: int
    valid_forces_rmse: float
    valid_energy_rmse_per_atom: float


class TrainStats(StageStats):
    """Stored under ``training``."""

    training: TrainingStats

    def summary(self) -> str:
        t = self.training
        return (
            f"{t.structures} structures, {t.members_trained} member(s) trained, "
            f"valid force RMSE {t.valid_forces_rmse:.3f} eV/Å"
        )


# ---------------------------------------------------------------------------- exploring


class Histogram(_Stats):
    """Counts of the max force deviation per bin ``[edges[i], edges[i+1])``."""

    edges: list[float]
    counts: list[int]


class VerdictCounts(_Stats):
    """Frames by trust-window verdict and the ratios they make."""

    sampled: int
    accurate: int
    candidate: int
    failed: int
    accurate_ratio: float


class SystemStats(VerdictCounts):
    """One system's exploration in one iteration."""

    name: str
    candidate_ratio: float
    failed_ratio: float
    histogram: Histogram
    trust_lo: float
    trust_hi: float
    walkers: int
    md_steps: int
    committee_calls: int
    walker_stops: dict[str, int] = Field(default_factory=dict)
    #: The configured lo (eV/Å, or calibrated units): ``trust_lo`` is the adaptive level
    #: when ``select.adaptive_lo`` lowered it. None in documents stored before.
    fixed_lo: float | None = None
    #: Accurate fraction of the planned simulated time on the fixed lo: each walker
    #: counts its accurate sampled frames out of the frames it would have sampled had it
    #: run every step, so a walker stopped early counts against convergence.
    time_ratio: float | None = None
    #: Walkers that ran every planned step.
    walkers_completed: int | None = None
    #: The factor the deviations were multiplied by before the window was read (1: raw).
    calibration_scale: float | None = None
    #: Periodic frames' committee stress deviation (GPa) and the stress window read on it;
    #: None for molecules and in documents stored before.
    stress_dev_median_gpa: float | None = None
    stress_dev_max_gpa: float | None = None
    stress_trust_lo_gpa: float | None = None
    stress_trust_hi_gpa: float | None = None
    #: Frames the stress window alone calls candidate / failed.
    stress_candidate: int | None = None
    stress_failed: int | None = None


class ExploreStats(StageStats, VerdictCounts):
    """Every system's exploration, with the totals over systems."""

    systems: list[SystemStats]
    #: Over systems: accurate planned time / planned time (see SystemStats.time_ratio).
    time_ratio: float | None = None

    def summary(self) -> str:
        return "; ".join(
            f"{x.name}: {x.sampled} frames, {x.accurate_ratio:.0%} accurate"
            + (f" ({x.time_ratio:.0%} of walker time)" if x.time_ratio is not None else "")
            + f", {x.candidate} candidate, {x.failed} failed"
            + (
                f", stress dev median {x.stress_dev_median_gpa:.2f} GPa"
                if x.stress_dev_median_gpa is not None
                else ""
            )
            for x in self.systems
        )

    @classmethod
    def of(cls, systems: list[SystemStats]) -> ExploreStats:
        """Totals and the overall accurate ratio from the per-system statistics."""
        sampled = sum(s.sampled for s in systems)
        accurate = sum(s.accurate for s in systems)
        timed = [s for s in systems if s.time_ratio is not None]
        time_ratio = (
            sum(s.time_ratio * s.walkers for s in timed) / max(1, sum(s.walkers for s in timed))
            if timed and len(timed) == len(systems)
            else None
        )
        return cls(
            systems=systems,
            time_ratio=time_ratio,
            sampled=sampled,
            accurate=accurate,
            candidate=sum(s.candidate for s in systems),
            failed=sum(s.failed for s in systems),
            accurate_ratio=accurate / sampled if sampled else 0.0,
        )


# ---------------------------------------------------------------------------- selecting


class SystemSelection(_Stats):
    """One system's selection: candidates seen, selected, and duplicates dropped."""

    candidates: int = 0
    selected: int = 0
    duplicates: int = 0
    #: Explored frames drawn at random as hold-out (labelled, never trained on).
    holdout: int = 0


class SelectStats(StageStats):
    """Every system's selection, with the totals."""

    selection: dict[str, SystemSelection]
    selected: int
    duplicates: int
    holdout: int = 0

    def summary(self) -> str:
        dupes = f", {self.duplicates} duplicates" if self.duplicates else ""
        held = f", {self.holdout} hold-out" if self.holdout else ""
        return f"{self.selected} selected{dupes}{held}"

    @classmethod
    def of(cls, selection: dict[str, SystemSelection]) -> SelectStats:
        """Totals from the per-system selection."""
        return cls(
            selection=selection,
            selected=sum(s.selected for s in selection.values()),
            duplicates=sum(s.duplicates for s in selection.values()),
            holdout=sum(s.holdout for s in selection.values()),
        )


# ---------------------------------------------------------------------------- labelling


class LabelStats(StageStats):
    """The iteration's labelling: outcomes at the label settings, DFT time spent."""

    to_label: int
    labelled: int
    #: Failed *or rejected* (the stored key's meaning since the first release).
    label_failures: int
    label_failure_reasons: dict[str, int] = Field(default_factory=dict)
    unlabelled: int = 0
    dft_wall_s: float = 0.0
    #: Of ``label_failures``, those the geometry guard rejected (0 in older documents).
    label_rejected: int = 0
    #: Of ``to_label`` and ``labelled``: the hold-out frames (DFT spent on testing).
    holdout_to_label: int = 0
    holdout_labelled: int = 0

    @property
    def label_failed(self) -> int:
        """Labels whose calculation failed (``label_failures`` less the rejected)."""
        return self.label_failures - self.label_rejected

    def summary(self) -> str:
        left = f", {self.unlabelled} left unlabelled" if self.unlabelled else ""
        rejected = f", {self.label_rejected} rejected" if self.label_rejected else ""
        held = f" ({self.holdout_labelled} hold-out)" if self.holdout_to_label else ""
        return (
            f"{self.labelled} ok{held}, {self.label_failed} failed{rejected}, "
            f"DFT {self.dft_wall_s:.1f} s{left}"
        )


# --------------------------------------------------------------------------- statistics


class CommitteeError(_Stats):
    """The exploring committee's error on the frames labelled in its iteration.

    ``n`` is the number of frames; the errors are None when there were none.
    """

    n: int = 0
    energy_rmse_per_atom: float | None = None
    energy_mae_per_atom: float | None = None
    forces_rmse: float | None = None
    forces_mae: float | None = None
    forces_max: float | None = None


class HoldoutError(_Stats):
    """A committee's error on the campaign's accumulated hold-out (never trained on).

    ``n`` frames, of which ``n_new`` were drawn in this iteration; energies per atom
    (eV/atom), forces per component (eV/Å); ``forces_max_p95`` is the 95th percentile
    over frames of each frame's largest per-atom force error (eV/Å), the same
    max-over-atoms form as the committee's deviation. Errors are None when n is 0.
    """

    n: int = 0
    n_new: int = 0
    energy_rmse_per_atom: float | None = None
    forces_rmse: float | None = None
    forces_max_p95: float | None = None
    #: Stress RMSE over Voigt components (GPa) on the ``stress_n`` hold-out frames that
    #: have a reference stress (cells); None for molecules.
    stress_rmse_gpa: float | None = None
    stress_n: int = 0

    def describe(self) -> str:
        """``"0.041 eV/Å force RMSE on 12 hold-out frames"`` (or that there are none)."""
        if not self.n or self.forces_rmse is None:
            return "no hold-out frames labelled"
        stress = (
            f", {self.stress_rmse_gpa:.3f} GPa stress RMSE on {self.stress_n}"
            if self.stress_rmse_gpa is not None
            else ""
        )
        return f"{self.forces_rmse:.4f} eV/Å force RMSE on {self.n} hold-out frames{stress}"


class Calibration(_Stats):
    """How the exploring committee's max force deviation maps to its true error.

    Fitted on the iteration's hold-out and newly labelled frames (``n``): ``scale`` is
    the median of true max-atom force error / max force deviation (``scale x
    deviation`` is then the median-unbiased error estimate), ``scale_90`` the 90th
    percentile of that ratio (the bound 90 % of frames stay under). ``spearman`` is the
    rank correlation of deviation and error; ``coverage_90`` is the fraction of the
    ``coverage_n`` frames first labelled in this iteration (new labels and new hold-out)
    under the *previous* iteration's ``scale_90 x deviation``: an out-of-sample check of
    the stated 90 % interval (None at the first calibration).
    ``points`` are the (deviation, error) pairs, eV/Å, for the dashboard's plot.
    """

    n: int
    scale: float | None = None
    scale_90: float | None = None
    spearman: float | None = None
    coverage_90: float | None = None
    coverage_n: int | None = None
    points: list[tuple[float, float]] = Field(default_factory=list)


class StopRecord(_Stats):
    """The stopping decision a final iteration acts on, stored with it (``rule`` None:
    a campaign that converged under an earlier release's rules, kept as it was)."""

    status: CampaignStatus
    reason: str
    rule: StopRule | None = None


class FinalStats(StageStats):
    """Stored under ``final``: the production committee and its hold-out error."""

    final: TrainingStats
    final_holdout: HoldoutError

    def summary(self) -> str:
        return (
            f"production committee on {self.final.structures} structures: "
            f"{self.final_holdout.describe()}"
        )


class StageTiming(_Stats):
    """A stage's wall time and the part of it spent in the science call."""

    wall_s: float
    compute_s: float


class IterationStats(_Stats):
    """Everything stored about one iteration, each stage's part None until it ran."""

    seed: SeedStats | None = None
    training: TrainingStats | None = None
    explore: ExploreStats | None = None
    selection: SelectStats | None = None
    labelling: LabelStats | None = None
    committee_error: CommitteeError | None = None
    holdout_error: HoldoutError | None = None
    calibration: Calibration | None = None
    final: FinalStats | None = None
    stop_decision: StopRecord | None = None
    timings: dict[Stage, StageTiming] = Field(default_factory=dict)
    wall_s: float | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None, index: int) -> IterationStats:
        """Read a stored ``stats`` document of iteration ``index``.

        Campaigns stored before iteration 0 had a seed stage of its own kept the seed's
        statistics in the explore slot and wrote ``training: {skipped: ...}``: both are
        read as the seed stage's.
        """
        d = dict(doc or {})
        timings = {
            Stage(k): StageTiming.model_validate(v) for k, v in (d.get("timings") or {}).items()
        }
        if index == 0 and Stage.EXPLORE in timings and Stage.SEED not in timings:
            timings[Stage.SEED] = timings.pop(Stage.EXPLORE)
        training = d.get("training")
        return cls(
            seed=SeedStats.model_validate({"selected": d.get("seeded", 0), **d})
            if "seeded" in d
            else None,
            training=TrainingStats.model_validate(training)
            if training and "structures" in training
            else None,
            explore=ExploreStats.model_validate(d) if "systems" in d else None,
            selection=SelectStats.model_validate(d) if "selection" in d else None,
            labelling=LabelStats.model_validate(d) if "to_label" in d else None,
            committee_error=CommitteeError.model_validate(d["committee_error"])
            if d.get("committee_error")
            else None,
            holdout_error=HoldoutError.model_validate(d["holdout_error"])
            if d.get("holdout_error")
            else None,
            calibration=Calibration.model_validate(d["calibration"])
            if d.get("calibration")
            else None,
            final=FinalStats.model_validate(d) if Stage.FINAL in d else None,
            stop_decision=StopRecord.model_validate(d["stop_decision"])
            if d.get("stop_decision")
            else None,
            timings=timings,
            wall_s=d.get("iteration_wall_s"),
        )

    # Views across stages: the numbers a table row or a stopping rule asks for.

    @property
    def selected(self) -> int | None:
        """Structures selected for labelling (iteration 0: every seed structure)."""
        if self.selection is not None:
            return self.selection.selected
        return self.seed.selected if self.seed is not None else None

    @property
    def labelled(self) -> int | None:
        """Successful labels made in the iteration."""
        return self.labelling.labelled if self.labelling is not None else None

    @property
    def label_failures(self) -> int | None:
        """Failed or rejected labels of the iteration."""
        return self.labelling.label_failures if self.labelling is not None else None

    @property
    def committee_forces_rmse(self) -> float | None:
        """The committee's force RMSE on the new labels, when frames were labelled."""
        err = self.committee_error
        return err.forces_rmse if err is not None and err.n else None

    @property
    def holdout_forces_rmse(self) -> float | None:
        """The committee's force RMSE on the accumulated hold-out, when there is one."""
        err = self.holdout_error
        return err.forces_rmse if err is not None and err.n else None

    def accurate_ratios(self, per_system: bool) -> list[float]:
        """The accurate ratios a stopping rule compares: one overall, or one per system.

        The ratio of planned walker time on the fixed lo (``time_ratio``); documents
        stored before it existed give their frame ratio.
        """
        if self.explore is None:
            return [] if per_system else [0.0]
        if per_system:
            return [_ratio(s) for s in self.explore.systems]
        return [_ratio(self.explore)]


def _ratio(stats: SystemStats | ExploreStats) -> float:
    return stats.time_ratio if stats.time_ratio is not None else stats.accurate_ratio


#: What a stage function returns: its statistics and the seconds spent computing.
StageResult = tuple[StageStats, float]
