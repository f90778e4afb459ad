"""Test-set errors of every committee a campaign trained, and MD stability of its last.

Reads the campaign's Model documents (weights and the ids they were trained on) from the
database; nothing here changes the campaign. Results are cached by the models' sha256,
so a resumed study evaluates only what is new.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aloop.records import MemberRecord


#: Part of every cached test-error key: raised when the metrics change, so a cached row
#: always has them all.
METRICS_VERSION = 2


def _committee(members: list[MemberRecord], device: str) -> Any:
    from aloop.models.committee import Committee
    from aloop.models.io import load_model
    from db.models import load_model_weights

    return Committee(
        [load_model(load_model_weights(m.id), m.sha256, device=device) for m in members],
        device=device,
    )


def trained_committees(campaign_name: str) -> list[tuple[int, list[MemberRecord], int]]:
    """``(iteration, members, labels they were trained on)`` of each trained committee."""
    from db.campaigns import get_campaign
    from db.documents import Model
    from db.models import committee_models

    campaign = get_campaign(campaign_name)
    if campaign is None:
        return []
    out = []
    for k in sorted({m.iteration for m in Model.objects(campaign=campaign.id).only("iteration")}):
        members = committee_models(campaign.id, k)
        first = Model.objects(id=members[0].id).only("training_set", "validation_set").first()
        out.append((k, members, len(first.training_set) + len(first.validation_set)))
    return out


def cached(path: Path, key: str, compute: Any) -> dict:
    """``compute()`` once per key; results kept in the JSON file at ``path``."""
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key not in cache:
        cache[key] = compute()
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(path)
    return cache[key]


def _rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def error_tails(force_errors: list[np.ndarray], energy_errors_per_atom: np.ndarray) -> dict:
    """What an RMSE hides (round 3's metrics): the 95th percentile and the largest of the
    per-frame force RMSE (eV/Å), and the energy RMSE per atom after the constant shift
    (the mean error) is removed, which a single-composition set cannot pin down and
    which moves no force or MD trajectory."""
    per_frame = np.array([_rmse(e) for e in force_errors])
    e = np.asarray(energy_errors_per_atom, dtype=float)
    return {
        "frame_forces_rmse_p95": float(np.percentile(per_frame, 95)),
        "frame_forces_rmse_max": float(per_frame.max()),
        "energy_rmse_per_atom_shifted": _rmse(e - e.mean()),
    }


def committee_test_errors(committee: Any, frames: list) -> dict:
    """Committee-mean errors and each member's own, from one batched evaluation.

    Also how well the committee knows its own error (the premise of query by committee):
    the rank correlation, over test frames, between the committee's max force deviation
    and the true max force error of its mean, and the median ratio of the two.
    """
    from scipy.stats import spearmanr

    from aloop.records import REF_ENERGY, REF_FORCES

    res = committee.evaluate(frames, per_member=True)
    n_atoms = np.array([len(a) for a in frames])
    ref_e = np.array([a.info[REF_ENERGY] for a in frames])
    ref_f = [a.arrays[REF_FORCES] for a in frames]
    members = range(res.energy_members.shape[1])
    member_f = [
        _rmse(np.concatenate([f[m] for f in res.forces_members]) - np.concatenate(ref_f))
        for m in members
    ]
    member_e = [_rmse((res.energy_members[:, m] - ref_e) / n_atoms) for m in members]
    errors = [f - r for f, r in zip(res.forces, ref_f, strict=True)]
    worst = np.array([np.linalg.norm(e, axis=1).max() for e in errors])
    temperature = np.array([a.info.get("temperature", np.nan) for a in frames])
    by_t = {
        t: np.concatenate([e for e, tt in zip(errors, temperature, strict=True) if tt == t])
        for t in sorted(set(temperature[np.isfinite(temperature)]))
    }
    return {
        "forces_rmse": _rmse(np.concatenate(errors)),
        "energy_rmse_per_atom": _rmse((res.energy - ref_e) / n_atoms),
        "member_forces_rmse": float(np.mean(member_f)),
        "member_energy_rmse_per_atom": float(np.mean(member_e)),
        "forces_rmse_by_temperature": {f"{t:.0f}": _rmse(e) for t, e in by_t.items()},
        "deviation_error_spearman": float(spearmanr(res.force_dev_max, worst).statistic),
        "deviation_over_error_median": float(np.median(res.force_dev_max / worst)),
        **error_tails(errors, (res.energy - ref_e) / n_atoms),
    }


def test_errors(
    campaign_name: str, test_frames: list, testset_sha256: str, cache: Path, device: str
) -> list[dict]:
    """Energy and force errors of each trained committee on the test set.

    ``forces_rmse`` is the committee mean's (what the loop explores with);
    ``member_forces_rmse`` is the mean over members of each one's own RMSE (what a
    single model trained the same way would give).
    """
    rows = []
    for k, members, n_labels in trained_committees(campaign_name):
        key = f"test:v{METRICS_VERSION}:{testset_sha256}:" + ":".join(m.sha256 for m in members)

        def compute(members: list[MemberRecord] = members) -> dict:
            return committee_test_errors(_committee(members, device), test_frames)

        rows.append({"iteration": k, "labels": n_labels, **cached(cache, key, compute)})
    return rows


def final_model(campaign_name: str) -> dict | None:
    """The campaign's final model: member 0 of its last committee, with its weights."""
    from db.models import load_model_weights

    committees = trained_committees(campaign_name)
    if not committees:
        return None
    k, members, n_labels = committees[-1]
    return {
        "campaign": campaign_name,
        "iteration": k,
        "labels": n_labels,
        "sha256": members[0].sha256,
        "weights": load_model_weights(members[0].id),
    }


def stability_key(model: dict, settings: dict, seed: int) -> str:
    return f"stability:{model['sha256']}:{sorted(settings.items())}:{seed}"


def md_stability(model: dict, start: Any, settings: dict, seed: int) -> dict:
    """Fraction of MD trajectories with one model that stay physical (one process).

    Langevin NVT at ``settings['temperature']`` from the starting geometry, all
    trajectories advancing together in one batched model call per step. A trajectory
    fails at the first step with non-finite positions, two atoms closer than half their
    covalent bond length, or the molecule fallen apart (a bond stretched past 2.5x): the
    checks the loop's walkers apply. Uses one torch thread, so two run side by side
    (a 9-atom model call is too small to keep two threads busy).
    """
    import torch

    from aloop.explore.walkers import MDSettings, WalkerSpec, run_walkers
    from aloop.models.committee import Committee
    from aloop.models.io import load_model, pick_device

    torch.set_num_threads(1)
    device = pick_device("auto")
    net = Committee([load_model(model["weights"], model["sha256"], device=device)], device=device)
    rng = np.random.default_rng(seed)
    steps = round(settings["length_ps"] * 1000 / settings["timestep_fs"])
    specs = [
        WalkerSpec("stability", start.copy(), settings["temperature"], seed=int(s), walker=i)
        for i, s in enumerate(rng.integers(2**31, size=settings["trajectories"]))
    ]
    md = MDSettings(
        ensemble="nvt",
        timestep_fs=settings["timestep_fs"],
        steps=steps,
        sample_interval=steps,
        stop_force_dev=np.inf,
    )
    t0 = time.perf_counter()
    results, _ = run_walkers(net, specs, md)
    return {
        "iteration": model["iteration"],
        "labels": model["labels"],
        "trajectories": len(specs),
        "stable": sum(r.stop_reason == "steps" for r in results),
        "steps": steps,
        "steps_done": [r.steps_done for r in results],
        "stop_reasons": [r.stop_reason for r in results],
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def campaign_summary(campaign_name: str) -> dict:
    """What a campaign spent: labels, MD steps, walker stops and stage wall times."""
    from collections import Counter

    from db.campaigns import get_campaign
    from db.documents import Model
    from db.iterations import campaign_iterations

    campaign = get_campaign(campaign_name)
    stats = [it.stats for it in campaign_iterations(campaign.id)]
    last = max(m.iteration for m in Model.objects(campaign=campaign.id).only("iteration"))
    final = list(Model.objects(campaign=campaign.id, iteration=last).only("metrics"))
    systems = [s for it in stats if it.explore for s in it.explore.systems]
    stops: Counter = Counter()
    for system in systems:
        stops.update(system.walker_stops)
    wall = Counter()
    for it in stats:
        for stage, t in it.timings.items():
            wall[stage.value] += t.wall_s
    return {
        "status": campaign.status,
        "iterations": len(stats),
        "labels_ok": sum(it.labelled or 0 for it in stats),
        "label_failures": sum(it.label_failures or 0 for it in stats),
        "md_steps": sum(s.md_steps for s in systems),
        "walker_stops": dict(stops),
        "stage_wall_s": {k: round(v, 1) for k, v in wall.items()},
        # how well the final members fit their own data (a floor for the test error)
        "final_train_forces_rmse": float(
            np.mean([m.metrics["train"]["forces_rmse"] for m in final])
        ),
        "final_valid_forces_rmse": float(
            np.mean([m.metrics["valid"]["forces_rmse"] for m in final])
        ),
        "wall_s": round(sum(it.wall_s or 0.0 for it in stats), 1),
    }
