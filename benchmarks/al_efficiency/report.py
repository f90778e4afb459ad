"""Learning curves, the label count to reach the target, the ratio, table and plot."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

ARM_TITLES = {
    "al": "A: aloop active learning (fps)",
    "al_weighted": "A2: uncertainty-weighted fps",
    "al_kmeans": "A3: k-means representatives",
    "random": "B: pool-based random",
}
ARM_KEYS = {"al": "A", "al_weighted": "A2", "al_kmeans": "A3", "random": "B"}


def curves(rows: dict[str, dict[int, list[dict]]]) -> dict[str, list[dict]]:
    """Per arm, per iteration: labels and errors as mean and std over seeds."""
    out = {}
    for arm, by_seed in rows.items():
        by_iteration: dict[int, list[dict]] = defaultdict(list)
        for seed_rows in by_seed.values():
            for r in seed_rows:
                by_iteration[r["iteration"]].append(r)
        points = []
        for k in sorted(by_iteration):
            rs = by_iteration[k]
            point = {"iteration": k, "seeds": len(rs)}
            flat = [
                {
                    **r,
                    **{
                        f"forces_rmse_{t}K": v
                        for t, v in r.get("forces_rmse_by_temperature", {}).items()
                    },
                }
                for r in rs
            ]
            keys = [k for k in flat[0] if isinstance(flat[0][k], int | float) and k != "iteration"]
            for key in keys:
                v = np.array([r[key] for r in flat], dtype=float)
                point[key] = float(v.mean())
                point[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            points.append(point)
        out[arm] = points
    return out


def labels_to_reach(labels: list[float], errors: list[float], target: float) -> float | None:
    """Label count where the curve first reaches ``target`` (linear between points)."""
    for i, (n, e) in enumerate(zip(labels, errors, strict=True)):
        if e <= target:
            if i == 0:
                return float(n)
            n0, e0 = labels[i - 1], errors[i - 1]
            return float(n0 + (e0 - target) / (e0 - e) * (n - n0))
    return None


def target_summary(curve: dict[str, list[dict]], rows: dict, target: float) -> dict:
    """Labels each arm needs for the target force RMSE (mean curve and per seed), ratio."""
    out: dict = {"target_forces_rmse": target, "arms": {}}
    for arm, points in curve.items():
        mean_n = labels_to_reach(
            [p["labels"] for p in points], [p["forces_rmse"] for p in points], target
        )
        per_seed = {
            str(seed): labels_to_reach(
                [r["labels"] for r in rs], [r["forces_rmse"] for r in rs], target
            )
            for seed, rs in rows[arm].items()
        }
        out["arms"][arm] = {"labels": mean_n, "per_seed": per_seed}
    b = out["arms"].get("random", {}).get("labels")
    for arm, found in out["arms"].items():
        if arm != "random":
            a = found["labels"]
            found["ratio_to_random"] = a / b if a is not None and b else None
    return out


def against_random(rows: dict[str, dict[int, list[dict]]]) -> tuple[dict, float, dict]:
    """Mean curves, the target (arm B's final mean force RMSE) and each arm's labels."""
    curve = curves(rows)
    target = curve["random"][-1]["forces_rmse"]  # unrounded: B reaches its own final value
    return curve, target, target_summary(curve, rows, target)


def target_lines(summary: dict, where: str = "") -> list[str]:
    """One console line per arm: labels to reach the target and the ratio to B's."""
    out = []
    for arm, found in summary["arms"].items():
        ratio = found.get("ratio_to_random")
        out.append(
            f"  {where}{ARM_TITLES.get(arm, arm)}: {found['labels']} labels"
            + (f", {ratio:.2f} of B's" if ratio is not None else "")
        )
    return out


def calibration_table(curve: dict[str, list[dict]]) -> str:
    """Per arm and iteration: force RMSE per test temperature and committee calibration."""
    first = next(iter(curve.values()))[0]
    temps = sorted(
        (k for k in first if k.startswith("forces_rmse_") and k.endswith("K")),
        key=lambda k: float(k[len("forces_rmse_") : -1]),
    )
    head = " | ".join(f"force RMSE {k[len('forces_rmse_') :]}" for k in temps)
    lines = [
        f"| arm | iteration | labels | {head} | Spearman(deviation, error) "
        "| median deviation / error |",
        "|---|---:|---:|" + "---:|" * (len(temps) + 2),
    ]
    for arm, points in curve.items():
        for p in points:
            cells = [f"{p[k]:.3f}" for k in temps]
            lines.append(
                f"| {ARM_KEYS.get(arm, arm)} | {p['iteration']} | {p['labels']:.0f} | "
                + " | ".join(cells)
                + f" | {p.get('deviation_error_spearman', float('nan')):.2f} "
                f"| {p.get('deviation_over_error_median', float('nan')):.2f} |"
            )
    return "\n".join(lines)


def markdown_table(curve: dict[str, list[dict]]) -> str:
    """One row per iteration: labels and test errors of every arm (mean +- std)."""
    arms = list(curve)
    keys = [ARM_KEYS.get(a, a) for a in arms]
    lines = [
        "| iteration | labels | "
        + " | ".join(f"{k}: force RMSE (eV/Å)" for k in keys)
        + " | "
        + " | ".join(f"{k}: energy RMSE (meV/atom)" for k in keys)
        + " |",
        "|---:|---:|" + "---:|" * (2 * len(arms)),
    ]
    by_arm = {a: {p["iteration"]: p for p in curve[a]} for a in arms}
    iterations = sorted({k for a in arms for k in by_arm[a]})

    def cell(p: dict | None, key: str, scale: float = 1.0, digits: int = 3) -> str:
        if p is None:
            return "-"
        return f"{p[key] * scale:.{digits}f} ± {p[key + '_std'] * scale:.{digits}f}"

    for k in iterations:
        points = [by_arm[a].get(k) for a in arms]
        labels = sorted({f"{p['labels']:.0f}" for p in points if p})
        forces = [cell(p, "forces_rmse") for p in points]
        energies = [cell(p, "energy_rmse_per_atom", 1000, 1) for p in points]
        lines.append(f"| {k} | {' / '.join(labels)} | " + " | ".join(forces + energies) + " |")
    return "\n".join(lines)


def plot(
    curve: dict[str, list[dict]],
    target: float | None,
    path: str,
    title: str = "Ethanol, HF/STO-3G: committee mean on the held-out MD test set",
) -> None:
    """Force and energy RMSE vs DFT labels, mean and one std band per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for arm, points in curve.items():
        n = np.array([p["labels"] for p in points])
        for ax, key, scale in (
            (axes[0], "forces_rmse", 1.0),
            (axes[1], "energy_rmse_per_atom", 1000.0),
        ):
            m = np.array([p[key] for p in points]) * scale
            s = np.array([p[f"{key}_std"] for p in points]) * scale
            ax.plot(n, m, "o-", label=ARM_TITLES.get(arm, arm))
            # on a log axis a band below zero would fill to the bottom of the plot
            ax.fill_between(n, np.maximum(m - s, 0.2 * m), m + s, alpha=0.25)
    if target is not None:
        axes[0].axhline(target, color="grey", ls="--", lw=1, label="target")
    axes[0].set_ylabel("test force RMSE (eV/Å)")
    axes[1].set_ylabel("test energy RMSE (meV/atom)")
    for ax in axes:
        ax.set_xlabel("DFT labels in the training set")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _labels(n: float | None, curve_points: list[dict]) -> str:
    if n is not None:
        return f"{n:.1f}"
    last = curve_points[-1]
    return f"not reached ({last['forces_rmse']:.3f} at {last['labels']:.0f})"


def target_table(summary: dict, curve: dict[str, list[dict]]) -> str:
    """Labels each arm needs for the target: mean curve, per seed, ratio to B."""
    lines = [
        "| arm | labels to reach the target (mean curve) | per seed | ratio to B |",
        "|---|---:|---|---:|",
    ]
    for arm, found in summary["arms"].items():
        seeds = ", ".join(
            "not reached" if n is None else f"{n:.1f}" for n in found["per_seed"].values()
        )
        ratio = found.get("ratio_to_random")
        cell = "1" if arm == "random" else ("> 1" if ratio is None else f"**{ratio:.2f}**")
        lines.append(
            f"| {ARM_TITLES.get(arm, arm)} | {_labels(found['labels'], curve[arm])} "
            f"| {seeds} | {cell} |"
        )
    return "\n".join(lines)


def stability_table(stability: dict) -> str:
    """Stable trajectories of each arm's final models, in all and per seed."""
    lines = [
        "| arm | stable trajectories | per seed | final model trained on |",
        "|---|---:|---|---:|",
    ]
    for arm, by_seed in stability.items():
        if arm == "settings":
            continue
        runs = list(by_seed.values())
        stable = sum(r["stable"] for r in runs)
        total = sum(r["trajectories"] for r in runs)
        per_seed = ", ".join(f"{r['stable']}/{r['trajectories']}" for r in runs)
        labels = sorted({r["labels"] for r in runs})
        lines.append(
            f"| {ARM_TITLES.get(arm, arm)} | {stable}/{total} ({100 * stable / total:.0f} %) "
            f"| {per_seed} | {', '.join(map(str, labels))} labels |"
        )
    return "\n".join(lines)


def campaigns_table(spent: dict[str, dict]) -> str:
    """MD steps, walker stops and how well the final members fit their own data."""
    lines = [
        "| arm | MD steps per campaign (mean) | walker stops, all seeds "
        "| final members' train / valid force RMSE (eV/Å) | wall time per campaign |",
        "|---|---:|---|---|---:|",
    ]
    for arm, by_seed in spent.items():
        runs = list(by_seed.values())
        stops: dict[str, int] = defaultdict(int)
        for r in runs:
            for reason, n in r["walker_stops"].items():
                stops[reason] += n
        stop_text = ", ".join(f"{k} {v}" for k, v in sorted(stops.items()))
        train = np.mean([r["final_train_forces_rmse"] for r in runs])
        valid = np.mean([r["final_valid_forces_rmse"] for r in runs])
        md = np.mean([r["md_steps"] for r in runs])
        wall = np.mean([r["wall_s"] for r in runs]) / 60
        lines.append(
            f"| {ARM_TITLES.get(arm, arm)} | {md:,.0f} | {stop_text} "
            f"| {train:.3f} / {valid:.3f} | {wall:.1f} min |"
        )
    return "\n".join(lines)
