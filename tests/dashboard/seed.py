"""A seeded database for the dashboard tests and benchmark: campaigns with iterations
whose statistics follow known formulas, so a test knows every number a page must show."""

from __future__ import annotations

import numpy as np
from ase.build import molecule

from aloop.records import CampaignRecord, LabelRecord, StructureRecord
from aloop.stats import (
    CommitteeError,
    ExploreStats,
    LabelStats,
    SeedStats,
    SelectStats,
    SystemSelection,
    SystemStats,
)
from aloop.vocabulary import CampaignStatus, LabelStatus, Origin, StageStatus, Verdict, stages_of
from db import campaigns, iterations, labels
from db.structures import insert_structures

CONFIG_STOP = {"accurate_ratio": 0.95, "patience": 2, "max_iterations": 60}


def expected(k: int) -> dict:
    """The statistics seeded for exploring iteration ``k`` (k >= 1)."""
    sampled = 100 + 10 * k
    ratio = min(0.97, 0.3 + 0.06 * k)
    accurate = round(sampled * ratio)
    failed = 5 if k < 4 else 0
    edges = np.linspace(0, 0.6, 21)
    counts = np.bincount(np.arange(sampled) % 20, minlength=20)
    return {
        "sampled": sampled,
        "accurate": accurate,
        "candidate": sampled - accurate - failed,
        "failed": failed,
        "accurate_ratio": accurate / sampled,
        "selected": 8,
        "labelled": 8 - (k % 2),
        "label_failures": k % 2,
        "label_failure_reasons": {"SCF did not converge": 1} if k % 2 else {},
        "dft_wall_s": 12.5 + k,
        "committee_error": {"n": 8, "forces_rmse": 0.5 / (k + 1), "energy_rmse_per_atom": 0.01},
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
            }
        ],
    }


def iteration_stats(k: int) -> list:
    """The typed statistics the stages of iteration ``k`` would store, as ``expected``."""
    if k == 0:
        return [
            SeedStats(seeded=SEED_LABELS, selected=SEED_LABELS),
            LabelStats(
                to_label=SEED_LABELS, labelled=SEED_LABELS, label_failures=0, dft_wall_s=4.0
            ),
        ]
    want = expected(k)
    return [
        ExploreStats.of([SystemStats.model_validate(s) for s in want["systems"]]),
        SelectStats.of(
            {
                "water": SystemSelection(
                    candidates=want["candidate"], selected=want["selected"], duplicates=0
                )
            }
        ),
        LabelStats(
            to_label=want["selected"],
            labelled=want["labelled"],
            label_failures=want["label_failures"],
            label_failure_reasons=want["label_failure_reasons"],
            dft_wall_s=want["dft_wall_s"],
        ),
    ]


SEED_LABELS = 13


def add_iteration(
    campaign: CampaignRecord, k: int, structures: int = 8, done: bool = True
) -> list[str]:
    """Iteration ``k`` with its stats, ``structures`` selected frames and their labels."""
    it = iterations.get_or_create_iteration(campaign.id, k)
    for stats in iteration_stats(k):
        iterations.merge_stats(it.id, stats)
    if k:
        err = CommitteeError.model_validate(expected(k)["committee_error"])
        iterations.merge_stats(it.id, {"committee_error": err.to_doc()})
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
    ids = insert_structures(campaign.id, recs).ids
    if k == 0:
        return ids
    # As the stats say: 8 labelled, the first one failed on odd iterations.
    for j, sid in enumerate(ids[:8]):
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


def seed_campaigns(names=("water-a", "water-b", "water-c"), iterations: int = 12) -> dict:
    """Campaigns ``names`` with iterations 0..``iterations``; returns {name: campaign}
    (the records as created: re-read them for their status)."""
    out = {}
    for j, name in enumerate(names):
        config = {"campaign": name, "stop": CONFIG_STOP}
        campaign, _ = campaigns.get_or_create_campaign(name, config, f"{j}" * 64)
        n = iterations - j  # campaigns of different lengths
        for k in range(n + 1):
            add_iteration(campaign, k)
        if j == 0:
            campaigns.set_campaign_status(campaign.id, CampaignStatus.RUNNING, "")
        else:
            campaigns.set_campaign_status(
                campaign.id, CampaignStatus.STOPPED, "iteration cap reached"
            )
        out[name] = campaign
    return out


def dataset_size(n: int) -> int:
    """Labelled structures after iterations 0..n."""
    return SEED_LABELS + sum(expected(k)["labelled"] for k in range(1, n + 1))
