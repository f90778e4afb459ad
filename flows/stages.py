"""The stages of one loop iteration as plain functions (the flow wraps each in a task).

Each stage reads what it needs from the database, calls the science code of aloop/ and
dft/, and writes its results back before returning, so the database always says how far
an iteration got. Each is safe to run again after a crash:

- seed and explore regenerate the same structures (seeded) and inserts dedupe by
  content hash; explore first removes the frames a killed run left half-written;
- train trains only the members not yet stored;
- select recomputes its verdicts from the stored candidates;
- label skips structures labelled at the same settings hash.

A stage returns ``(stats, compute_seconds)``: statistics merged into the iteration and
the seconds spent inside the science call (training, MD, DFT), which the loop benchmark
subtracts from the stage's wall time to get orchestration overhead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aloop.explore.classify import CANDIDATE, adaptive_lower, classify, statistics
from aloop.explore.select import select
from aloop.explore.walkers import MDSettings, frame_records, plan_walkers, run_walkers
from aloop.initial import seed_structures
from aloop.models.train import reference_errors
from aloop.records import LabelRecord, StructureRecord
from aloop.structures import atoms_hash, load_system_structures
from db import loop as q
from db import repository as repo
from db.documents import structure_id
from dft.batch import LabelTask
from dft.settings import LabelSettings

if TYPE_CHECKING:
    from ase import Atoms

    from aloop.config import CampaignConfig
    from aloop.models.committee import Committee
    from aloop.progress import Reporter
    from db.documents import Campaign, Iteration

#: Labels one batch: ``(jobs, on_record)`` where each job is ``(LabelTask, LabelSettings)``
#: and ``on_record`` must be called with every record as soon as it exists.
LabelRunner = Callable[
    [Sequence[tuple[LabelTask, LabelSettings]], Callable[[LabelRecord], None]], None
]


class CampaignError(RuntimeError):
    """The campaign cannot go on as configured (e.g. too few successful labels to train)."""


@dataclass
class Loop:
    """What every stage of one campaign run shares."""

    cfg: CampaignConfig
    campaign: Campaign
    base_dir: Path
    workdir: Path
    reporter: Reporter
    _committees: dict[int, Committee] = field(default_factory=dict, repr=False)
    _labelled: tuple[int, list, list] = field(default=(-1, [], []), repr=False)

    def label_settings(self, system: str) -> LabelSettings:
        """Labelling settings of a system (periodic systems use the GTH options)."""
        return self._settings[system]

    @cached_property
    def _settings(self) -> dict[str, LabelSettings]:
        out = {}
        for s in self.cfg.systems:
            periodic = bool(self.starts[s.name][0].pbc.any())
            out[s.name] = LabelSettings.from_config(self.cfg.dft, periodic=periodic)
        return out

    @cached_property
    def starts(self) -> dict[str, list[Atoms]]:
        """Each system's starting geometries from the campaign file."""
        return {s.name: load_system_structures(s, self.base_dir) for s in self.cfg.systems}

    def labelled_before(self, iteration: int) -> tuple[list[str], list[Atoms]]:
        """Structures labelled before ``iteration`` (ids, Atoms with REF_ keys).

        Fixed once the iteration starts (earlier labelling is done), so train, explore
        and select share one read instead of three.
        """
        if self._labelled[0] != iteration:
            ids, frames = q.labelled_frames(
                self.campaign, self.settings_hashes(), before_iteration=iteration
            )
            self._labelled = (iteration, ids, frames)
        return self._labelled[1], self._labelled[2]

    def settings_hashes(self) -> list[str]:
        """The label settings hashes in use (one per kind of system)."""
        return sorted({s.settings_hash() for s in self._settings.values()})

    def committee(self, iteration: int) -> tuple[Committee, list[Any]]:
        """The committee trained in ``iteration`` (loaded once) and its model ids."""
        from aloop.models.committee import Committee
        from aloop.models.io import load_model, pick_device

        members = q.committee_models(self.campaign, iteration)
        if len(members) != self.cfg.model.committee_size:
            raise CampaignError(
                f"iteration {iteration} has {len(members)} trained members, "
                f"expected {self.cfg.model.committee_size}"
            )
        if iteration not in self._committees:
            device = pick_device(self.cfg.model.device)
            models = [
                load_model(repo.load_model_weights(m["id"]), m["sha256"], device=device)
                for m in members
            ]
            self._committees = {iteration: Committee(models, device=device)}
        return self._committees[iteration], [m["id"] for m in members]


# ----------------------------------------------------------------------------- seeding


def seed_stage(loop: Loop, iteration: Iteration) -> tuple[dict, float]:
    """Iteration 0's exploration: the starting structures plus rattled copies, all to label."""
    cfg = loop.cfg
    records = []
    for system in cfg.systems:
        starts = loop.starts[system.name]
        for atoms, origin, parent in seed_structures(
            starts, cfg.initial.rattled_per_structure, cfg.initial.rattle_stdev, cfg.initial.seed
        ):
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
                    verdict="selected",
                    verdict_reason="seed: iteration 0 labels every starting structure",
                )
            )
    result = repo.insert_structures(loop.campaign, records)
    return {"seeded": len(records), "seeded_new": result.inserted}, 0.0


# ---------------------------------------------------------------------------- training


def train_stage(loop: Loop, iteration: Iteration) -> tuple[dict, float]:
    """Train the committee on every structure labelled before this iteration."""
    from aloop.models.train import train_committee

    k = iteration.index
    cfg = loop.cfg
    ids, frames = loop.labelled_before(k)
    if len(ids) < 2:
        raise CampaignError(
            f"iteration {k}: only {len(ids)} successful label(s) to train on; at least 2 "
            "are needed (see the failed labels with `aloop status`)"
        )
    stored = {m["member"]: m for m in q.committee_models(loop.campaign, k)}
    missing = [m for m in range(cfg.model.committee_size) if m not in stored]
    parents = q.committee_models(loop.campaign, k - 1) if cfg.model.warm_start == "previous" else []
    parent_weights = [repo.load_model_weights(p["id"]) for p in parents]

    def store(member: Any) -> None:
        parent = parents[member.member % len(parents)]["id"] if parents else None
        repo.store_model(
            loop.campaign,
            iteration=k,
            member=member.member,
            seed=member.seed,
            weights=member.weights,
            hyperparameters=member.hyperparameters,
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
        )
        loop.reporter.message(
            f"  member {member.member}: valid force RMSE "
            f"{member.metrics['valid']['forces_rmse']:.4f} eV/Å ({member.wall_time:.0f} s)"
        )

    start = time.perf_counter()
    if missing:
        train_committee(
            frames,
            ids,
            cfg.model,
            loop.workdir / f"it{k}" / "train",
            parents=parent_weights or None,
            split_seed=cfg.select.seed + k,
            members=missing,
            on_member=store,
        )
    compute = time.perf_counter() - start
    models = q.committee_models(loop.campaign, k)
    q.set_iteration_committees(iteration, trained=[m["id"] for m in models])
    metrics = [m["valid"] for m in models]
    return {
        "training": {
            "structures": len(ids),
            "members_trained": len(missing),
            "valid_forces_rmse": float(np.mean([m["forces_rmse"] for m in metrics])),
            "valid_energy_rmse_per_atom": float(
                np.mean([m["energy_rmse_per_atom"] for m in metrics])
            ),
        }
    }, compute


# --------------------------------------------------------------------------- exploring


def _walkers_per_condition(total: int, conditions: int) -> int:
    return max(1, -(-total // conditions))


def explore_stage(loop: Loop, iteration: Iteration) -> tuple[dict, float]:
    """Committee MD from labelled structures; every sampled frame stored with its verdict."""
    k = iteration.index
    cfg = loop.cfg
    removed = q.delete_unlabelled_frames(loop.campaign, k)
    if removed:
        loop.reporter.message(f"  removed {removed} frames of an interrupted exploration")
    committee, model_ids = loop.committee(k)
    q.set_iteration_committees(iteration, explored=model_ids)
    _, labelled = loop.labelled_before(k)
    systems, compute = [], 0.0
    for system in cfg.systems:
        window = cfg.trust_window(system.name)
        md = MDSettings.from_config(cfg.explore, window.hi)
        starts = [a for a in labelled if a.info["system"] == system.name]
        pressures = system.pressures_gpa or cfg.explore.pressures_gpa
        temps = cfg.temperatures(system.name)
        n_cond = len(temps) * max(1, len(pressures) if md.ensemble == "npt" else 1)
        specs = plan_walkers(
            system.name,
            starts,
            temps,
            _walkers_per_condition(cfg.explore.walkers_per_system, n_cond),
            pressures_gpa=pressures if md.ensemble == "npt" else (),
            seed=cfg.explore.seed + 1009 * k,
        )
        start = time.perf_counter()
        results, calls = run_walkers(committee, specs, md)
        compute += time.perf_counter() - start
        frames = [f for r in results for f in r.frames]
        dev = np.array([f.force_dev_max for f in frames], dtype=float)
        lo = window.lo
        if cfg.select.adaptive_lo:
            lo = adaptive_lower(dev, window.hi, window.lo)
        verdicts = classify(dev, lo, window.hi)
        repo.insert_structures(
            loop.campaign,
            frame_records(
                frames,
                list(verdicts),
                k,
                committee=model_ids,
                charge=system.charge,
                multiplicity=system.multiplicity,
            ),
        )
        edges = np.linspace(0.0, md.stop_force_dev, 21)
        st = statistics(verdicts, dev, edges)
        systems.append(
            {
                "name": system.name,
                **st,
                "trust_lo": lo,
                "trust_hi": window.hi,
                "walkers": len(specs),
                "md_steps": int(sum(r.steps_done for r in results)),
                "committee_calls": calls,
                "walker_stops": dict(Counter(r.stop_reason for r in results)),
            }
        )
    totals = {v: sum(s[v] for s in systems) for v in ("sampled", "accurate", "candidate", "failed")}
    return {
        "systems": systems,
        **totals,
        "accurate_ratio": totals["accurate"] / totals["sampled"] if totals["sampled"] else 0.0,
    }, compute


# --------------------------------------------------------------------------- selecting


def select_stage(loop: Loop, iteration: Iteration) -> tuple[dict, float]:
    """Per system: drop duplicates of labelled structures, keep a diverse few candidates."""
    k = iteration.index
    cfg = loop.cfg
    committee, _ = loop.committee(k)
    _, labelled = loop.labelled_before(k)
    per_system, updates = {}, []
    for system in cfg.systems:
        # Everything exploration called a candidate, whatever an earlier select run made
        # of it: the verdicts below are recomputed from scratch.
        ids = q.structure_ids(
            loop.campaign,
            k,
            verdicts=[CANDIDATE, "selected", "duplicate"],
            origins=["md"],
            system=system.name,
        )
        if not ids:
            per_system[system.name] = {"candidates": 0, "selected": 0, "duplicates": 0}
            continue
        info = q.frame_uncertainty(ids)
        atoms = repo.load_atoms(ids)
        known = [a for a in labelled if a.info["system"] == system.name]
        desc = committee.evaluate(atoms + known, descriptors=True).descriptors
        chosen = select(
            desc[: len(ids)],
            [info[i]["hash"] for i in ids],
            np.array([info[i]["force_dev_max"] for i in ids]),
            cfg.select.max_per_system,
            method=cfg.select.diversity,
            dedupe_distance=cfg.select.dedupe_distance,
            known_descriptors=desc[len(ids) :],
            seed=cfg.select.seed + k,
        )
        dupes = 0
        for j, sid in enumerate(ids):
            if j in chosen.selected:
                updates.append((sid, "selected", f"diverse candidate ({cfg.select.diversity})"))
            elif chosen.rejected[j].startswith("duplicate"):
                dupes += 1
                updates.append((sid, "duplicate", chosen.rejected[j]))
            else:
                updates.append((sid, CANDIDATE, chosen.rejected[j]))
        per_system[system.name] = {
            "candidates": len(ids),
            "selected": len(chosen.selected),
            "duplicates": dupes,
        }
    repo.set_verdicts(updates)
    return {
        "selection": per_system,
        "selected": sum(s["selected"] for s in per_system.values()),
        "duplicates": sum(s["duplicates"] for s in per_system.values()),
    }, 0.0


# --------------------------------------------------------------------------- labelling


def label_stage(loop: Loop, iteration: Iteration, run_labels: LabelRunner) -> tuple[dict, float]:
    """Label the iteration's selected structures that have no label at their settings yet."""
    k = iteration.index
    cfg = loop.cfg
    jobs: list[tuple[LabelTask, LabelSettings]] = []
    total = skipped = 0
    outcome_ids: dict[str, list[str]] = {}
    for system in cfg.systems:
        ids = q.structure_ids(loop.campaign, k, verdicts=["selected"], system=system.name)
        settings = loop.label_settings(system.name)
        outcome_ids.setdefault(settings.settings_hash(), []).extend(ids)
        done = repo.labelled_ids(ids, settings.settings_hash())
        todo = [i for i in ids if i not in done]
        total += len(ids)
        skipped += len(done)
        for sid, atoms in zip(todo, repo.load_atoms(todo), strict=True):
            task = LabelTask(sid, atoms, charge=system.charge, multiplicity=system.multiplicity)
            jobs.append((task, settings))
    if skipped:
        loop.reporter.message(f"  {skipped} of {total} already labelled (resumed)")
    progress = {"done": 0, "failed": 0}

    def on_record(rec: LabelRecord) -> None:
        rec.iteration = k
        repo.record_label(loop.campaign, rec)
        progress["done"] += 1
        progress["failed"] += rec.status != "ok"
        loop.reporter.labels(progress["done"], len(jobs), progress["failed"])

    start = time.perf_counter()
    if jobs:
        run_labels(jobs, on_record)
    compute = time.perf_counter() - start
    outcomes: dict[str, dict] = {}
    for settings_hash, ids in outcome_ids.items():
        outcomes.update(q.label_outcomes(ids, settings_hash))
    statuses = Counter(o["status"] for o in outcomes.values())
    reasons = Counter((o["error"] or "")[:80] for o in outcomes.values() if o["status"] != "ok")
    return {
        "to_label": total,
        "labelled": statuses.get("ok", 0),
        "label_failures": statuses.get("failed", 0) + statuses.get("rejected", 0),
        "label_failure_reasons": dict(reasons),
        "unlabelled": total - len(outcomes),
        "dft_wall_s": round(sum(o["wall_time"] for o in outcomes.values()), 3),
    }, compute


# -------------------------------------------------------------------------- statistics


def committee_error(loop: Loop, iteration: Iteration) -> dict:
    """Error of the exploring committee on the frames labelled in this iteration.

    The learning curve of the loop: how wrong the committee was exactly where it was
    sent to learn. Energies per atom (eV/atom), forces in eV/Å, committee mean vs DFT.
    """
    k = iteration.index
    if k == 0:
        return {"n": 0}
    committee, _ = loop.committee(k)
    _, frames = q.labelled_frames(loop.campaign, loop.settings_hashes(), iteration=k)
    if not frames:
        return {"n": 0}
    return {"n": len(frames), **reference_errors(committee, frames)}
