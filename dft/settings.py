"""What a label is computed with, and the hash that identifies it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib.metadata import version

from aloop.config import DFTConfig, config_field, from_section
from aloop.vocabulary import Engine, SpinPolicy

#: The campaign schema's ``dft`` section at its defaults: the one place they are defined.
_DFT = DFTConfig()
#: The version of how a label is computed from its settings, in every settings hash.
#: Bumped when the code changes a label's numbers for the same inputs, so labels of the
#: old and the new code never share a hash. 2: SCF stability analysis, the free energy
#: of smeared SCFs, def2 ECPs, periodic stress (issue 18).
LABEL_PROTOCOL = 2
#: The k-point sampling of every periodic label: the Γ point only.
KPOINTS = "gamma"


@dataclass(frozen=True)
class LabelSettings:
    """Everything the labeller needs, as plain data (picklable for worker processes).

    ``result_fields`` below lists what changes the numbers; the rest (ladder, limits)
    decides how hard to try and is left out of :meth:`settings_hash`. Each setting but
    ``periodic`` (per system) and ``pyscf_version`` (the installed one) is a key of the
    campaign's ``dft`` section, with the schema's default (:class:`aloop.config.DFTConfig`):
    a campaign that leaves a key out and code that builds settings directly agree.
    """

    engine: Engine = config_field(_DFT, "engine")  # noqa: RUF009 (a dataclasses.field)
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
    cp2k_basis: str = config_field(_DFT, "cp2k.basis")
    cp2k_potential: str = config_field(_DFT, "cp2k.potential")
    cp2k_basis_file: str = config_field(_DFT, "cp2k.basis_file")
    cp2k_potential_file: str = config_field(_DFT, "cp2k.potential_file")
    cutoff_ry: float = config_field(_DFT, "cp2k.cutoff_ry")
    rel_cutoff_ry: float = config_field(_DFT, "cp2k.rel_cutoff_ry")
    eps_scf: float = config_field(_DFT, "cp2k.eps_scf")
    cp2k_max_scf: int = config_field(_DFT, "cp2k.max_scf")
    cp2k_outer_max_scf: int = config_field(_DFT, "cp2k.outer_max_scf")
    cp2k_command: str = config_field(_DFT, "cp2k.command")
    #: Per element, the (basis, potential, basis file, potential file) that replace the
    #: names above: ``(symbol, basis, potential, basis_file, potential_file)``, sorted.
    cp2k_kinds: tuple[tuple[str, str, str, str, str], ...] = ()
    pyscf_version: str = field(default_factory=lambda: version("pyscf"))  # not vocabulary

    @classmethod
    def from_config(cls, dft: DFTConfig, periodic: bool = False) -> LabelSettings:
        """Settings for one system of a campaign (periodic systems use the GTH options)."""
        kinds = tuple(
            (
                symbol,
                kind.basis,
                kind.potential,
                kind.basis_file or dft.cp2k.basis_file,
                kind.potential_file or dft.cp2k.potential_file,
            )
            for symbol, kind in sorted(dft.cp2k.kinds.items())
        )
        return from_section(cls, dft, periodic=periodic, cp2k_kinds=kinds)

    def cp2k_kind(self, symbol: str) -> tuple[str, str, str, str]:
        """The (basis, potential, basis file, potential file) CP2K reads for ``symbol``."""
        for element, *names in self.cp2k_kinds:
            if element == symbol:
                return tuple(names)  # type: ignore[return-value]
        return (
            self.cp2k_basis,
            self.cp2k_potential,
            self.cp2k_basis_file,
            self.cp2k_potential_file,
        )

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

    @property
    def code_versions(self) -> dict[str, str]:
        """The version of the code that computes the labels, as each label records it."""
        if self.engine == Engine.CP2K:
            from dft.cp2k import cp2k_version

            return {"cp2k": cp2k_version(self.cp2k_command)}
        return {"pyscf": self.pyscf_version}

    def result_fields(self) -> dict:
        """The settings that change a label's numbers (and so belong in its hash).

        The ladder and the limits (how hard to try) are left out; every label records
        how its SCF went and whether the solution is stable.
        """
        if self.engine == Engine.CP2K:
            return self._cp2k_fields()
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

    def _cp2k_fields(self) -> dict:
        """The CP2K engine's hash inputs: its version, the basis and potential names and
        the sha256 of the files they are read from, the grid, the SCF threshold, the
        functional, the k-points and the spin (the OT step limits decide only whether a
        label converges, and are left out like the PySCF ladder)."""
        from dft.cp2k import cp2k_version, data_file, file_sha256

        basis_file = data_file(self.cp2k_basis_file)
        potential_file = data_file(self.cp2k_potential_file)
        fields = {
            "engine": str(self.engine),
            "cp2k_version": cp2k_version(self.cp2k_command),
            "method": self.method,
            "xc": self.xc,
            "basis": self.cp2k_basis,
            "basis_file": self.cp2k_basis_file,
            "basis_file_sha256": file_sha256(str(basis_file)),
            "potential": self.cp2k_potential,
            "potential_file": self.cp2k_potential_file,
            "potential_file_sha256": file_sha256(str(potential_file)),
            "cutoff_ry": self.cutoff_ry,
            "rel_cutoff_ry": self.rel_cutoff_ry,
            "eps_scf": self.eps_scf,
            "smearing_hartree": self.smearing_hartree,
            "kpoints": KPOINTS,
            "spin": str(self.spin),
            "periodic": self.periodic,
            "label_protocol": LABEL_PROTOCOL,
        }
        if self.cp2k_kinds:  # absent when unused: earlier CP2K labels keep their hash
            fields["kinds"] = [
                {
                    "element": element,
                    "basis": basis,
                    "basis_file": basis_name,
                    "basis_file_sha256": file_sha256(str(data_file(basis_name))),
                    "potential": potential,
                    "potential_file": potential_name,
                    "potential_file_sha256": file_sha256(str(data_file(potential_name))),
                }
                for element, basis, potential, basis_name, potential_name in self.cp2k_kinds
            ]
        return dict(sorted(fields.items()))

    def settings_hash(self) -> str:
        """sha256 of :meth:`result_fields`: one label per structure per hash."""
        blob = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def description(self) -> str:
        """Short human form, e.g. ``PBE/def2-SVP`` or ``HF/sto-3g``."""
        if self.engine == Engine.CP2K:
            return f"{self.xc}/{self.cp2k_basis} (CP2K, {self.cutoff_ry:g} Ry)"
        basis = self.pbc_basis if self.periodic else self.basis
        return f"{'HF' if self.method == 'HF' else self.xc}/{basis}"
