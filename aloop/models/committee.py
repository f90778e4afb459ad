"""Batched committee inference: every structure through every member in one graph batch.

The neighbour lists and the graph batch are built once per call and shared by all
members (they must agree on r_max and elements, which models of one committee do). Results
follow MACE's calculator naming: ``energy_var``, ``forces_comm``; plus the per-atom force
deviation (norm of the per-component standard deviation over members) and its max and mean
per structure, DP-GEN's model deviation. With stress, the stress deviation of a periodic
structure is the largest standard deviation over members of one of its six Voigt
components (eV/Å^3), DP-GEN's virial deviation on the stress instead of the virial, so it
does not grow with the cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from aloop.records import fine_tuned_head, model_heads

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ase import Atoms


@dataclass
class CommitteeResult:
    """Committee outputs for a list of structures (eV, eV/Å).

    Per-structure arrays have one entry per structure; per-atom ones are lists with one
    (natoms, ...) array per structure.
    """

    energy: np.ndarray
    energy_std: np.ndarray
    forces: list[np.ndarray]
    force_std: list[np.ndarray]
    force_dev_max: np.ndarray
    force_dev_mean: np.ndarray
    energy_members: np.ndarray | None = None
    forces_members: list[np.ndarray] | None = None
    descriptors: np.ndarray | None = None
    stress: np.ndarray | None = None
    #: Per structure: max over Voigt components of the members' stress std (eV/Å^3).
    stress_dev: np.ndarray | None = None


class Committee:
    """K MACE models evaluated together.

    Parameters
    ----------
    models
        Loaded MACE modules (see :func:`aloop.models.io.load_model`).
    device
        Torch device; the models are moved there.
    """

    def __init__(self, models: Sequence[Any], device: str = "cpu") -> None:
        import torch

        if len(models) < 1:
            raise ValueError("a committee needs at least one model")
        self.models = [m.to(device).eval() for m in models]
        for m in self.models:
            for p in m.parameters():
                p.requires_grad_(False)
        self.device = device
        self.r_max = float(self.models[0].r_max)
        self.zs = [int(z) for z in self.models[0].atomic_numbers]
        for m in self.models[1:]:
            if float(m.r_max) != self.r_max or [int(z) for z in m.atomic_numbers] != self.zs:
                raise ValueError("committee members must share r_max and elements")
        heads = [model_heads(m) for m in self.models]
        if any(h != heads[0] for h in heads[1:]):
            raise ValueError(f"committee members must share their heads, not {heads}")
        #: The head evaluated: a fine-tuned model's own (MACE puts the replay head first).
        self.head = fine_tuned_head(heads[0])
        self._head_index = heads[0].index(self.head)
        self.dtype = next(self.models[0].parameters()).dtype
        self._torch = torch
        self._cores = max(1, torch.get_num_threads())
        self._pool: Any = None

    def batch(self, atoms_list: Sequence[Atoms], skin: float = 0.0) -> Any:
        """One graph batch of all structures (neighbour lists built once, here).

        With ``skin`` > 0 the lists reach ``r_max + skin``. MACE's cutoff envelope gives
        edges beyond r_max zero weight, so results are unchanged, and the batch stays valid
        for :meth:`move` while no atom has moved more than ``skin / 2``.
        """
        from mace import data as mace_data
        from mace.tools import torch_geometric
        from mace.tools.torch_tools import default_dtype
        from mace.tools.utils import AtomicNumberTable

        z_table = AtomicNumberTable(self.zs)
        keyspec = mace_data.KeySpecification(info_keys={}, arrays_keys={})
        with default_dtype(self.dtype):
            graphs = [
                mace_data.AtomicData.from_config(
                    mace_data.config_from_atoms(a, key_specification=keyspec),
                    z_table=z_table,
                    cutoff=self.r_max + skin,
                )
                for a in atoms_list
            ]
        batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
        if self._head_index:
            batch["head"] = self._torch.full_like(batch["head"], self._head_index)
        return batch

    def move(self, batch: Any, atoms_list: Sequence[Atoms]) -> None:
        """Put new positions and cells (same atoms, same neighbour pairs) into an existing
        batch in place; every edge's shift follows its structure's new cell. Cells move
        only in a batch of fully periodic structures (MACE stretches a molecule's cell
        to a box of its own, and only NPT, which needs a cell, changes one)."""
        torch = self._torch
        pos = np.concatenate([a.positions for a in atoms_list])
        batch["positions"] = torch.as_tensor(pos, dtype=self.dtype, device=self.device)
        if not all(a.pbc.all() for a in atoms_list):
            return
        cells = np.array([a.cell.array for a in atoms_list])
        cell = torch.as_tensor(cells, dtype=self.dtype, device=self.device)
        if torch.equal(cell.reshape(-1, 3), batch["cell"]):
            return
        batch["cell"] = cell.reshape(-1, 3)
        graph = batch["batch"][batch["edge_index"][0]]
        batch["shifts"] = torch.einsum("ei,eij->ej", batch["unit_shifts"], cell[graph])
        if "volume" in batch:  # kept consistent for the models that read them
            batch["volume"] = torch.linalg.det(cell)
            batch["rcell"] = (2 * torch.pi * torch.linalg.inv(cell.mT)).reshape(-1, 3)

    def _map_members(self, fn: Any) -> list[Any]:
        """Apply ``fn`` to every member; on CPU, members run side by side in threads.

        Measured (benchmarks/committee_bench.py): two members at a time with one OpenMP
        thread each beat one member at a time with two threads by 1.3-1.6x on 2 cores,
        because a small molecule's tensors are too small to keep two threads busy.
        torch releases the GIL inside its kernels, so Python threads overlap them.
        """
        torch = self._torch
        workers = min(len(self.models), self._cores)
        if self.device != "cpu" or workers < 2:
            return [fn(m) for m in self.models]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="committee")
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self._cores // workers))
        try:
            return list(self._pool.map(fn, self.models))
        finally:
            torch.set_num_threads(threads)

    def evaluate(
        self,
        atoms_list: Sequence[Atoms],
        per_member: bool = False,
        descriptors: bool = False,
        batch: Any = None,
        stress: bool = False,
    ) -> CommitteeResult:
        """Committee mean and spread for every structure, in one batch per member.

        Parameters
        ----------
        atoms_list
            The structures (at least one).
        per_member
            Also return every member's energies and forces.
        descriptors
            Also return each structure's mean committee-averaged invariant node features.
        batch
            A graph batch of ``atoms_list`` from :meth:`batch` to reuse (built if None).
        stress
            Add the committee-mean stress (periodic structures), Voigt order, eV/Å^3, and
            its deviation ``stress_dev``.

        Returns
        -------
        CommitteeResult
            Mean, spread and force deviation per structure (eV, eV/Å).
        """
        torch = self._torch
        if not atoms_list:
            raise ValueError("no structures to evaluate")
        batch = self.batch(atoms_list) if batch is None else batch
        n_struct = len(atoms_list)
        outs = self._forward_members(batch, descriptors, stress)
        e = torch.stack([o[0] for o in outs])  # (K, n_struct)
        f = torch.stack([o[1] for o in outs])  # (K, n_atoms_total, 3)
        index = batch["batch"]
        dev, dev_max, dev_mean, counts = self._force_deviation(f, index, n_struct)
        splits = batch["ptr"].tolist()
        mean_stress, stress_dev = self._stress(outs) if stress else (None, None)
        return CommitteeResult(
            stress=mean_stress,
            stress_dev=stress_dev,
            energy=e.mean(dim=0).cpu().numpy(),
            energy_std=e.std(dim=0, unbiased=False).cpu().numpy(),
            forces=_per_structure(f.mean(dim=0), splits, n_struct),
            force_std=[x[:, 0] for x in _per_structure(dev[:, None], splits, n_struct)],
            force_dev_max=dev_max.cpu().numpy(),
            force_dev_mean=dev_mean.cpu().numpy(),
            energy_members=e.T.cpu().numpy() if per_member else None,
            forces_members=_per_structure(f, splits, n_struct) if per_member else None,
            descriptors=self._descriptors(outs, index, counts, n_struct) if descriptors else None,
        )

    def _forward_members(self, batch: Any, descriptors: bool, stress: bool) -> list[tuple]:
        """(energy, forces, node features or None, stress or None) of each member."""

        def run(model: Any) -> tuple[Any, Any, Any, Any]:
            # MACE marks the positions for autograd (forces are their gradient): each member
            # gets its own copy, so members in threads never share one graph leaf.
            data = batch.to_dict()
            data["positions"] = data["positions"].detach().clone()
            out = model(data, compute_force=True, compute_stress=stress, training=False)
            nf = out["node_feats"].detach() if descriptors else None
            st = out["stress"].detach() if stress else None
            return out["energy"].detach(), out["forces"].detach(), nf, st

        return self._map_members(run)

    def _force_deviation(self, f: Any, index: Any, n_struct: int) -> tuple[Any, ...]:
        """(per-atom deviation, its max and mean per structure, atoms per structure) of ``f``."""
        torch = self._torch
        f_std = f.std(dim=0, unbiased=False)  # per component over members
        dev = torch.linalg.norm(f_std, dim=1)  # per atom
        dev_max = torch.zeros(n_struct, dtype=dev.dtype, device=dev.device).scatter_reduce(
            0, index, dev, reduce="amax", include_self=False
        )
        counts = torch.bincount(index, minlength=n_struct).to(dev.dtype)
        dev_mean = (
            torch.zeros(n_struct, dtype=dev.dtype, device=dev.device).index_add(0, index, dev)
            / counts
        )
        return dev, dev_max, dev_mean, counts

    def _descriptors(self, outs: list[tuple], index: Any, counts: Any, n_struct: int) -> np.ndarray:
        """Per structure, the mean over its atoms of the committee-averaged scalar features."""
        torch = self._torch
        node = torch.stack([o[2] for o in outs]).mean(dim=0)  # committee-averaged node features
        scalars = node[:, _scalar_columns(self.models[0], node.shape[1])]
        summed = torch.zeros(
            n_struct, scalars.shape[1], dtype=scalars.dtype, device=scalars.device
        ).index_add(0, index, scalars)
        return (summed / counts[:, None]).cpu().numpy()

    def _stress(self, outs: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """Each structure's committee-mean stress (Voigt order) and stress deviation, eV/Å^3."""
        members = self._torch.stack([o[3] for o in outs]).cpu().numpy()  # (K, n, 3, 3)
        members = (members + members.swapaxes(-1, -2)) / 2  # as ASE's voigt conversion
        rows, cols = zip(*VOIGT_PAIRS, strict=True)
        voigt = members[:, :, list(rows), list(cols)]  # (K, n, 6)
        return voigt.mean(axis=0), voigt.std(axis=0).max(axis=1)


#: The (row, column) of each Voigt component of a 3x3 stress: xx yy zz yz xz xy (ASE's order).
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def _per_structure(t: Any, splits: list[int], n_struct: int) -> list[np.ndarray]:
    """A per-atom tensor of the whole batch cut into one array per structure (atoms axis -2)."""
    arr = t.cpu().numpy()
    return [arr[..., splits[i] : splits[i + 1], :] for i in range(n_struct)]


def _scalar_columns(model: Any, width: int) -> list[int]:
    """Columns of MACE's ``node_feats`` holding invariant (0e) channels, every layer.

    ``node_feats`` concatenates each interaction's product output; its irreps say where
    the scalars sit (e.g. ``64x0e+64x1o`` then ``64x0e`` for L=1).
    """
    cols: list[int] = []
    offset = 0
    for product in model.products:
        for mul, ir in product.linear.irreps_out:
            if ir.l == 0 and ir.p == 1:
                cols.extend(range(offset, offset + mul))
            offset += mul * ir.dim
    if offset != width:  # an unfamiliar architecture: fall back to the first layer's block
        return list(range(min(width, len(cols) or width)))
    return cols


class CommitteeCalculator(Calculator):
    """ASE calculator on a :class:`Committee` for single structures.

    ``results`` hold the committee mean ``energy`` and ``forces``, MACE-style
    ``energy_var`` and ``forces_comm`` (members x atoms x 3), and ``force_std`` (per atom)
    with its ``force_dev_max``.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(self, committee: Committee, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.committee = committee

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        r = self.committee.evaluate([self.atoms], per_member=True)
        energy = float(r.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": r.forces[0],
            "energy_var": float(r.energy_std[0] ** 2),
            "forces_comm": r.forces_members[0],
            "force_std": r.force_std[0],
            "force_dev_max": float(r.force_dev_max[0]),
        }
