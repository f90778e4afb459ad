"""The stages of one loop iteration as plain functions (the flow wraps each in a task).

Each stage reads what it needs from the database, calls the science code of aloop/ and
dft/, and writes its results back before returning, so the database always says how far
an iteration got. Each is safe to run again after a crash:

- seed and explore regenerate the same structures (seeded) and inserts dedupe by
  content hash; explore first removes the frames a killed run left half-written;
- train trains only the members not yet stored;
- select recomputes its verdicts from the stored candidates;
- label skips structures labelled at the same settings hash.

A stage returns ``(stats, compute_seconds)``: its typed statistics (aloop/stats.py),
merged into the iteration, and the seconds spent inside the science call (training, MD,
DFT), which the loop benchmark subtracts from the stage's wall time to get orchestration
overhead.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aloop.calibration import committee_error, fit_calibration, frame_errors, holdout_error
from aloop.explore.classify import (
    adaptive_lower,
    classify_frames,
    statistics,
    stress_deviations,
    stress_statistics,
    time_ratio,
)
from aloop.explore.select import select
from aloop.explore.walkers import MDSettings, frame_records, plan_walkers, run_walkers
from aloop.initial import seed_structures
from aloop.isolated_atoms import (
    E0Unavailable,
    IsolatedAtomLabel,
    UnsupportedElement,
    isolated_atom,
    reference_energies,
)
from aloop.records import LabelRecord, StructureRecord
from aloop.stats import (
    Calibration,
    CommitteeError,
    ExploreStats,
    FinalStats,
    HoldoutError,
    LabelStats,
    SeedStats,
    SelectStats,
    SystemSelection,
    SystemStats,
    TrainingStats,
    TrainStats,
)
from aloop.structures import atoms_hash
from aloop.vocabulary import E0Source, LabelStatus, Origin, Stage, Verdict
from db import isolated_atoms, iterations, labels, models, structures
from db.documents import structure_id
from dft.batch import LabelTask
from flows.context import CampaignError, LabelRunner, Loop, label_recorder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ase import Atoms

    from aloop.config import SystemConfig
    from aloop.records import IterationRecord
    from dft.settings import LabelSettings

# ----------------------------------------------------------------------------- seeding


def seed_stage(loop: Loop, iteration: IterationRecord) -> tuple[SeedStats, float]:
    """Iteration 0: the starting structures plus rattled (and, for cells, strained)
    copies, all selected to label."""
    cfg = loop.cfg
    records = []
    for system in cfg.systems:
        starts = loop.starts[system.name]
        for atoms, origin, parent in seed_structures(starts, cfg.initial):
            lineage = {}
            if parent is not None:
                digest = atoms_hash(starts[parent], system.charge, system.multiplicity)
                lineage["parent"] = structure_id(loop.campaign.id, digest)
            records.append(
                StructureRecord.from_atoms(
                    atoms,
                    system.name,
                    origin,
                    charge=system.charge,
                    multiplicity=system.multiplicity,
                    iteration=0,
                    lineage=lineage,
                    verdict=Verdict.SELECTED,
                    verdict_reason="seed: iteration 0 labels every starting structure",
                )
            )
    result = structures.insert_structures(loop.campaign.id, records)
    # Imported frames waiting for a label are selected at iteration 0 too.
    selected = len(structures.structure_ids(loop.campaign.id, 0, verdicts=[Verdict.SELECTED]))
    strained = sum(r.origin is Origin.STRAINED for r in records)
    return SeedStats(
        seeded=len(records), seeded_new=result.inserted, selected=selected, strained=strained
    ), 0.0


# ---------------------------------------------------------------------------- training


def train_stage(loop: Loop, iteration: IterationRecord) -> tuple[TrainStats, float]:
    """Train the committee on every structure labelled before this iteration."""
    from aloop.models.foundation import FoundationStart
    from aloop.models.train import train_committee

    k = iteration.index
    cfg = loop.cfg
    ids, frames = loop.labelled_before(k)
    if len(ids) < 2:
        raise CampaignError(
            f"iteration {k}: only {len(ids)} successful label(s) to train on; at least 2 "
            "are needed (see the failed labels with `aloop status`)"
        )
    stored = {m.member for m in models.committee_models(loop.campaign.id, k)}
    missing = [m for m in range(cfg.model.committee_size) if m not in stored]
    parents = (
        models.committee_models(loop.campaign.id, k - 1)
        if cfg.model.warm_start == "previous"
        else []
    )
    start = time.perf_counter()
    if missing:
        e0s = training_e0s(loop, k, frames)
        train_committee(
            frames,
            ids,
            cfg.model,
            loop.workdir / f"it{k}" / Stage.TRAIN,
            parents=[models.load_model_weights(p.id) for p in parents] or None,
            members=missing,
            on_member=lambda member: _store_member(loop, k, member, parents, e0s),
            atomic_energies=None if e0s is None else {z: lab.energy for z, lab in e0s.items()},
            foundation=FoundationStart.from_config(cfg.model, loop.base_dir),
        )
    compute = time.perf_counter() - start
    trained = models.committee_models(loop.campaign.id, k)
    iterations.set_committees(iteration.id, trained=[m.id for m in trained])
    training = TrainingStats(
        structures=len(ids),
        members_trained=len(missing),
        valid_forces_rmse=float(np.mean([m.valid["forces_rmse"] for m in trained])),
        valid_energy_rmse_per_atom=float(
            np.mean([m.valid["energy_rmse_per_atom"] for m in trained])
        ),
    )
    return TrainStats(training=training), compute


def _store_member(
    loop: Loop, k: int, member: Any, parents: list, e0s: dict[int, IsolatedAtomLabel] | None
) -> None:
    """Store one trained member as soon as it exists (a resume trains only the rest)."""
    parent = parents[member.member % len(parents)].id if parents else None
    hyperparameters = dict(member.hyperparameters)
    if e0s is not None:
        # Which labels the E0s are: the isolated atoms' provenance is theirs.
        used = hyperparameters.get("atomic_energies", {})
        hyperparameters["atomic_energy_labels"] = {
            lab.symbol: lab.manifest_entry() for lab in e0s.values() if lab.symbol in used
        }
    models.store_model(
        loop.campaign,
        iteration=k,
        member=member.member,
        seed=member.seed,
        weights=member.weights,
        hyperparameters=hyperparameters,
        training_set=member.training_ids,
        validation_set=member.valid_ids,
        parent=parent,
        metrics={
            **member.metrics,
            "epochs": member.epochs,
            "learning_curve": member.learning_curve,
        },
        device=member.device,
        wall_time=member.wall_time,
        head=member.head,
    )
    loop.reporter.message(
        f"  member {member.member}: valid force RMSE "
        f"{member.metrics['valid']['forces_rmse']:.4f} eV/Å ({member.wall_time:.0f} s)"
    )


# ---------------------------------------------------------------- isolated-atom E0s


def training_e0s(
    loop: Loop, k: int, frames: Sequence[Atoms]
) -> dict[int, IsolatedAtomLabel] | None:
    """The isolated-atom labels iteration ``k``'s committee trains with (None: ``average``).

    Labels the missing isolated atoms first (:func:`ensure_isolated_atoms`). With
    ``model.e0s: isolated_atoms`` an element of the training frames without a usable
    one stops the campaign (no silent fall-back to MACE's fit); with ``average`` the
    atoms are still labelled (an export carries them) and a failure is only reported.
    """
    explicit = loop.cfg.model.e0s is E0Source.ISOLATED_ATOMS
    stored = ensure_isolated_atoms(loop, loop.label_runner or label_here, k, frames)
    try:
        chosen = reference_energies(_training_elements(frames), stored)
    except E0Unavailable as exc:
        if explicit:
            raise CampaignError(f"iteration {k}: {exc}") from None
        loop.reporter.message(f"  model.e0s is average; isolated atoms: {exc}")
        return None
    return chosen if explicit else None


def _training_elements(frames: Sequence[Atoms]) -> dict[str, set[int]]:
    """The atomic numbers of the training frames, by their labels' settings hash."""
    found: dict[str, set[int]] = {}
    for a in frames:
        found.setdefault(a.info[labels.LABEL_SETTINGS_HASH], set()).update(map(int, a.numbers))
    return found


def ensure_isolated_atoms(
    loop: Loop, run_labels: LabelRunner, k: int, frames: Sequence[Atoms] = ()
) -> list[IsolatedAtomLabel]:
    """Label each element's isolated atom at each settings hash in use, unless done.

    The elements are those of each system's starting structures and of ``frames`` (the
    training set), by settings hash; only the (element, settings hash) pairs without a
    label are computed, so a new campaign, one stored before isolated atoms existed and
    one whose new system brings an element all end up with every pair labelled once.
    A failed label stays what it is (one label per structure and settings hash).

    Returns every stored isolated-atom label at the hashes in use.
    """
    needed = loop.elements_by_hash()
    for settings_hash, zs in _training_elements(frames).items():
        needed.setdefault(settings_hash, set()).update(zs)
    by_hash = loop.settings_by_hash()
    jobs: list[tuple[LabelTask, LabelSettings]] = []
    for settings_hash, zs in sorted(needed.items()):
        settings = by_hash[settings_hash]
        known = _supported(loop, zs)
        ids = isolated_atoms.store_isolated_atoms(loop.campaign.id, known, settings.periodic, k)
        done = labels.labelled_ids(list(ids.values()), settings_hash)
        for z, sid in ids.items():
            if sid not in done:
                atoms = isolated_atom(z, settings.periodic)
                mult = atoms.info["multiplicity"]
                jobs.append((LabelTask(sid, atoms, charge=0, multiplicity=mult), settings))
    if jobs:
        loop.reporter.message(f"  labelling {len(jobs)} isolated atom(s) for the E0s")
        on_record, _ = label_recorder(loop, len(jobs), lambda _: k)
        run_labels(jobs, on_record)
    stored = isolated_atoms.campaign_isolated_atom_labels(loop.campaign.id)
    return [lab for lab in stored if lab.settings_hash in needed]


def _supported(loop: Loop, zs: set[int]) -> list[int]:
    """``zs`` less the elements without a tabulated ground state (an error when the E0s
    must come from isolated atoms; with ``average`` they are only left unlabelled)."""
    known = []
    for z in sorted(zs):
        try:
            isolated_atom(z, periodic=False)
        except UnsupportedElement as exc:
            if loop.cfg.model.e0s is E0Source.ISOLATED_ATOMS:
                raise CampaignError(str(exc)) from None
            loop.reporter.message(f"  {exc}")
            continue
        known.append(z)
    return known


def label_here(
    jobs: Sequence[tuple[LabelTask, LabelSettings]], on_record: Callable[[LabelRecord], None]
) -> None:
    """Label ``jobs`` in a worker process of their own (with the SCF time limit), for a
    loop that was given no labeller: same calculation, same record, as the label stage."""
    from dft.batch import label_batch

    for settings_hash in sorted({s.settings_hash() for _, s in jobs}):
        group = [(t, s) for t, s in jobs if s.settings_hash() == settings_hash]
        label_batch([t for t, _ in group], group[0][1], workers=1, on_result=on_record)


# --------------------------------------------------------------------------- exploring


def explore_stage(loop: Loop, iteration: IterationRecord) -> tuple[ExploreStats, float]:
    """Committee MD from labelled structures; every sampled frame stored with its verdict."""
    k = iteration.index
    removed = structures.delete_unlabelled_frames(loop.campaign.id, k)
    if removed:
        loop.reporter.message(f"  removed {removed} frames of an interrupted exploration")
    committee, model_ids = loop.committee(k)
    iterations.set_committees(iteration.id, explored=model_ids)
    systems, compute = [], 0.0
    for system in loop.cfg.systems:
        stats, seconds = _explore_system(loop, k, system, committee, model_ids)
        systems.append(stats)
        compute += seconds
    return ExploreStats.of(systems), compute


def _explore_system(
    loop: Loop, k: int, system: SystemConfig, committee: Any, model_ids: list
) -> tuple[SystemStats, float]:
    """One system's walkers: run them, classify and store their frames."""
    cfg = loop.cfg
    window = cfg.trust_window(system.name)
    scale = loop.calibration_scale(k) if window.calibrated else 1.0
    # The window is in calibrated units: the walkers stop at the raw deviation that the
    # scale maps onto the stop threshold.
    md = MDSettings.from_config(cfg.explore, window.hi / scale, window.stress_hi_gpa)
    _, labelled = loop.labelled_before(k)
    npt = md.ensemble == "npt"
    pressures = (system.pressures_gpa or cfg.explore.pressures_gpa) if npt else ()
    temps = cfg.temperatures(system.name)
    conditions = len(temps) * max(1, len(pressures))
    specs = plan_walkers(
        system.name,
        [a for a in labelled if a.info["system"] == system.name],
        temps,
        max(1, -(-cfg.explore.walkers_per_system // conditions)),
        pressures_gpa=pressures,
        seed=cfg.explore.seed + 1009 * k,
    )
    start = time.perf_counter()
    results, calls = run_walkers(committee, specs, md)
    compute = time.perf_counter() - start
    frames = [f for r in results for f in r.frames]
    dev = scale * np.array([f.force_dev_max for f in frames], dtype=float)
    stress_dev = stress_deviations(frames)
    before = np.array([f.before_stop for f in frames], bool)
    lo = adaptive_lower(dev, window.hi, window.lo) if cfg.select.adaptive_lo else window.lo

    def verdicts_at(lo: float) -> np.ndarray:
        if not window.reads_stress:
            return classify_frames(dev, before, lo, window.hi)
        return classify_frames(
            dev, before, lo, window.hi, stress_dev, window.stress_lo_gpa, window.stress_hi_gpa
        )

    verdicts = verdicts_at(lo)
    structures.insert_structures(
        loop.campaign.id,
        frame_records(
            frames,
            list(verdicts),
            k,
            committee=model_ids,
            charge=system.charge,
            multiplicity=system.multiplicity,
        ),
    )
    # Convergence reads the fixed lo, whatever the adaptive level did for selection: a
    # frame is accurate when its verdict there is (force and, when read, stress below lo;
    # a frame kept before a stop is a candidate).
    fixed = verdicts if lo == window.lo else verdicts_at(window.lo)
    ends = np.cumsum([len(r.frames) for r in results])
    accurate = (
        [int((part == Verdict.ACCURATE).sum()) for part in np.split(fixed, ends[:-1])]
        if results
        else []
    )
    stats = SystemStats(
        name=system.name,
        **statistics(verdicts, dev, np.linspace(0.0, scale * md.stop_force_dev, 21)),
        trust_lo=lo,
        trust_hi=window.hi,
        walkers=len(specs),
        md_steps=int(sum(r.steps_done for r in results)),
        committee_calls=calls,
        walker_stops=dict(Counter(r.stop_reason for r in results)),
        fixed_lo=window.lo,
        time_ratio=time_ratio(accurate, md.steps // md.sample_interval),
        walkers_completed=sum(r.completed for r in results),
        calibration_scale=scale,
        **stress_statistics(stress_dev, window.stress_lo_gpa, window.stress_hi_gpa),
    )
    return stats, compute


# --------------------------------------------------------------------------- selecting


def select_stage(loop: Loop, iteration: IterationRecord) -> tuple[SelectStats, float]:
    """Per system: draw the hold-out, then drop duplicates of labelled structures and keep
    a diverse few of the remaining candidates."""
    k = iteration.index
    committee, _ = loop.committee(k)
    _, labelled = loop.labelled_before(k)
    # A candidate next to a hold-out frame would put its near-copy into training: the
    # hold-out (labelled before, or drawn now) counts as known for de-duplication.
    _, held_before = labels.labelled_frames(
        loop.campaign.id, loop.settings_hashes(), before_iteration=k, holdout=True
    )
    per_system: dict[str, SystemSelection] = {}
    updates: list[tuple[str, Verdict, str]] = []
    for system in loop.cfg.systems:
        held = _draw_holdout(loop, k, system.name)
        updates += [(sid, Verdict.HOLDOUT, HOLDOUT_REASON) for sid in held]
        # Everything exploration called a candidate, whatever an earlier select run made
        # of it: the verdicts below are recomputed from scratch.
        ids = structures.structure_ids(
            loop.campaign.id,
            k,
            verdicts=[Verdict.CANDIDATE, Verdict.SELECTED, Verdict.DUPLICATE],
            origins=[Origin.MD],
            system=system.name,
        )
        ids = [i for i in ids if i not in held]
        training = [a for a in labelled if a.info["system"] == system.name]
        held_known = [a for a in held_before if a.info["system"] == system.name]
        held_known += structures.load_atoms(sorted(held))
        chosen = _select_system(loop, k, ids, (training, held_known), committee, updates)
        per_system[system.name] = chosen.model_copy(update={"holdout": len(held)})
    structures.set_verdicts(updates)
    return SelectStats.of(per_system), 0.0


HOLDOUT_REASON = "hold-out: a random explored frame, labelled to test, never trained on"


def _draw_holdout(loop: Loop, k: int, system: str) -> set[str]:
    """``select.holdout_per_system`` of the iteration's explored frames, drawn at random.

    The draw is over every frame the trust window admits (failed frames lie outside the
    domain and are never labelled), so the hold-out samples what the committee's MD
    visits, not what it was unsure of. Seeded by the campaign's select seed, the
    iteration and the system, over the sorted ids: a resumed selection draws the same.
    """
    n = loop.cfg.select.holdout_per_system
    if n == 0:
        return set()
    pool = structures.structure_ids(
        loop.campaign.id,
        k,
        verdicts=[v for v in Verdict if v not in (Verdict.FAILED, Verdict.REJECTED)],
        origins=[Origin.MD],
        system=system,
    )
    rng = np.random.default_rng([loop.cfg.select.seed, k, zlib.crc32(system.encode())])
    picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return {pool[int(i)] for i in picks}


def _select_system(
    loop: Loop,
    k: int,
    ids: list[str],
    known: tuple[list, list],
    committee: Any,
    updates: list,
) -> SystemSelection:
    """One system's verdicts, appended to ``updates``. ``known`` is (the training
    frames, the hold-out frames): both are duplicates to avoid, only the first is what
    the committee has learnt from."""
    if not ids:
        return SystemSelection()
    cfg = loop.cfg.select
    info = structures.frame_info(ids)
    window = loop.cfg.trust_window(info[ids[0]].system)
    scale = loop.calibration_scale(k) if window.calibrated else 1.0
    atoms = structures.load_atoms(ids)
    training, held = known
    desc = committee.evaluate(atoms + training + held, descriptors=True).descriptors
    chosen = select(
        desc[: len(ids)],
        [info[i].hash for i in ids],
        _window_units([info[i] for i in ids], window, scale),
        cfg.max_per_system,
        method=cfg.diversity,
        dedupe_distance=cfg.dedupe_distance,
        known_descriptors=desc[len(ids) :],
        training_descriptors=desc[len(ids) : len(ids) + len(training)],
        seed=cfg.seed + k,
    )
    picked = set(chosen.selected)
    for j, sid in enumerate(ids):
        if j in picked:
            updates.append((sid, Verdict.SELECTED, f"diverse candidate ({cfg.diversity})"))
        else:
            updates.append((sid, chosen.rejected[j].verdict, chosen.rejected[j].detail))
    dupes = sum(r.verdict is Verdict.DUPLICATE for r in chosen.rejected.values())
    return SystemSelection(candidates=len(ids), selected=len(picked), duplicates=dupes)


def _window_units(frames: list, window: Any, scale: float) -> np.ndarray:
    """Each frame's uncertainty in units of its trust window's hi: the larger of the
    force deviation (times the calibration ``scale``) and, when the window reads it, the
    stress deviation over their his, so a frame ranks by its worse one. Without a stress
    window, frames rank by force deviation alone, as before (a constant factor)."""
    force = scale * np.array([f.force_dev_max for f in frames], dtype=float) / window.hi
    stress = stress_deviations(frames)
    if not window.reads_stress or stress is None:
        return force
    return np.fmax(force, stress / window.stress_hi_gpa)


# --------------------------------------------------------------------------- labelling


def label_stage(
    loop: Loop, iteration: IterationRecord, run_labels: LabelRunner
) -> tuple[LabelStats, float]:
    """Label the iteration's selected and hold-out structures that have no label at their
    settings yet (the hold-out is DFT spent on testing, counted apart)."""
    k = iteration.index
    jobs: list[tuple[LabelTask, LabelSettings]] = []
    total = skipped = 0
    outcome_ids: dict[str, list[str]] = {}
    held: set[str] = set()
    for system in loop.cfg.systems:
        ids = structures.structure_ids(
            loop.campaign.id, k, verdicts=[Verdict.SELECTED, Verdict.HOLDOUT], system=system.name
        )
        held.update(
            structures.structure_ids(
                loop.campaign.id, k, verdicts=[Verdict.HOLDOUT], system=system.name
            )
        )
        settings = loop.label_settings(system.name)
        outcome_ids.setdefault(settings.settings_hash(), []).extend(ids)
        done = labels.labelled_ids(ids, settings.settings_hash())
        todo = [i for i in ids if i not in done]
        total += len(ids)
        skipped += len(done)
        for sid, atoms in zip(todo, structures.load_atoms(todo), strict=True):
            task = LabelTask(sid, atoms, charge=system.charge, multiplicity=system.multiplicity)
            jobs.append((task, settings))
    if skipped:
        loop.reporter.message(f"  {skipped} of {total} already labelled (resumed)")
    on_record, _ = label_recorder(loop, len(jobs), lambda _: k)

    start = time.perf_counter()
    if jobs:
        run_labels(jobs, on_record)
    compute = time.perf_counter() - start
    outcomes: dict[str, labels.LabelOutcome] = {}
    for settings_hash, ids in outcome_ids.items():
        outcomes.update(labels.label_outcomes(ids, settings_hash))
    statuses = Counter(o.status for o in outcomes.values())
    bad = [o for o in outcomes.values() if o.status is not LabelStatus.OK]
    return LabelStats(
        to_label=total,
        labelled=statuses[LabelStatus.OK],
        label_failures=statuses[LabelStatus.FAILED] + statuses[LabelStatus.REJECTED],
        label_rejected=statuses[LabelStatus.REJECTED],
        label_failure_reasons=dict(Counter((o.error or "")[:80] for o in bad)),
        unlabelled=total - len(outcomes),
        dft_wall_s=round(sum(o.wall_time for o in outcomes.values()), 3),
        holdout_to_label=len(held),
        holdout_labelled=sum(outcomes[i].status is LabelStatus.OK for i in held if i in outcomes),
    ), compute


# -------------------------------------------------------------------------- statistics


def iteration_errors(loop: Loop, iteration: IterationRecord) -> IterationErrors:
    """The exploring committee against DFT on the frames labelled so far that it never
    trained on: the accumulated hold-out (the unbiased estimate) and this iteration's
    new labels (chosen for high deviation: the biased one), and the calibration of its
    deviation on both. One batched evaluation."""
    k = iteration.index
    if k == 0:
        return IterationErrors(CommitteeError(n=0), HoldoutError(n=0), Calibration(n=0))
    committee, _ = loop.committee(k)
    hashes = loop.settings_hashes()
    _, new = labels.labelled_frames(loop.campaign.id, hashes, iteration=k)
    _, held = labels.labelled_frames(loop.campaign.id, hashes, before_iteration=k + 1, holdout=True)
    errors = frame_errors(committee, [*new, *held])
    new_err, held_err = errors.take(range(len(new))), errors.take(range(len(new), len(errors)))
    held_new = np.array([a.info["iteration"] == k for a in held], bool)  # drawn in k
    previous = iterations.find_iteration(loop.campaign.id, k - 1)
    return IterationErrors(
        committee_error(new_err),
        holdout_error(held_err, n_new=int(held_new.sum())),
        fit_calibration(
            errors,
            previous.stats.calibration if previous is not None else None,
            fresh=np.concatenate([np.ones(len(new), bool), held_new]),
        ),
    )


@dataclass(frozen=True)
class IterationErrors:
    """What :func:`iteration_errors` stores in the iteration's statistics."""

    committee_error: CommitteeError
    holdout_error: HoldoutError
    calibration: Calibration

    def to_doc(self) -> dict[str, Any]:
        return {
            "committee_error": self.committee_error.to_doc(),
            "holdout_error": self.holdout_error.to_doc(),
            "calibration": self.calibration.to_doc(),
        }


# ------------------------------------------------------------------------ final stage


def final_stage(loop: Loop, iteration: IterationRecord) -> tuple[FinalStats, float]:
    """The production committee: trained on every label (warm-started from the last
    exploring committee, as any iteration's), with its error on the whole hold-out.

    Resumes like the train stage (only members not yet stored are trained).
    """
    trained, compute = train_stage(loop, iteration)
    committee, _ = loop.committee(iteration.index)
    _, held = labels.labelled_frames(loop.campaign.id, loop.settings_hashes(), holdout=True)
    final_holdout = holdout_error(frame_errors(committee, held))
    return FinalStats(final=trained.training, final_holdout=final_holdout), compute
