"""Committee-driven MD walkers that advance together, one batched evaluation per step.

Each walker runs an unmodified ASE integrator (Langevin NVT, velocity-Verlet NVE, or
isotropic MTK NPT for cells) in its own thread. Its calculator does not compute: it
hands the geometry to a shared :class:`~aloop.explore.lockstep.LockstepBatcher` and
waits. When every live walker has asked, the batcher evaluates all of them in one
:meth:`Committee.evaluate` call and wakes them. So ASE's integrator semantics stay
exactly ASE's, and each MD step costs one batched committee call for all walkers
instead of one call per walker. (torch-sim would batch the integrator too, but it is
another dependency with its own integrators; the committee call is where the time goes,
and this keeps ASE's.)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import units

from aloop.config import ExploreConfig, TrustWindow, config_field, from_section
from aloop.explore.bias import UncertaintyBias
from aloop.explore.lockstep import LockstepBatcher, WalkerCalculator
from aloop.structures import close_contact, pair_distances
from aloop.vocabulary import Origin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ase import Atoms

    from aloop.models.committee import Committee

#: The campaign schema's ``explore`` section at its defaults: the one place they are
#: defined.
_EXPLORE = ExploreConfig()


@dataclass
class WalkerSpec:
    """One walker: where it starts and under which conditions it runs."""

    system: str
    atoms: Atoms
    temperature: float
    pressure_gpa: float | None = None
    seed: int = 0
    walker: int = 0


@dataclass
class MDSettings:
    """Integrator and stop settings shared by the walkers of one exploration.

    Most are keys of the campaign's ``explore`` section, with the schema's defaults
    (:class:`aloop.config.ExploreConfig`); the stop threshold is a multiple of a trust
    window's hi (by default the schema's); the barostat and thermostat times are not in
    the schema and are defined here.
    """

    ensemble: str = config_field(_EXPLORE, "ensemble")
    timestep_fs: float = config_field(_EXPLORE, "timestep_fs")
    friction_per_fs: float = config_field(_EXPLORE, "friction_per_fs")
    steps: int = config_field(_EXPLORE, "steps")
    sample_interval: int = config_field(_EXPLORE, "sample_interval")
    stop_force_dev: float = _EXPLORE.stop.force_dev_factor * TrustWindow().hi
    #: GPa: a periodic walker whose committee stress deviation reaches it stops too
    #: (None: the trust window does not read the stress).
    stop_stress_dev_gpa: float | None = None
    min_distance_factor: float = config_field(_EXPLORE, "stop.min_distance_factor")
    max_bond_stretch: float = config_field(_EXPLORE, "stop.max_bond_stretch")
    max_volume_ratio: float = config_field(_EXPLORE, "stop.max_volume_ratio")
    barostat_time_fs: float = config_field(_EXPLORE, "barostat_time_fs")
    thermostat_time_fs: float = 100.0
    #: Uncertainty-driven dynamics (:mod:`aloop.explore.bias`); None: plain MD.
    bias: UncertaintyBias | None = None

    @classmethod
    def from_config(
        cls, explore: ExploreConfig, trust_hi: float, stress_hi_gpa: float | None = None
    ) -> MDSettings:
        """Settings for one system: the stop thresholds are multiples of its trust his
        (no stress stop without a stress hi)."""
        factor = explore.stop.force_dev_factor
        bias = explore.uncertainty_bias
        return from_section(
            cls,
            explore,
            stop_force_dev=factor * trust_hi,
            stop_stress_dev_gpa=None if stress_hi_gpa is None else factor * stress_hi_gpa,
            bias=None if bias is None else UncertaintyBias(bias.strength_ev, bias.width_ev),
        )


@dataclass
class Frame:
    """A sampled MD frame with its lineage and committee uncertainty (plain data)."""

    system: str
    walker: int
    temperature: float
    pressure_gpa: float | None
    step: int
    atoms: Atoms
    force_dev_max: float
    force_dev_mean: float
    energy_dev: float
    #: The step before the walker stopped on uncertainty (kept if not sampled anyway).
    before_stop: bool = False
    #: The committee's stress deviation (GPa); None where no stress was computed.
    stress_dev_gpa: float | None = None


#: A walker's stop reason when it ran every step.
COMPLETED = "steps"


@dataclass
class WalkerResult:
    """What one walker did: its frames, how far it got and why it stopped."""

    spec: WalkerSpec
    frames: list[Frame] = field(default_factory=list)
    steps_done: int = 0
    stop_reason: str = COMPLETED
    temperatures: list[float] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        """Whether the walker ran every planned step."""
        return self.stop_reason == COMPLETED


def _make_dynamics(atoms: Atoms, spec: WalkerSpec, md: MDSettings) -> Any:
    dt = md.timestep_fs * units.fs
    rng = np.random.default_rng(spec.seed)
    if md.ensemble == "nvt":
        from ase.md.langevin import Langevin

        # fixcm=True biases the temperature of small molecules (ASE >= 3.28 warns; we
        # measured 1,080 K for a 300 K water): the centre of mass is held by FixCom instead.
        return Langevin(
            atoms,
            dt,
            temperature_K=spec.temperature,
            fixcm=False,
            friction=md.friction_per_fs / units.fs,
            rng=rng,
        )
    if md.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, dt)
    if md.ensemble == "npt":
        if not atoms.pbc.all():
            raise ValueError(f"system {spec.system}: NPT needs a periodic cell")
        from ase.md import IsotropicMTKNPT

        return IsotropicMTKNPT(
            atoms,
            dt,
            temperature_K=spec.temperature,
            pressure_au=(spec.pressure_gpa or 0.0) * units.GPa,
            tdamp=md.thermostat_time_fs * units.fs,
            pdamp=md.barostat_time_fs * units.fs,
        )
    raise ValueError(f"unknown ensemble {md.ensemble!r}")


#: A periodic walker's stop reasons when its cell leaves the volume window.
CELL_COLLAPSED = "cell collapsed"
CELL_EXPLODED = "cell exploded"
#: A walker's stop reason when the committee's force or stress deviation passed its limit.
UNCERTAINTY = "uncertainty"


def stop_reason(
    atoms: Atoms,
    force_dev_max: float,
    md: MDSettings,
    start_volume: float | None = None,
    stress_dev_gpa: float | None = None,
) -> str | None:
    """Why a walker must stop at this geometry, or None to go on.

    ``start_volume`` (Å³, periodic walkers) is the cell volume the walker started from:
    a volume beyond ``md.max_volume_ratio`` times it, or below it divided by that, is a
    cell that collapsed or exploded. ``stress_dev_gpa`` (periodic walkers) stops the
    walker on uncertainty like the force deviation: a barostat driven by a stress the
    committee disagrees on moves the cell where no member was trained.
    """
    if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        return "non-finite positions"
    if start_volume is not None:
        ratio = atoms.get_volume() / start_volume
        if ratio > md.max_volume_ratio:
            return CELL_EXPLODED
        if ratio < 1 / md.max_volume_ratio:
            return CELL_COLLAPSED
    if force_dev_max >= md.stop_force_dev:
        return UNCERTAINTY
    stress_limit = md.stop_stress_dev_gpa
    if stress_dev_gpa is not None and stress_limit is not None and stress_dev_gpa >= stress_limit:
        return UNCERTAINTY
    if len(atoms) < 2:
        return None
    dist, bond = pair_distances(atoms)
    if close_contact(dist, bond, md.min_distance_factor) is not None:
        return "too close"
    if not atoms.pbc.any() and _fragments(dist, md.max_bond_stretch * bond) > 1:
        return "fragmented"
    return None


def _fragments(dist: np.ndarray, cutoff: np.ndarray) -> int:
    from scipy.sparse.csgraph import connected_components

    n, _ = connected_components(dist < cutoff, directed=False)
    return int(n)


def _run_walker(
    wid: int, spec: WalkerSpec, md: MDSettings, batcher: LockstepBatcher, out: WalkerResult
) -> None:
    atoms = spec.atoms.copy()
    calc = WalkerCalculator(batcher, wid)
    atoms.calc = calc
    try:
        _advance(atoms, calc, spec, md, out)
    except Exception as exc:  # this walker is lost; the others go on, the reason is kept
        out.stop_reason = f"error: {type(exc).__name__}: {exc}"[:300]
    finally:
        batcher.leave(wid)


def _advance(
    atoms: Atoms, calc: WalkerCalculator, spec: WalkerSpec, md: MDSettings, out: WalkerResult
) -> None:
    from ase.constraints import FixCom
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    if md.ensemble != "nve" or not atoms.get_momenta().any():
        MaxwellBoltzmannDistribution(
            atoms, temperature_K=spec.temperature, rng=np.random.default_rng(spec.seed)
        )
        Stationary(atoms)
    if md.ensemble in ("nvt", "nve"):
        atoms.set_constraint(FixCom())
    dyn = _make_dynamics(atoms, spec, md)
    atoms.get_forces()  # every walker's first batched call; the integrator reuses it
    start_volume = atoms.get_volume() if atoms.pbc.all() else None
    reason = _stop(atoms, calc.last, md, start_volume)
    if reason is not None:  # started in a bad place: no step is taken
        out.stop_reason = reason
        return
    previous: Frame | None = None  # the last step's frame, while it stayed in range
    for step in range(1, md.steps + 1):
        dyn.run(1)
        out.steps_done = step
        out.temperatures.append(float(atoms.get_temperature()))
        last = calc.last
        reason = _stop(atoms, last, md, start_volume)
        if reason is not None:
            out.stop_reason = reason  # the frame past the limit is not sampled, but
            # the last one before it is: where the committee was about to lose its way
            # is what it most needs to learn (kept only if not sampled already).
            if reason == UNCERTAINTY:
                if previous is not None:
                    out.frames.append(previous)
                if out.frames and out.frames[-1].step == step - 1:
                    # the step before (kept now, or sampled on schedule) is flagged either way
                    out.frames[-1].before_stop = True
            return
        frame = _frame(atoms, spec, step, last)
        if step % md.sample_interval == 0:
            out.frames.append(frame)
            previous = None
        else:
            previous = frame


def _stop(atoms: Atoms, last: dict, md: MDSettings, start_volume: float | None) -> str | None:
    """:func:`stop_reason` on the committee's last evaluation of this walker."""
    return stop_reason(atoms, last["force_dev_max"], md, start_volume, last.get("stress_dev_gpa"))


def _frame(atoms: Atoms, spec: WalkerSpec, step: int, last: dict) -> Frame:
    """The walker's current state as a sampled frame (a detached copy)."""
    frame_atoms = atoms.copy()
    frame_atoms.calc = None
    frame_atoms.set_constraint()
    return Frame(
        system=spec.system,
        walker=spec.walker,
        temperature=spec.temperature,
        pressure_gpa=spec.pressure_gpa,
        step=step,
        atoms=frame_atoms,
        force_dev_max=last["force_dev_max"],
        force_dev_mean=last["force_dev_mean"],
        energy_dev=last["energy_dev"],
        stress_dev_gpa=last.get("stress_dev_gpa"),
    )


def run_walkers(
    committee: Committee, specs: Sequence[WalkerSpec], md: MDSettings
) -> tuple[list[WalkerResult], int]:
    """Advance all walkers together; returns their results and the committee calls made."""
    # A periodic walker's stress deviation is part of its uncertainty, NVT or NPT: the
    # labels of a cell carry its stress and the committee trains on it.
    stress = md.ensemble == "npt" or (bool(specs) and all(s.atoms.pbc.all() for s in specs))
    if md.bias is not None and md.ensemble == "npt":
        raise ValueError("the uncertainty bias has no stress term: it cannot drive NPT walkers")
    batcher = LockstepBatcher(committee, len(specs), stress=stress, bias=md.bias)
    results = [WalkerResult(spec=s) for s in specs]
    threads = [
        threading.Thread(
            target=_run_walker,
            args=(i, s, md, batcher, results[i]),
            name=f"walker-{i}",
            daemon=True,
        )
        for i, s in enumerate(specs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if batcher.error is not None:
        raise RuntimeError("batched committee evaluation failed") from batcher.error
    return results, batcher.calls


def plan_walkers(
    system: str,
    starts: Sequence[Atoms],
    temperatures: Sequence[float],
    walkers_per_condition: int,
    pressures_gpa: Sequence[float] = (),
    seed: int = 0,
) -> list[WalkerSpec]:
    """Walkers of one system: ``walkers_per_condition`` per (temperature, pressure).

    Starting structures are drawn from ``starts`` (the system's labelled structures) by a
    generator seeded with ``seed``: without replacement while there are enough, so walkers
    of one condition start from different structures, then with replacement. Each walker
    gets its own integrator seed derived from ``seed`` and its index.
    """
    if not starts:
        raise ValueError(f"system {system}: no labelled structure to start walkers from")
    rng = np.random.default_rng(seed)
    conditions = [(t, p) for t in temperatures for p in (pressures_gpa or [None])]
    specs = []
    for t, p in conditions:
        replace = walkers_per_condition > len(starts)
        picks = rng.choice(len(starts), size=walkers_per_condition, replace=replace)
        for k in picks:
            wid = len(specs)
            specs.append(
                WalkerSpec(
                    system=system,
                    atoms=starts[int(k)].copy(),
                    temperature=float(t),
                    pressure_gpa=p,
                    seed=int(rng.integers(2**31)),
                    walker=wid,
                )
            )
    return specs


def frame_records(
    frames: Sequence[Frame],
    verdicts: Sequence[str],
    iteration: int,
    committee: Sequence[str] = (),
    charge: int = 0,
    multiplicity: int = 1,
) -> list:
    """StructureRecords (origin ``md``) with each frame's lineage, uncertainty and verdict."""
    from aloop.records import StructureRecord

    return [
        StructureRecord.from_atoms(
            f.atoms,
            f.system,
            Origin.MD,
            iteration=iteration,
            charge=charge,
            multiplicity=multiplicity,
            verdict=v,
            lineage={
                "walker": f.walker,
                "temperature": f.temperature,
                "pressure_gpa": f.pressure_gpa,
                "md_step": f.step,
                "committee": list(committee),
                **({"before_stop": True} if f.before_stop else {}),
            },
            uncertainty={
                "force_dev_max": f.force_dev_max,
                "force_dev_mean": f.force_dev_mean,
                "energy_dev": f.energy_dev,
                "stress_dev_gpa": f.stress_dev_gpa,
            },
        )
        for f, v in zip(frames, verdicts, strict=True)
    ]
