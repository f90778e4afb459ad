"""Lock-step evaluation of MD walkers: each walker's ASE calculator hands its geometry to
one shared batcher, which evaluates every live walker in one committee call."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator, all_changes

if TYPE_CHECKING:
    from ase import Atoms

    from aloop.explore.bias import UncertaintyBias
    from aloop.models.committee import Committee


class LockstepBatcher:
    """Collects one geometry per live walker, evaluates them together, hands back results."""

    def __init__(
        self,
        committee: Committee,
        n_walkers: int,
        stress: bool,
        bias: UncertaintyBias | None = None,
    ) -> None:
        self.committee = committee
        self.bias = bias
        self.live = set(range(n_walkers))
        self.pending: dict[int, Atoms] = {}
        self.results: dict[int, dict] = {}
        self.cond = threading.Condition()
        self.stress = stress
        self.calls = 0
        self.rebuilds = 0
        self.error: BaseException | None = None
        self._cache: tuple[list[int], Any, np.ndarray, np.ndarray] | None = None

    def request(self, wid: int, atoms: Atoms) -> dict:
        with self.cond:
            self.pending[wid] = atoms  # the calculator's own copy; not touched meanwhile
            self._maybe_evaluate()
            while wid not in self.results and self.error is None:
                self.cond.wait()
            if self.error is not None:
                raise RuntimeError("batched committee evaluation failed") from self.error
            return self.results.pop(wid)

    def leave(self, wid: int) -> None:
        with self.cond:
            self.live.discard(wid)
            self._maybe_evaluate()

    def _batch_for(self, ids: list[int], frames: list) -> Any:
        """The cached graph batch with new positions and cells, or a new one when it is
        stale: when some pair of atoms may have come from beyond the list's reach into
        the cutoff (:func:`list_still_covers`)."""
        cells = np.array([f.cell.array for f in frames])
        if self._cache is not None:
            c_ids, batch, ref, c_cells = self._cache
            if c_ids == ids and list_still_covers(
                ref, c_cells, frames, self.committee.r_max, NEIGHBOUR_SKIN
            ):
                self.committee.move(batch, frames)
                return batch
        batch = self.committee.batch(frames, skin=NEIGHBOUR_SKIN)
        self.rebuilds += 1
        self._cache = (ids, batch, np.concatenate([f.positions for f in frames]), cells)
        return batch

    def _maybe_evaluate(self) -> None:
        if not self.pending or set(self.pending) != self.live:
            return
        ids = sorted(self.pending)
        frames = [self.pending[i] for i in ids]
        try:
            res = self.committee.evaluate(
                frames,
                stress=self.stress,
                batch=self._batch_for(ids, frames),
                per_member=self.bias is not None,
            )
        except BaseException as exc:  # wake every walker with the error, never hang
            self.error = exc
            self.cond.notify_all()
            return
        self.calls += 1
        for k, wid in enumerate(ids):
            out = {
                "energy": float(res.energy[k]),
                "forces": res.forces[k],
                "force_dev_max": float(res.force_dev_max[k]),
                "force_dev_mean": float(res.force_dev_mean[k]),
                "energy_dev": float(res.energy_std[k]),
            }
            if res.stress is not None:
                out["stress"] = res.stress[k]
                out["stress_dev_gpa"] = float(res.stress_dev[k]) / units.GPa
            if self.bias is not None:
                # the walker moves on the biased surface; its uncertainties stay the
                # committee's own
                e_bias, f_bias = self.bias.energy_forces(
                    res.energy_members[k], res.forces_members[k]
                )
                out["energy"] += e_bias
                out["forces"] = out["forces"] + f_bias
            self.results[wid] = out
        self.pending.clear()
        self.cond.notify_all()


#: Extra neighbour-list reach (Å): the graph batch is rebuilt only when some atom has
#: moved more than half of it (measured in benchmarks/explore_bench.py).
NEIGHBOUR_SKIN = 1.0


def list_still_covers(
    positions: np.ndarray, cells: np.ndarray, frames: list, r_max: float, skin: float
) -> bool:
    """Whether a neighbour list built to ``r_max + skin`` on ``positions`` (all frames'
    atoms, stacked) and ``cells`` still holds every pair of ``frames`` within ``r_max``.

    A barostat changes the cell: write the new cell as the old one times T and each atom's
    new position as its old one times T plus a move u. A pair's vector d becomes
    d T + (u_j - u_i), so its length grows by at most |d| |T - 1| + 2 max|u| (the
    spectral norm of T - 1; T = 1 when the cell is unchanged, and the rule is then
    "no atom moved half the skin"). A pair now within r_max was within
    (r_max + 2 max|u|) / (1 - |T - 1|) before, which must not exceed r_max + skin.
    This holds for every pair, listed or not, whatever its periodic image.
    """
    periodic = all(f.pbc.all() for f in frames)
    reach, offset = 0.0, 0
    for f, cell in zip(frames, cells, strict=True):
        n = len(f)
        old = positions[offset : offset + n]
        offset += n
        if np.array_equal(cell, f.cell.array):
            strain, moved = 0.0, f.positions - old
        elif not periodic:
            return False  # a molecule's cell in the batch is MACE's own: rebuild
        else:
            transform = np.linalg.solve(cell, f.cell.array)  # old cell @ T = new cell
            strain = float(np.linalg.norm(transform - np.eye(3), ord=2))
            moved = f.positions - old @ transform
        if strain >= 1.0:
            return False
        u = float(np.linalg.norm(moved, axis=1).max()) if n else 0.0
        reach = max(reach, (r_max + 2 * u) / (1 - strain))
    return reach < r_max + skin


class WalkerCalculator(Calculator):
    """ASE calculator of one walker: asks the batcher instead of computing."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, batcher: LockstepBatcher, wid: int) -> None:
        super().__init__()
        self.batcher = batcher
        self.wid = wid
        self.last: dict = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        out = self.batcher.request(self.wid, self.atoms)
        self.last = out
        self.results = {
            "energy": out["energy"],
            "free_energy": out["energy"],
            "forces": out["forces"],
        }
        if "stress" in out:
            self.results["stress"] = out["stress"]
