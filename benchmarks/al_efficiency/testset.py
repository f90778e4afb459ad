"""The held-out test set: frames of DFT-driven Langevin MD, independent of both arms.

Each trajectory is ethanol in vacuum driven by the study's own DFT level (no model in
the loop), at one of the test temperatures, with its own seed. After an equilibration
the trajectory is sampled every ``interval`` steps; a sampled frame keeps the energy and
forces DFT computed for that step as REF_energy / REF_forces. Trajectories run in
parallel processes and each is written to the work folder when it finishes, so an
interrupted generation redoes only the unfinished ones.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aloop.dataset.extxyz import write_frame
from aloop.records import REF_ENERGY, REF_FORCES


@dataclass(frozen=True)
class TestSetPlan:
    """What the test set is made of (every number here is in the results)."""

    molecule: str = "CH3CH2OH"
    temperatures: tuple[float, ...] = (300.0, 600.0, 1000.0)
    trajectories_per_temperature: int = 2
    timestep_fs: float = 1.0
    friction_per_fs: float = 0.02
    equilibration_steps: int = 40
    steps: int = 240
    interval: int = 10
    seed: int = 12345

    def runs(self) -> list[tuple[float, int, int]]:
        """(temperature, trajectory index, seed) of every trajectory."""
        out = []
        for t in self.temperatures:
            for i in range(self.trajectories_per_temperature):
                out.append((t, i, self.seed + 1000 * int(t) + i))
        return out


def _trajectory(plan: TestSetPlan, dft: dict, temperature: float, index: int, seed: int) -> list:
    from ase import units
    from ase.build import molecule
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    from dft.calculator import PySCFCalculator
    from dft.settings import LabelSettings

    rng = np.random.default_rng(seed)
    atoms = molecule(plan.molecule)
    atoms.set_constraint(FixCom())  # ASE's advice over Langevin(fixcm=True) for small systems
    atoms.calc = PySCFCalculator(LabelSettings(**dft))
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep=plan.timestep_fs * units.fs,
        temperature_K=temperature,
        friction=plan.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    frames = []

    def sample() -> None:
        step = dyn.nsteps
        if step > plan.equilibration_steps and step % plan.interval == 0:
            frame = atoms.copy()
            frame.info.update(
                {
                    REF_ENERGY: float(atoms.get_potential_energy()),
                    "temperature": temperature,
                    "trajectory": index,
                    "step": step,
                }
            )
            # The raw DFT forces: get_forces() would apply FixCom's projection, which
            # is what the integrator needs but not what DFT says.
            frame.arrays[REF_FORCES] = atoms.get_forces(apply_constraint=False).copy()
            frames.append(frame)

    dyn.attach(sample, interval=1)
    dyn.run(plan.steps)
    return frames


def _write(path: Path, frames: list) -> None:
    tmp = path.with_suffix(".part")
    with tmp.open("w") as out:
        for a in frames:
            write_frame(
                out,
                a.numbers,
                a.positions,
                a.cell.array,
                a.pbc,
                dict(a.info),
                {REF_FORCES: a.arrays[REF_FORCES]},
            )
    tmp.replace(path)


def generate(plan: TestSetPlan, dft: dict, work: Path, out: Path, workers: int = 2) -> dict:
    """Run the missing trajectories, then join them into ``out``; returns a summary."""
    from ase.io import read

    work.mkdir(parents=True, exist_ok=True)
    todo = [r for r in plan.runs() if not (work / f"T{int(r[0])}-{r[1]}.xyz").exists()]
    if todo:
        print(f"test set: {len(todo)} DFT-driven trajectories to run", flush=True)
        os.environ["OMP_NUM_THREADS"] = "1"  # one core per trajectory process
        start = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            futures = {pool.submit(_trajectory, plan, dft, *r): r for r in todo}
            for done, fut in enumerate(as_completed(futures), 1):
                t, i, _ = futures[fut]
                _write(work / f"T{int(t)}-{i}.xyz", fut.result())
                print(
                    f"  trajectory {done}/{len(todo)} ({t:.0f} K, #{i}) done "
                    f"at {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
    frames = []
    for t, i, _ in plan.runs():
        frames.extend(read(work / f"T{int(t)}-{i}.xyz", ":"))
    _write(out, frames)
    return {
        "frames": len(frames),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "per_temperature": {
            f"{t:.0f}": sum(1 for a in frames if a.info["temperature"] == t)
            for t in plan.temperatures
        },
    }
