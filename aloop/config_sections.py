"""The sections of the campaign schema: one pydantic model per YAML section.

:mod:`aloop.config` assembles them into :class:`~aloop.config.CampaignConfig` and is
where they are imported from. Every section rejects unknown keys and is frozen. Units
follow DESIGN.md: K, GPa, fs, Å, eV/Å; Hartree and Bohr appear only inside dft/.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from aloop.vocabulary import E0Source, Engine, FinetuneMode, SpinPolicy

#: Largest count any setting may hold: beyond it a loop or an allocation never ends.
MAX_COUNT = 10**9
#: Frames one iteration's walkers may sample per system: each is held in memory (and
#: stored) before selection, so more than this cannot fit.
MAX_FRAMES = 10**7


def _not_bool(value: Any) -> Any:
    """``value``, unless it is a boolean: YAML's ``true`` is not the number 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not the boolean {str(value).lower()}")
    return value


_NUMBER = BeforeValidator(_not_bool)
Float = Annotated[float, _NUMBER]
Int = Annotated[int, _NUMBER]
Bool = Annotated[bool, Strict()]
PositiveFloat = Annotated[float, _NUMBER, Field(gt=0)]
NonNegativeFloat = Annotated[float, _NUMBER, Field(ge=0)]
PositiveInt = Annotated[int, _NUMBER, Field(gt=0, le=MAX_COUNT)]
NonNegativeInt = Annotated[int, _NUMBER, Field(ge=0, le=MAX_COUNT)]
#: A random seed: numpy's legacy generators and MACE take an unsigned 32-bit one.
Seed = Annotated[int, _NUMBER, Field(ge=0, le=2**32 - 1)]
#: K; above 10^5 K no chemistry is left to learn and MD integrators blow up.
Temperature = Annotated[float, _NUMBER, Field(gt=0, le=1e5)]
#: GPa; 10^4 GPa is thirty times the pressure at the centre of the Earth.
Pressure = Annotated[float, _NUMBER, Field(ge=-1e3, le=1e4)]
Name = Annotated[str, Field(min_length=1)]

SCF_STRATEGIES = ("diis", "damping_levelshift", "newton", "initial_guess")


def _require_items(values: list, message: str) -> list:
    """``values``, unless it is empty: then a validation error saying ``message``."""
    if not values:
        raise ValueError(message)
    return values


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TrustWindow(Section):
    """Committee force-deviation window in eV/Å: [lo, hi) is the candidate band.

    With ``calibrated``, lo and hi are in calibrated units: each frame's max force
    deviation is multiplied by the campaign's latest fitted calibration scale (the
    median ratio of true error to deviation, see aloop/calibration.py) before it is
    compared, so the window is read as an estimate of the true error in eV/Å.

    Periodic frames also have a stress deviation (GPa, the largest members' standard
    deviation of one Voigt component), always stored. With [stress_lo_gpa,
    stress_hi_gpa) set, it is read too: a frame is as uncertain as the worse of its two
    verdicts, and a walker stops at ``force_dev_factor`` x stress_hi_gpa. Off unless
    set (campaigns stored before it keep their verdicts). The stress window is raw
    committee spread, never calibrated (the calibration is fitted on forces).
    """

    lo: NonNegativeFloat = 0.05
    hi: PositiveFloat = 0.30
    calibrated: Bool = False
    stress_lo_gpa: NonNegativeFloat | None = None
    stress_hi_gpa: PositiveFloat | None = None

    @property
    def reads_stress(self) -> bool:
        """Whether the stress deviation is part of this window's verdicts."""
        return self.stress_hi_gpa is not None

    @model_validator(mode="after")
    def _lo_below_hi(self) -> TrustWindow:
        if self.lo >= self.hi:
            raise ValueError(f"lo ({self.lo}) must be smaller than hi ({self.hi})")
        if (self.stress_lo_gpa is None) != (self.stress_hi_gpa is None):
            raise ValueError("stress_lo_gpa and stress_hi_gpa are set together, or neither")
        if self.stress_hi_gpa is not None and self.stress_lo_gpa >= self.stress_hi_gpa:
            raise ValueError(
                f"stress_lo_gpa ({self.stress_lo_gpa}) must be smaller than "
                f"stress_hi_gpa ({self.stress_hi_gpa})"
            )
        return self


class SystemConfig(Section):
    """One chemical system explored by the campaign.

    Exactly one of ``molecule`` (an ``ase.build.molecule`` name) or ``structure`` (a file
    readable by ``ase.io``, relative to the campaign file) gives the starting geometry.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")]
    molecule: Name | None = None
    structure: Name | None = None
    index: Name = Field(":", description="ase.io index into the structure file")
    charge: Int = 0
    multiplicity: PositiveInt = 1
    pbc: Bool | None = Field(None, description="override the periodicity from the file")
    temperatures: list[Temperature] | None = Field(None, description="K; overrides explore")
    pressures_gpa: list[Pressure] | None = None
    trust: TrustWindow | None = Field(None, description="overrides select.trust")

    @model_validator(mode="after")
    def _one_source(self) -> SystemConfig:
        if (self.molecule is None) == (self.structure is None):
            raise ValueError("give exactly one of 'molecule' or 'structure'")
        return self


class PeriodicDFT(Section):
    """Options for periodic cells (pyscf.pbc at the Gamma point)."""

    pseudo: Name = "gth-pade"
    basis: Name = "gth-szv"
    ke_cutoff_hartree: PositiveFloat | None = None
    multigrid: Bool = Field(
        True,
        description="PySCF's multigrid Gamma-point KS: faster, but forces only (its stress "
        "fails); false: the single-k-point FFTDF code, forces and stress from one SCF",
    )
    smearing_hartree: NonNegativeFloat = Field(
        0.0, description="Fermi smearing width; labels then store the free energy"
    )


class CP2KKind(Section):
    """One element's basis and pseudopotential, in place of the section's names.

    For an element whose default pair does not suit the campaign: Mg's MOLOPT bases in
    BASIS_MOLOPT are for the 10-electron semicore potential (q10), which needs a cutoff
    near 500 Ry; the 2-electron pair (``DZVP-MOLOPT-SR-GTH-q2`` in BASIS_MOLOPT_UCL,
    ``GTH-PBE-q2``) is converged at 250 Ry.
    """

    basis: Name
    potential: Name
    basis_file: Name | None = Field(None, description="default: the section's basis_file")
    potential_file: Name | None = Field(None, description="default: the section's potential_file")


class CP2KDFT(Section):
    """Options of the CP2K engine (``dft.engine: cp2k``): Quickstep GPW at the Γ point.

    Basis and potential names are looked up in the named files, which CP2K finds in its
    data directory (Debian: /usr/share/cp2k) or at the path given; each file's sha256 is
    part of the label's settings hash, so an edited basis file is a new surface.
    """

    basis: Name = Field("DZVP-MOLOPT-SR-GTH", description="basis set name, every element")
    potential: Name = Field("GTH-PBE", description="GTH pseudopotential name, every element")
    basis_file: Name = "BASIS_MOLOPT"
    potential_file: Name = "GTH_POTENTIALS"
    cutoff_ry: Annotated[float, _NUMBER, Field(gt=0, le=10000)] = Field(
        300.0, description="Rydberg: the finest multigrid's plane-wave cutoff (MGRID CUTOFF)"
    )
    rel_cutoff_ry: Annotated[float, _NUMBER, Field(gt=0, le=1000)] = Field(
        40.0, description="Rydberg: the Gaussian-to-grid mapping cutoff (MGRID REL_CUTOFF)"
    )
    eps_scf: Annotated[float, _NUMBER, Field(gt=0, lt=1e-2)] = Field(
        1e-6, description="SCF convergence on the density (Hartree), inner and outer loop"
    )
    max_scf: Annotated[int, _NUMBER, Field(gt=0, le=10**4)] = Field(
        30, description="orbital-transformation (OT) steps per outer SCF iteration"
    )
    outer_max_scf: Annotated[int, _NUMBER, Field(gt=0, le=10**3)] = Field(
        10, description="outer SCF iterations; an SCF not converged after them fails"
    )
    command: Name = Field(
        "cp2k_shell", description="the cp2k_shell executable, on PATH or as a path"
    )
    kinds: dict[str, CP2KKind] = Field(
        default_factory=dict,
        description="per element symbol: a basis and potential (and their files) that "
        "replace the names above for that element",
    )

    @field_validator("kinds")
    @classmethod
    def _element_symbols(cls, v: dict[str, CP2KKind]) -> dict[str, CP2KKind]:
        from ase.data import chemical_symbols

        unknown = sorted(k for k in v if k not in chemical_symbols[1:])
        if unknown:
            raise ValueError(f"not element symbols: {', '.join(unknown)}")
        return v


class SCFConfig(Section):
    """SCF convergence, wall-clock limit and the ordered recovery ladder."""

    conv_tol: PositiveFloat = 1e-9
    max_cycle: Annotated[int, _NUMBER, Field(gt=0, le=10**6)] = 100
    timeout_s: PositiveFloat = 3600.0
    recovery: list[Literal[SCF_STRATEGIES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["diis", "damping_levelshift", "newton", "initial_guess"]
    )
    damping: Annotated[float, _NUMBER, Field(ge=0, lt=1)] = 0.5
    level_shift_hartree: NonNegativeFloat = 0.25
    stability_rounds: Annotated[int, _NUMBER, Field(ge=1, le=20)] = Field(
        3,
        description="times an internally unstable SCF solution is followed downhill and "
        "re-converged before the label fails as unstable",
    )

    @field_validator("recovery", mode="before")
    @classmethod
    def _no_smearing_rung(cls, v: Any) -> Any:
        if isinstance(v, list) and "smearing" in v:
            raise ValueError(
                "'smearing' is no longer a recovery strategy: a smeared SCF is another "
                "surface (its forces are free-energy derivatives), so a rescue by smearing "
                "would mix two surfaces under one settings hash; set "
                "dft.periodic.smearing_hartree to label every structure smeared"
            )
        return v

    @field_validator("recovery")
    @classmethod
    def _nonempty_unique(cls, v: list[str]) -> list[str]:
        _require_items(v, "the recovery ladder needs at least one strategy")
        if len(set(v)) != len(v):
            raise ValueError("each strategy may appear once")
        return v


class GeometryGuard(Section):
    """Checks run before any DFT is spent on a structure."""

    min_distance_factor: Annotated[float, _NUMBER, Field(gt=0, le=1)] = 0.5


class DFTConfig(Section):
    """Reference method for labelling (PySCF, or CP2K for periodic cells)."""

    engine: Engine = Field(
        Engine.PYSCF,
        description="pyscf (molecules, and Γ-point cells) or cp2k (periodic cells with "
        "stress; the 'cp2k' section)",
    )
    method: Literal["HF", "DFT"] = "DFT"
    xc: Name = "PBE"
    basis: Name = "def2-SVP"
    density_fit: Bool = False
    auxbasis: Name | None = None
    grid_level: Annotated[int, _NUMBER, Field(ge=0, le=9)] = 3
    dispersion: Literal["d3bj", "d3zero", "d4"] | None = None
    ecp: Name = Field(
        "auto",
        description="effective core potentials: 'auto' takes the basis's own for def2-* "
        "sets (elements beyond Kr), 'none' runs all-electron, another value names a PySCF "
        "ECP; periodic systems use periodic.pseudo instead",
    )
    spin: SpinPolicy = Field(
        SpinPolicy.RESTRICTED,
        description="a singlet whose restricted solution is unstable towards an "
        "unrestricted one: 'restricted' keeps it and flags the label, 'broken_symmetry' "
        "re-solves unrestricted from the unstable orbitals",
    )
    periodic: PeriodicDFT = PeriodicDFT()
    cp2k: CP2KDFT = CP2KDFT()
    scf: SCFConfig = SCFConfig()
    guard: GeometryGuard = GeometryGuard()

    @model_validator(mode="after")
    def _engine_supports(self) -> DFTConfig:
        if self.engine is not Engine.CP2K:
            return self
        if self.method != "DFT":
            raise ValueError("engine cp2k: only method DFT (Quickstep GPW) is supported")
        if self.dispersion is not None:
            raise ValueError("engine cp2k: dispersion is not supported yet; leave it out")
        if self.spin is not SpinPolicy.RESTRICTED:
            raise ValueError(
                "engine cp2k: only dft.spin 'restricted' (no broken-symmetry re-solve)"
            )
        if self.periodic.smearing_hartree:
            raise ValueError(
                "engine cp2k: smearing is not supported yet (its OT solver is for gapped "
                "systems); set dft.periodic.smearing_hartree to 0"
            )
        return self

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class ModelConfig(Section):
    """MACE committee hyperparameters; defaults are small and CPU-friendly."""

    committee_size: Annotated[int, _NUMBER, Field(ge=2, le=32)] = 4
    seeds: list[Seed] | None = Field(None, description="one per member; default 0..K-1")
    bootstrap: Bool = False
    r_max: Annotated[float, _NUMBER, Field(gt=0, le=30)] = Field(5.0, description="Å")
    num_channels: Annotated[int, _NUMBER, Field(gt=0, le=4096)] = 16
    max_L: Annotated[int, _NUMBER, Field(ge=0, le=3)] = 0
    max_ell: Annotated[int, _NUMBER, Field(ge=1, le=4)] = 3
    correlation: Annotated[int, _NUMBER, Field(ge=1, le=4)] = 2
    num_interactions: Annotated[int, _NUMBER, Field(ge=1, le=4)] = 2
    num_radial_basis: Annotated[int, _NUMBER, Field(gt=0, le=1024)] = 8
    epochs: Annotated[int, _NUMBER, Field(gt=0, le=10**6)] = 60
    min_updates: NonNegativeInt = Field(
        0,
        description="more epochs for a small training set, so that it still gets at "
        "least this many optimizer steps (early iterations have a handful of frames)",
    )
    patience: PositiveInt = 20
    batch_size: PositiveInt = 4
    lr: PositiveFloat = 0.01
    ema_decay: Annotated[float, _NUMBER, Field(gt=0, lt=1)] | None = Field(
        None,
        description="evaluate and save an exponential moving average of the weights "
        "(MACE --ema); with a few frames and batch 4 the raw weights jump from step to "
        "step, and the average is markedly more accurate. None: off (MACE's default)",
    )
    energy_weight: NonNegativeFloat = 1.0
    forces_weight: NonNegativeFloat = 100.0
    stress_weight: NonNegativeFloat = Field(
        1.0, description="MACE --stress_weight, used when the training labels carry stress"
    )
    e0s: E0Source = Field(
        E0Source.ISOLATED_ATOMS,
        description="isolated-atom reference energies: 'isolated_atoms' labels each "
        "element's atom at the campaign's DFT settings (spin-polarised, ground-state "
        "multiplicity); 'average' is MACE's least-squares fit, rank-deficient when every "
        "frame has one composition",
    )
    valid_fraction: Annotated[float, _NUMBER, Field(gt=0, lt=1)] = 0.1
    dtype: Literal["float32", "float64"] = "float64"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    warm_start: Literal["none", "previous", "foundation"] = "previous"
    foundation_model: str | None = None
    finetune: FinetuneMode = Field(
        FinetuneMode.MULTIHEAD,
        description="with warm_start foundation: 'multihead' (MACE's replay fine-tuning, "
        "the foundation's head keeps training on replay_file) or 'naive' (all weights "
        "on the campaign's labels only)",
    )
    replay_file: str | None = Field(
        None,
        description="multihead fine-tuning: extxyz of the foundation's own training data "
        "(REF_energy, REF_forces), local: nothing is downloaded",
    )
    replay_samples: PositiveInt = Field(
        200,
        description="frames of replay_file each member replays, drawn by the member's seed "
        "(members replay different subsets)",
    )
    finetune_optimizer: Literal["mace", "campaign"] = Field(
        "mace",
        description="multihead fine-tuning: 'mace' (MACE's own learning rate 1e-4 and EMA "
        "0.99999) or 'campaign' (this section's lr and ema_decay, MACE's --force_mh_ft_lr)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.seeds is not None:
            if len(self.seeds) != self.committee_size:
                raise ValueError(
                    f"seeds has {len(self.seeds)} entries but committee_size is "
                    f"{self.committee_size}"
                )
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError("seeds must be distinct, or members would be identical")
        if self.warm_start == "foundation" and not self.foundation_model:
            raise ValueError("warm_start 'foundation' needs foundation_model (a file path)")
        if self.finetune_optimizer != "mace" and not self.multihead:
            raise ValueError(
                "model.finetune_optimizer: it applies to multihead fine-tuning only (other "
                "runs use lr and ema_decay as given); drop it"
            )
        if self.multihead:
            # MACE itself would fall back to naive fine-tuning with a warning
            if not self.replay_file:
                raise ValueError(
                    "model.finetune multihead needs model.replay_file: a local extxyz of "
                    "the foundation's training data (or set model.finetune: naive)"
                )
            if self.e0s is not E0Source.ISOLATED_ATOMS:
                raise ValueError(
                    "model.finetune multihead needs model.e0s isolated_atoms (MACE refuses "
                    "average E0s for multihead fine-tuning)"
                )
        return self

    @property
    def multihead(self) -> bool:
        """Whether members are fine-tuned from the foundation with multihead replay."""
        return self.warm_start == "foundation" and self.finetune is FinetuneMode.MULTIHEAD

    @property
    def member_seeds(self) -> list[int]:
        """Seed of each committee member."""
        return list(self.seeds) if self.seeds is not None else list(range(self.committee_size))


class ExploreStop(Section):
    """When a walker stops early."""

    force_dev_factor: Annotated[float, _NUMBER, Field(ge=1)] = Field(
        2.0, description="stop when max force deviation >= factor * trust hi"
    )
    min_distance_factor: Annotated[float, _NUMBER, Field(gt=0, le=1)] = 0.5
    max_bond_stretch: PositiveFloat = Field(
        2.5, description="non-periodic: a fragment farther than this x covalent length"
    )
    max_volume_ratio: Annotated[float, _NUMBER, Field(gt=1, le=100)] = Field(
        1.5,
        description="periodic: stop a walker whose cell volume leaves [start / this, "
        "start x this] (an NPT cell collapsing or exploding on a virial it was not "
        "trained on)",
    )


class UncertaintyBiasConfig(Section):
    """Uncertainty-driven dynamics: E_bias = A [exp(-var(E) / (N B^2)) - 1] on the
    committee's energy variance (aloop/explore/bias.py)."""

    strength_ev: PositiveFloat = Field(
        description="A, eV: the deepest the bias goes (where the committee disagrees most)"
    )
    width_ev: PositiveFloat = Field(
        description="B, eV: the committee energy deviation per square-root atom at which "
        "the bias is felt"
    )


class ExploreConfig(Section):
    """Committee-driven MD exploration."""

    ensemble: Literal["nvt", "nve", "npt"] = "nvt"
    temperatures: list[Temperature] = Field(default_factory=lambda: [300.0])
    pressures_gpa: list[Pressure] = Field(default_factory=list)
    #: above 10 fs even hydrogen-free MD integrates nothing but noise
    timestep_fs: Annotated[float, _NUMBER, Field(gt=0, le=10)] = 0.5
    friction_per_fs: PositiveFloat = 0.01
    barostat_time_fs: Annotated[float, _NUMBER, Field(gt=0, le=1e6)] = Field(
        500.0,
        description="fs, NPT: the MTK barostat's damping time; longer moves the cell "
        "more slowly (a committee that has seen few volumes drives a fast barostat far)",
    )
    steps: PositiveInt = 1000
    sample_interval: PositiveInt = 10
    walkers_per_system: Annotated[int, _NUMBER, Field(gt=0, le=10**5)] = 4
    stop: ExploreStop = ExploreStop()
    seed: Seed = 0
    uncertainty_bias: UncertaintyBiasConfig | None = Field(
        None,
        description="push the walkers toward what the committee disagrees on (NVT, NVE); "
        "off by default",
    )

    @field_validator("temperatures")
    @classmethod
    def _nonempty(cls, v: list[float]) -> list[float]:
        return _require_items(v, "at least one temperature is needed")

    @model_validator(mode="after")
    def _sampling_fits(self) -> ExploreConfig:
        if self.sample_interval > self.steps:
            raise ValueError(
                f"sample_interval ({self.sample_interval}) exceeds steps ({self.steps}): "
                "no frame would be sampled"
            )
        frames = self.walkers_per_system * (self.steps // self.sample_interval)
        if frames > MAX_FRAMES:
            raise ValueError(
                f"explore.steps: {self.walkers_per_system} walkers x {self.steps} steps / "
                f"sample_interval {self.sample_interval} = {frames:.3g} frames per system "
                f"per iteration, more than the {MAX_FRAMES:.0e} that fit in memory"
            )
        if self.ensemble == "npt" and not self.pressures_gpa:
            raise ValueError("ensemble 'npt' needs pressures_gpa")
        if self.ensemble == "npt" and self.uncertainty_bias is not None:
            raise ValueError(
                "uncertainty_bias: it has no stress term, so it cannot drive NPT walkers "
                "(use nvt or nve, or drop the bias)"
            )
        return self


class SelectConfig(Section):
    """Trust-window classification and diverse selection of candidates."""

    trust: TrustWindow = TrustWindow()
    max_per_system: PositiveInt = 10
    diversity: Literal[
        "fps", "weighted_fps", "seeded_fps", "kmeans", "weighted_kmeans", "random"
    ] = Field(
        "fps",
        description="fps: farthest-point from the most uncertain candidate; weighted_fps: "
        "each distance times the frame's uncertainty; seeded_fps: farthest-point counting "
        "distances to the training set (not the hold-out); kmeans: the frame nearest each "
        "centroid; weighted_kmeans: k-means weighted by uncertainty; random",
    )
    dedupe_distance: NonNegativeFloat = 1e-3
    adaptive_lo: Bool = False
    holdout_per_system: NonNegativeInt = Field(
        2,
        description="explored frames per system and iteration labelled as hold-out "
        "(never trained on): the campaign's unbiased error estimate",
    )
    seed: Seed = 0


class StopConfig(Section):
    """Convergence criteria of the campaign."""

    max_iterations: PositiveInt = 10
    accurate_ratio: Annotated[float, _NUMBER, Field(gt=0, le=1)] = 0.95
    patience: PositiveInt = 2
    scope: Literal["all", "per_system"] = "all"
    force_error_target: PositiveFloat | None = Field(
        None, description="eV/Å: the committee's force RMSE on the accumulated hold-out"
    )
    stress_error_target_gpa: PositiveFloat | None = Field(
        None,
        description="GPa: with force_error_target, the hold-out rule also needs the "
        "committee's stress RMSE on the hold-out's cells below this",
    )
    holdout_min_frames: PositiveInt = Field(
        10, description="hold-out frames needed before force_error_target is read"
    )
    min_completed_walkers: Annotated[float, _NUMBER, Field(ge=0, le=1)] = Field(
        0.9,
        description="fraction of the last iteration's walkers that must have run every "
        "step before force_error_target is read (a low error on the frames of walkers "
        "that blow up is no convergence)",
    )
    adaptive_lo_tolerance: PositiveFloat = Field(
        0.01,
        description="eV/Å (or calibrated units), with select.adaptive_lo: the adaptive "
        "level counts as settled when it spans less than this over the last `patience` "
        "+ 1 iterations",
    )


class InitialConfig(Section):
    """Iteration 0: labelled perturbations of the starting structures."""

    rattled_per_structure: Annotated[int, _NUMBER, Field(ge=0, le=10**5)] = 8
    #: beyond 1 Å per coordinate a rattle tears the molecule apart
    rattle_stdev: Annotated[float, _NUMBER, Field(gt=0, le=1)] = Field(0.05, description="Å")
    strained_per_structure: Annotated[int, _NUMBER, Field(ge=0, le=10**5)] = Field(
        0,
        description="periodic starting cells only: strained and rattled copies, so the "
        "committee sees other volumes and cell shapes (the virial) before NPT exploration",
    )
    max_volumetric_strain: Annotated[float, _NUMBER, Field(ge=0, lt=0.5)] = Field(
        0.08,
        description="each strained copy's isotropic linear strain is drawn uniformly from "
        "[-this, +this] (0.08: volumes from 0.78 to 1.26 of the start)",
    )
    max_shear_strain: Annotated[float, _NUMBER, Field(ge=0, lt=0.5)] = Field(
        0.04, description="each off-diagonal strain component drawn from [-this, +this]"
    )

    @model_validator(mode="after")
    def _cells_stay_cells(self) -> InitialConfig:
        # the strain's smallest eigenvalue is at least 1 - volumetric - 2 * shear
        if self.max_volumetric_strain + 2 * self.max_shear_strain >= 0.5:
            raise ValueError(
                "max_volumetric_strain + 2 x max_shear_strain must stay below 0.5, or a "
                "strained cell can be squashed flat or inverted"
            )
        return self

    seed: Seed = 0


class DatabaseConfig(Section):
    """Where documents live; ALOOP_DB_URI overrides it."""

    uri: str | None = None

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is None:
            return v
        schemes = ("mongodb://", "mongodb+srv://", "embedded://", "memory://")
        if not v.startswith(schemes):
            raise ValueError(f"unknown database URI scheme; expected one of {', '.join(schemes)}")
        return v


class ExecutionConfig(Section):
    """How work is spread over the machine."""

    label_workers: Annotated[int, _NUMBER, Field(gt=0, le=4096)] | None = Field(
        None, description="default: from the machine"
    )
    label_threads: Annotated[int, _NUMBER, Field(gt=0, le=4096)] | None = None
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
