"""A seeded database for the dashboard tests and benchmark: campaigns with iterations
whose statistics follow known formulas, so a test knows every number a page must show.

Iterations carry the hold-out error, calibration points, walker-time ratios and hold-out
label counts, unless ``legacy``: then they are stored as campaigns were before those
fields existed (``water-c``). ``water-b`` ended with a final iteration (the production
committee) after its last exploring one."""

from __future__ import annotations

import numpy as np
from ase.build import molecule

from aloop.records import CampaignRecord, LabelRecord, StructureRecord
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
)
from aloop.vocabulary import (
    FINAL_STAGES,
    CampaignStatus,
    LabelStatus,
    Origin,
    Stage,
    StageStatus,
    Verdict,
    stages_of,
)
from db import campaigns, iterations, labels
from db.structures import insert_structures

CONFIG_STOP = {
    "accurate_ratio": 0.95,
    "patience": 2,
    "max_iterations": 60,
    "force_error_target": 0.02,
    "holdout_min_frames": 10,
}
#: Hold-out frames drawn and labelled per exploring iteration (all labelled).
HOLDOUT_PER_ITERATION = 2
#: Campaigns stored before hold-outs, calibration and walker-time ratios existed.
LEGACY = ("water-c",)
#: The final iteration's statistics (the production committee), seeded in ``water-b``.
FINAL = FinalStats(
    final=TrainingStats(
        structures=120, members_trained=4, valid_forces_rmse=0.021, valid_energy_rmse_per_atom=0.001
    ),
    final_holdout=HoldoutError(
        n=22, n_new=0, energy_rmse_per_atom=0.0008, forces_rmse=0.0153, forces_max_p95=0.0521
    ),
)


def holdout_error(k: int) -> dict:
    """The hold-out error seeded for exploring iteration ``k``: 2 frames a iteration."""
    rmse = round(0.3 / (k + 1) + 0.01, 6)
    return {
        "n": HOLDOUT_PER_ITERATION * k,
        "n_new": HOLDOUT_PER_ITERATION,
        "energy_rmse_per_atom": 0.002,
        "forces_rmse": rmse,
        "forces_max_p95": round(3 * rmse, 6),
    }


def calibration(k: int) -> dict:
    """The calibration seeded for exploring iteration ``k``: 10 + k (deviation, error)."""
    scale = round(1.0 + 0.05 * k, 4)
    n = 10 + k
    devs = [0.02 * (i + 1) for i in range(n)]
    return {
        "n": n,
        "scale": scale,
        "scale_90": round(scale * 1.5, 4),
        "spearman": round(0.6 + 0.02 * k, 4),
        "coverage_90": None if k == 1 else round(0.8 + 0.01 * k, 4),
        "points": [[d, scale * d * (0.8 + 0.04 * i)] for i, d in enumerate(devs)],
    }


def expected(k: int, legacy: bool = False) -> dict:
    """The statistics seeded for exploring iteration ``k`` (k >= 1)."""
    sampled = 100 + 10 * k
    ratio = min(0.97, 0.3 + 0.06 * k)
    accurate = round(sampled * ratio)
    failed = 5 if k < 4 else 0
    edges = np.linspace(0, 0.6, 21)
    counts = np.bincount(np.arange(sampled) % 20, minlength=20)
    held = 0 if legacy else HOLDOUT_PER_ITERATION
    # A walker stopped early in the first iterations: its planned time counts as not
    # accurate, so the walker-time ratio is below the frame ratio.
    time_ratio = None if legacy else round(accurate / sampled - (0.05 if k < 6 else 0.0), 6)
    new = {
        "fixed_lo": 0.05,
        "time_ratio": time_ratio,
        "walkers_completed": 3 if k < 6 else 4,
        "calibration_scale": 1.0,
    }
    return {
        "sampled": sampled,
        "accurate": accurate,
        "candidate": sampled - accurate - failed,
        "failed": failed,
        "accurate_ratio": accurate / sampled,
        "time_ratio": time_ratio,
        "selected": 8,
        "holdout": held,
        "labelled": 8 - (k % 2) + held,
        "label_failures": k % 2,
        "label_failure_reasons": {"SCF did not converge": 1} if k % 2 else {},
        "dft_wall_s": 12.5 + k,
        "committee_error": {"n": 8, "forces_rmse": 0.5 / (k + 1), "energy_rmse_per_atom": 0.01},
        "holdout_error": None if legacy else holdout_error(k),
        "calibration": None if legacy else calibration(k),
        "systems": [
            {
                "name": "water",
                "sampled": sampled,
                "accurate": accurate,
                "candidate": sampled - accurate - failed,
                "failed": failed,
                "accurate_ratio": accurate / sampled,
                "candidate_ratio": (sampled - accurate - failed) / sampled,
                "failed_ratio": failed / sampled,
                "trust_lo": 0.05,
                "trust_hi": 0.3,
                "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
                "walkers": 4,
                "md_steps": 400 + k,
                "committee_calls": sampled,
                "walker_stops": {"steps": 4},
                **({} if legacy else new),
            }
        ],
    }


def iteration_stats(k: int, legacy: bool = False) -> list:
    """The typed statistics the stages of iteration ``k`` would store, as ``expected``."""
    if k == 0:
        return [
            SeedStats(seeded=SEED_LABELS, selected=SEED_LABELS),
            LabelStats(
                to_label=SEED_LABELS, labelled=SEED_LABELS, label_failures=0, dft_wall_s=4.0
            ),
        ]
    want = expected(k, legacy)
    held = want["holdout"]
    return [
        ExploreStats.of([SystemStats.model_validate(s) for s in want["systems"]]),
        SelectStats.of(
            {
                "water": SystemSelection(
                    candidates=want["candidate"],
                    selected=want["selected"],
                    duplicates=0,
                    holdout=held,
                )
            }
        ),
        LabelStats(
            to_label=want["selected"] + held,
            labelled=want["labelled"],
            holdout_to_label=held,
            holdout_labelled=held,
            label_failures=want["label_failures"],
            label_failure_reasons=want["label_failure_reasons"],
            dft_wall_s=want["dft_wall_s"],
        ),
    ]


SEED_LABELS = 13


def add_iteration(
    campaign: CampaignRecord,
    k: int,
    structures: int = 8,
    done: bool = True,
    legacy: bool = False,
) -> list[str]:
    """Iteration ``k`` with its stats, ``structures`` selected frames and their labels
    (and, unless ``legacy``, its labelled hold-out frames)."""
    it = iterations.get_or_create_iteration(campaign.id, k)
    for stats in iteration_stats(k, legacy):
        iterations.merge_stats(it.id, stats)
    if k:
        want = expected(k, legacy)
        err = CommitteeError.model_validate(want["committee_error"])
        iterations.merge_stats(it.id, {"committee_error": err.to_doc()})
        if not legacy:
            held = HoldoutError.model_validate(want["holdout_error"])
            cal = Calibration.model_validate(want["calibration"])
            iterations.merge_stats(
                it.id, {"holdout_error": held.to_doc(), "calibration": cal.to_doc()}
            )
    for stage in stages_of(k):
        iterations.set_stage(it, stage, StageStatus.RUNNING)
        if done:
            iterations.set_stage(it, stage, StageStatus.DONE)
    rng = np.random.default_rng(1000 + k)
    recs = []
    for i in range(structures):
        a = molecule("H2O")
        a.positions += rng.normal(scale=0.05, size=(3, 3))
        recs.append(
            StructureRecord.from_atoms(
                a,
                "water",
                Origin.MD if k else Origin.RATTLED,
                iteration=k,
                lineage={"walker": i, "temperature": 300.0, "md_step": 10 * (i + 1)},
                uncertainty={"force_dev_max": 0.1 + 0.01 * i},
                verdict=Verdict.SELECTED,
                verdict_reason="diverse candidate (fps)",
            )
        )
    held = 0 if legacy or k == 0 else HOLDOUT_PER_ITERATION
    for i in range(held):
        a = molecule("H2O")
        a.positions += rng.normal(scale=0.05, size=(3, 3))
        recs.append(
            StructureRecord.from_atoms(
                a,
                "water",
                Origin.MD,
                iteration=k,
                lineage={"walker": i, "temperature": 300.0, "md_step": 15 * (i + 1)},
                uncertainty={"force_dev_max": 0.02 + 0.01 * i},
                verdict=Verdict.HOLDOUT,
                verdict_reason="random hold-out",
            )
        )
    ids = insert_structures(campaign.id, recs).ids
    if k == 0:
        return ids
    # As the stats say: 8 labelled, the first one failed on odd iterations; the hold-out
    # frames (the last ones) all labelled.
    for j, sid in enumerate(ids[:8] + ids[len(ids) - held :]):
        failed = j == 0 and k % 2 == 1
        labels.record_label(
            campaign.id,
            LabelRecord(
                structure_id=sid,
                settings_hash="h" * 64,
                status=LabelStatus.FAILED if failed else LabelStatus.OK,
                error=f"SCF did not converge (iteration {k})" if failed else None,
                energy=None if failed else -2080.0 - 0.01 * j,
                forces=None if failed else np.zeros((3, 3)),
                iteration=k,
            ),
        )
    return ids


def add_final(campaign: CampaignRecord, index: int, done: bool = True) -> None:
    """The final iteration ``index`` (one past the last exploring one) with ``FINAL``."""
    it = iterations.get_or_create_iteration(campaign.id, index, FINAL_STAGES)
    iterations.set_stage(it, Stage.FINAL, StageStatus.RUNNING)
    if done:
        iterations.merge_stats(it.id, FINAL)
        iterations.set_stage(it, Stage.FINAL, StageStatus.DONE)


def seed_campaigns(names=("water-a", "water-b", "water-c"), iterations: int = 12) -> dict:
    """Campaigns ``names`` with iterations 0..``iterations`` (one fewer for each next
    name); the second ends with a final iteration, those in ``LEGACY`` are stored as
    before hold-outs existed. Returns {name: campaign} (the records as created: re-read
    them for their status)."""
    out = {}
    for j, name in enumerate(names):
        config = {"campaign": name, "stop": CONFIG_STOP}
        campaign, _ = campaigns.get_or_create_campaign(name, config, f"{j}" * 64)
        n = iterations - j  # campaigns of different lengths
        for k in range(n + 1):
            add_iteration(campaign, k, legacy=name in LEGACY)
        if j == 0:
            campaigns.set_campaign_status(campaign.id, CampaignStatus.RUNNING, "")
        elif j == 1:
            add_final(campaign, n + 1)
            campaigns.set_campaign_status(
                campaign.id, CampaignStatus.CONVERGED, "hold-out force RMSE below 0.02 eV/Å"
            )
        else:
            campaigns.set_campaign_status(
                campaign.id, CampaignStatus.STOPPED, "iteration cap reached"
            )
        out[name] = campaign
    return out


def dataset_size(n: int, legacy: bool = False) -> int:
    """Labelled structures (hold-out included) after iterations 0..n."""
    return SEED_LABELS + sum(expected(k, legacy)["labelled"] for k in range(1, n + 1))
