"""Density against temperature from NPT MD with a committee: the number a molten-salt
campaign is run for.

Every (temperature, walker) runs NPT MD with the committee's mean forces and stress,
batched like exploration (:func:`aloop.explore.walkers.run_walkers`) and stopped by the
same rules: a walker whose committee disagrees beyond the stop threshold, or whose cell
collapses or explodes, has left what the committee was trained on, and its density is
left out and counted, never averaged in. The error bar is the standard error of block
averages: each walker's samples after equilibration are cut into ``blocks`` contiguous
blocks (long enough to decorrelate, for the MD lengths this is run with: check
``block_spread`` against the stated error), and the block means of all the walkers at a
temperature are the samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from ase.units import _amu

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ase import Atoms

    from aloop.explore.walkers import MDSettings, WalkerResult
    from aloop.models.committee import Committee

#: g per amu, and cm³ per Å³: density in g/cm³ is mass (amu) * this / volume (Å³).
_G_CM3_PER_AMU_A3 = _amu * 1e3 / 1e-24


def density_g_cm3(atoms: Atoms) -> float:
    """Mass density of a periodic cell in g/cm³."""
    return float(atoms.get_masses().sum() * _G_CM3_PER_AMU_A3 / atoms.get_volume())


def supercell_repeats(atoms: Atoms, min_width: float) -> tuple[int, int, int]:
    """The fewest repeats along each cell vector that make every width of the cell (the
    distance between opposite faces) at least ``min_width`` Å.

    A density is a bulk property: in a cell narrower than twice the model's cutoff an
    atom sees an image of its own neighbour, and a 9-atom cell's volume swings so far
    (the molten-salt demo's went from 1.68 to 1.17 g/cm³ in 1 ps at 1000 K) that its
    barostat walks the cell out of the window a walker may explore.
    """
    widths = atoms.cell.volume / np.linalg.norm(
        np.cross(np.roll(atoms.cell.array, -1, axis=0), np.roll(atoms.cell.array, -2, axis=0)),
        axis=1,
    )
    n = np.maximum(1, np.ceil(min_width / widths - 1e-9)).astype(int)
    return int(n[0]), int(n[1]), int(n[2])


@dataclass(frozen=True)
class DensityPoint:
    """The committee's density at one temperature and pressure.

    ``density_g_cm3`` is the mean over the block means of the walkers that ran every
    step, ``stderr_g_cm3`` its standard error (None with fewer than two blocks);
    ``walkers`` ran, ``walkers_used`` of them ran every step and were averaged, the
    others' stop reasons are in ``stopped``. ``samples`` are the frames after
    equilibration that went into the mean; ``max_force_dev`` (eV/Å) and
    ``max_stress_dev_gpa`` the committee's largest disagreement on them.
    """

    temperature_k: float
    pressure_gpa: float
    density_g_cm3: float | None
    stderr_g_cm3: float | None
    walkers: int
    walkers_used: int
    blocks: int
    samples: int
    max_force_dev: float | None
    max_stress_dev_gpa: float | None
    stopped: tuple[str, ...] = ()

    def to_doc(self) -> dict:
        out = asdict(self)
        out["stopped"] = list(self.stopped)
        return out


@dataclass(frozen=True)
class DensityRun:
    """One ``aloop density`` run as it is stored with the campaign: which committee, how
    the MD ran (on the campaign's cell repeated ``repeats`` times, ``atoms`` atoms), and
    the points."""

    system: str
    committee: tuple[str, ...]
    steps: int
    equilibration: int
    walkers: int
    blocks: int
    sample_interval: int
    timestep_fs: float
    pressure_gpa: float
    points: tuple[DensityPoint, ...]
    repeats: tuple[int, int, int] = (1, 1, 1)
    atoms: int | None = None
    barostat_time_fs: float | None = None

    #: The ``kind`` of the stored analysis.
    KIND = "density"

    def to_doc(self) -> dict:
        out = asdict(self)
        out["committee"] = list(self.committee)
        out["repeats"] = list(self.repeats)
        out["points"] = [p.to_doc() for p in self.points]
        return {"kind": self.KIND, **out}

    @classmethod
    def from_doc(cls, doc: dict) -> DensityRun:
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        points = tuple(
            DensityPoint(**{**p, "stopped": tuple(p.get("stopped", ()))}) for p in doc["points"]
        )
        repeats = tuple(doc.get("repeats", (1, 1, 1)))
        return cls(
            **{**fields, "committee": tuple(doc["committee"]), "points": points, "repeats": repeats}
        )


def density_points(
    results: Sequence[WalkerResult], equilibration_steps: int, blocks: int = 4
) -> list[DensityPoint]:
    """Group the walkers by (temperature, pressure) and block-average their densities."""
    by_condition: dict[tuple[float, float], list[WalkerResult]] = {}
    for r in results:
        key = (r.spec.temperature, r.spec.pressure_gpa or 0.0)
        by_condition.setdefault(key, []).append(r)
    points = []
    for (temperature, pressure), runs in sorted(by_condition.items()):
        used = [r for r in runs if r.completed]
        means: list[float] = []
        frames = []
        for r in used:
            kept = [f for f in r.frames if f.step > equilibration_steps]
            frames += kept
            series = np.array([density_g_cm3(f.atoms) for f in kept])
            if series.size >= blocks:
                means += [float(b.mean()) for b in np.array_split(series, blocks)]
        dens = float(np.mean(means)) if means else None
        err = float(np.std(means, ddof=1) / np.sqrt(len(means))) if len(means) >= 2 else None
        stress = [f.stress_dev_gpa for f in frames if f.stress_dev_gpa is not None]
        points.append(
            DensityPoint(
                temperature_k=temperature,
                pressure_gpa=pressure,
                density_g_cm3=dens,
                stderr_g_cm3=err,
                walkers=len(runs),
                walkers_used=len(used),
                blocks=len(means),
                samples=len(frames),
                max_force_dev=max((f.force_dev_max for f in frames), default=None),
                max_stress_dev_gpa=max(stress, default=None),
                stopped=tuple(r.stop_reason for r in runs if not r.completed),
            )
        )
    return points


def density_curve(
    committee: Committee,
    starts: Sequence[Atoms],
    temperatures: Sequence[float],
    pressure_gpa: float,
    md: MDSettings,
    walkers_per_temperature: int,
    equilibration_steps: int,
    blocks: int = 4,
    seed: int = 0,
) -> list[DensityPoint]:
    """NPT MD with ``committee`` at each temperature, every walker batched together.

    ``md`` must be an NPT setting; ``starts`` are the cells the walkers start from
    (drawn as exploration draws them). Raises ValueError when the equilibration leaves
    no samples for ``blocks`` blocks.
    """
    from aloop.explore.walkers import plan_walkers, run_walkers

    if md.ensemble != "npt":
        raise ValueError("a density needs NPT MD (explore.ensemble npt)")
    after = (md.steps - equilibration_steps) // md.sample_interval
    if after < blocks:
        raise ValueError(
            f"{md.steps} steps with {equilibration_steps} of equilibration leave {after} "
            f"samples (every {md.sample_interval} steps), fewer than the {blocks} blocks"
        )
    specs = plan_walkers(
        "density", starts, temperatures, walkers_per_temperature, [pressure_gpa], seed=seed
    )
    results, _ = run_walkers(committee, specs, md)
    return density_points(results, equilibration_steps, blocks)


def density_table(points: Sequence[DensityPoint]) -> str:
    """The points as CSV: one row per temperature, densities in g/cm³."""
    rows = [
        "temperature_K,pressure_GPa,density_g_cm3,stderr_g_cm3,walkers,walkers_used,"
        "blocks,samples,max_force_dev_eV_A,max_stress_dev_GPa"
    ]
    for p in points:
        cells = [
            p.temperature_k,
            p.pressure_gpa,
            p.density_g_cm3,
            p.stderr_g_cm3,
            p.walkers,
            p.walkers_used,
            p.blocks,
            p.samples,
            p.max_force_dev,
            p.max_stress_dev_gpa,
        ]
        rows.append(",".join("" if c is None else f"{c:.6g}" for c in cells))
    return "\n".join(rows) + "\n"


def plot_density(points: Sequence[DensityPoint], path: str, title: str) -> None:
    """Density against temperature with its standard error, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [p for p in points if p.density_g_cm3 is not None]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.errorbar(
        [p.temperature_k for p in shown],
        [p.density_g_cm3 for p in shown],
        yerr=[p.stderr_g_cm3 or 0.0 for p in shown],
        fmt="o-",
        capsize=3,
        label="committee NPT MD (± standard error)",
    )
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("density (g/cm³)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
