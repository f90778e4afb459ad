"""What a label is computed with, and the hash that identifies it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib.metadata import version

from aloop.config import DFTConfig, config_field, from_section
from aloop.vocabulary import SpinPolicy

#: The campaign schema's ``dft`` section at its defaults: the one place they are defined.
_DFT = DFTConfig()
#: The version of how a label is computed from its settings, in every settings hash.
#: Bumped when the code changes a label's numbers for the same inputs, so labels of the
#: old and the new code never share a hash. 2: SCF stability analysis, the free energy
#: of smeared SCFs, def2 ECPs, periodic stress (issue 18).
LABEL_PROTOCOL = 2


@dataclass(frozen=True)
class LabelSettings:
    """Everything the labeller needs, as plain data (picklable for worker processes).

    ``result_fields`` below lists what changes the numbers; the rest (ladder, limits)
    decides how hard to try and is left out of :meth:`settings_hash`. Each setting but
    ``periodic`` (per system) and ``pyscf_version`` (the installed one) is a key of the
    campaign's ``dft`` section, with the schema's default (:class:`aloop.config.DFTConfig`):
    a campaign that leaves a key out and code that builds settings directly agree.
    """

    method: str = config_field(_DFT, "method")
    xc: str = config_field(_DFT, "xc")
    basis: str = config_field(_DFT, "basis")
    density_fit: bool = config_field(_DFT, "density_fit")
    auxbasis: str | None = config_field(_DFT, "auxbasis")
    grid_level: int = config_field(_DFT, "grid_level")
    dispersion: str | None = config_field(_DFT, "dispersion")
    ecp: str = config_field(_DFT, "ecp")
    spin: SpinPolicy = config_field(_DFT, "spin")  # noqa: RUF009 (a dataclasses.field)
    conv_tol: float = config_field(_DFT, "scf.conv_tol")
    periodic: bool = False
    pbc_basis: str = config_field(_DFT, "periodic.basis")
    pbc_pseudo: str = config_field(_DFT, "periodic.pseudo")
    ke_cutoff_hartree: float | None = config_field(_DFT, "periodic.ke_cutoff_hartree")
    multigrid: bool = config_field(_DFT, "periodic.multigrid")
    smearing_hartree: float = config_field(_DFT, "periodic.smearing_hartree")
    max_cycle: int = config_field(_DFT, "scf.max_cycle")
    recovery: tuple[str, ...] = config_field(_DFT, "scf.recovery")
    damping: float = config_field(_DFT, "scf.damping")
    level_shift_hartree: float = config_field(_DFT, "scf.level_shift_hartree")
    stability_rounds: int = config_field(_DFT, "scf.stability_rounds")
    timeout_s: float = config_field(_DFT, "scf.timeout_s")
    min_distance_factor: float = config_field(_DFT, "guard.min_distance_factor")
    pyscf_version: str = field(default_factory=lambda: version("pyscf"))

    @classmethod
    def from_config(cls, dft: DFTConfig, periodic: bool = False) -> LabelSettings:
        """Settings for one system of a campaign (periodic systems use the GTH options)."""
        return from_section(cls, dft, periodic=periodic)

    @property
    def ecp_name(self) -> str | None:
        """The effective core potential molecular systems are built with, or None.

        ``auto`` gives a def2 basis its own ECPs (PySCF applies them to the elements the
        set defines them for, Rb onwards), any other basis none: def2 valence sets for
        heavy elements are made for their ECPs, and all-electron in them is not def2.
        """
        if self.periodic:
            return None  # the cell carries its pseudopotential (pbc_pseudo)
        name = self.ecp.strip()
        if name.lower() == "auto":
            return self.basis if self.basis.lower().startswith("def2") else None
        return None if name.lower() == "none" else name

    def result_fields(self) -> dict:
        """The settings that change a label's numbers (and so belong in its hash).

        The ladder and the limits (how hard to try) are left out; every label records
        how its SCF went and whether the solution is stable.
        """
        keep = {
            "method",
            "basis",
            "density_fit",
            "auxbasis",
            "conv_tol",
            "periodic",
            "dispersion",
            "spin",
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
        fields = {k: d[k] for k in keep}
        if not self.periodic:
            fields["ecp"] = self.ecp_name  # resolved: 'auto' and its spelled-out set agree
        fields["label_protocol"] = LABEL_PROTOCOL
        return dict(sorted(fields.items()))

    def settings_hash(self) -> str:
        """sha256 of :meth:`result_fields`: one label per structure per hash."""
        blob = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def description(self) -> str:
        """Short human form, e.g. ``PBE/def2-SVP`` or ``HF/sto-3g``."""
        basis = self.pbc_basis if self.periodic else self.basis
        return f"{'HF' if self.method == 'HF' else self.xc}/{basis}"
