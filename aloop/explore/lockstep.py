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

    from aloop.models.committee import Committee


class LockstepBatcher:
    """Collects one geometry per live walker, evaluates them together, hands back results."""

    def __init__(self, committee: Committee, n_walkers: int, stress: bool) -> None:
        self.committee = committee
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
        the cutoff. A pair's vector moves by at most both atoms' moves plus the move of
        its periodic shift, which a barostat's cell change adds."""
        cells = np.array([f.cell.array for f in frames])
        if self._cache is not None:
            c_ids, batch, ref, c_cells = self._cache
            if c_ids == ids and cells.shape == c_cells.shape:
                reach = 2 * _max_move(frames, ref) + self.committee.shift_change(
                    batch, cells - c_cells
                )
                if reach < NEIGHBOUR_SKIN:
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
                frames, stress=self.stress, batch=self._batch_for(ids, frames)
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
            self.results[wid] = out
        self.pending.clear()
        self.cond.notify_all()


#: Extra neighbour-list reach (Å): the graph batch is rebuilt only when some atom has
#: moved more than half of it (measured in benchmarks/explore_bench.py).
NEIGHBOUR_SKIN = 1.0


def _max_move(frames: list, ref: np.ndarray) -> float:
    return float(np.abs(np.concatenate([f.positions for f in frames]) - ref).max())


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
