"""What a label is computed with, and the hash that identifies it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aloop.config import DFTConfig


@dataclass(frozen=True)
class LabelSettings:
    """Everything the labeller needs, as plain data (picklable for worker processes).

    ``result_fields`` below lists what changes the numbers; the rest (ladder, limits)
    decides how hard to try and is left out of :meth:`settings_hash`.
    """

    method: str = "DFT"
    xc: str = "PBE"
    basis: str = "def2-SVP"
    density_fit: bool = False
    auxbasis: str | None = None
    grid_level: int = 3
    dispersion: str | None = None
    conv_tol: float = 1e-9
    periodic: bool = False
    pbc_basis: str = "gth-szv"
    pbc_pseudo: str = "gth-pade"
    ke_cutoff_hartree: float | None = None
    multigrid: bool = True
    smearing_hartree: float = 0.0
    max_cycle: int = 100
    recovery: tuple[str, ...] = ("diis", "damping_levelshift", "newton", "initial_guess")
    damping: float = 0.5
    level_shift_hartree: float = 0.25
    timeout_s: float = 3600.0
    min_distance_factor: float = 0.5
    pyscf_version: str = field(default_factory=lambda: version("pyscf"))

    @classmethod
    def from_config(cls, dft: DFTConfig, periodic: bool = False) -> LabelSettings:
        """Settings for one system of a campaign (periodic systems use the GTH options)."""
        p = dft.periodic
        return cls(
            method=dft.method,
            xc=dft.xc,
            basis=dft.basis,
            density_fit=dft.density_fit,
            auxbasis=dft.auxbasis,
            grid_level=dft.grid_level,
            dispersion=dft.dispersion,
            conv_tol=dft.scf.conv_tol,
            periodic=periodic,
            pbc_basis=p.basis,
            pbc_pseudo=p.pseudo,
            ke_cutoff_hartree=p.ke_cutoff_hartree,
            multigrid=p.multigrid,
            smearing_hartree=p.smearing_hartree,
            max_cycle=dft.scf.max_cycle,
            recovery=tuple(dft.scf.recovery),
            damping=dft.scf.damping,
            level_shift_hartree=dft.scf.level_shift_hartree,
            timeout_s=dft.scf.timeout_s,
            min_distance_factor=dft.guard.min_distance_factor,
        )

    def result_fields(self) -> dict:
        """The settings that change a label's numbers (and so belong in its hash)."""
        keep = {
            "method",
            "basis",
            "density_fit",
            "auxbasis",
            "conv_tol",
            "periodic",
            "dispersion",
            "pyscf_version",
        }
        if self.method == "DFT":
            keep |= {"xc", "grid_level"}
        if self.periodic:
            keep = (keep - {"basis", "density_fit", "auxbasis", "grid_level"}) | {
                "pbc_basis",
                "pbc_pseudo",
                "ke_cutoff_hartree",
                "multigrid",
                "smearing_hartree",
            }
        d = asdict(self)
        return {k: d[k] for k in sorted(keep)}

    def settings_hash(self) -> str:
        """sha256 of :meth:`result_fields`: one label per structure per hash."""
        blob = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def description(self) -> str:
        """Short human form, e.g. ``PBE/def2-SVP`` or ``HF/sto-3g``."""
        basis = self.pbc_basis if self.periodic else self.basis
        return f"{'HF' if self.method == 'HF' else self.xc}/{basis}"
