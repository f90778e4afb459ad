"""The sections of the campaign schema: one pydantic model per YAML section.

:mod:`aloop.config` assembles them into :class:`~aloop.config.CampaignConfig` and is
where they are imported from. Every section rejects unknown keys and is frozen. Units
follow DESIGN.md: K, GPa, fs, Å, eV/Å; Hartree and Bohr appear only inside dft/.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]

SCF_STRATEGIES = ("diis", "damping_levelshift", "newton", "initial_guess", "smearing")


def _require_items(values: list, message: str) -> list:
    """``values``, unless it is empty: then a validation error saying ``message``."""
    if not values:
        raise ValueError(message)
    return values


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrustWindow(Section):
    """Committee force-deviation window in eV/Å: [lo, hi) is the candidate band."""

    lo: NonNegativeFloat = 0.05
    hi: PositiveFloat = 0.30

    @model_validator(mode="after")
    def _lo_below_hi(self) -> TrustWindow:
        if self.lo >= self.hi:
            raise ValueError(f"lo ({self.lo}) must be smaller than hi ({self.hi})")
        return self


class SystemConfig(Section):
    """One chemical system explored by the campaign.

    Exactly one of ``molecule`` (an ``ase.build.molecule`` name) or ``structure`` (a file
    readable by ``ase.io``, relative to the campaign file) gives the starting geometry.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")]
    molecule: str | None = None
    structure: str | None = None
    index: str = Field(":", description="ase.io index into the structure file")
    charge: int = 0
    multiplicity: PositiveInt = 1
    pbc: bool | None = Field(None, description="override the periodicity from the file")
    temperatures: list[PositiveFloat] | None = Field(None, description="K; overrides explore")
    pressures_gpa: list[float] | None = None
    trust: TrustWindow | None = Field(None, description="overrides select.trust")

    @model_validator(mode="after")
    def _one_source(self) -> SystemConfig:
        if (self.molecule is None) == (self.structure is None):
            raise ValueError("give exactly one of 'molecule' or 'structure'")
        return self


class PeriodicDFT(Section):
    """Options for periodic cells (pyscf.pbc at the Gamma point)."""

    pseudo: str = "gth-pade"
    basis: str = "gth-szv"
    ke_cutoff_hartree: PositiveFloat | None = None
    multigrid: bool = Field(True, description="needed for analytic RKS Gamma gradients")
    smearing_hartree: NonNegativeFloat = 0.0


class SCFConfig(Section):
    """SCF convergence, wall-clock limit and the ordered recovery ladder."""

    conv_tol: PositiveFloat = 1e-9
    max_cycle: PositiveInt = 100
    timeout_s: PositiveFloat = 3600.0
    recovery: list[Literal[SCF_STRATEGIES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["diis", "damping_levelshift", "newton", "initial_guess"]
    )
    damping: Annotated[float, Field(ge=0, lt=1)] = 0.5
    level_shift_hartree: NonNegativeFloat = 0.25

    @field_validator("recovery")
    @classmethod
    def _nonempty_unique(cls, v: list[str]) -> list[str]:
        _require_items(v, "the recovery ladder needs at least one strategy")
        if len(set(v)) != len(v):
            raise ValueError("each strategy may appear once")
        return v


class GeometryGuard(Section):
    """Checks run before any DFT is spent on a structure."""

    min_distance_factor: Annotated[float, Field(gt=0, le=1)] = 0.5


class DFTConfig(Section):
    """Reference method for labelling (PySCF)."""

    method: Literal["HF", "DFT"] = "DFT"
    xc: str = "PBE"
    basis: str = "def2-SVP"
    density_fit: bool = False
    auxbasis: str | None = None
    grid_level: Annotated[int, Field(ge=0, le=9)] = 3
    dispersion: Literal["d3bj", "d3zero", "d4"] | None = None
    periodic: PeriodicDFT = PeriodicDFT()
    scf: SCFConfig = SCFConfig()
    guard: GeometryGuard = GeometryGuard()

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class ModelConfig(Section):
    """MACE committee hyperparameters; defaults are small and CPU-friendly."""

    committee_size: Annotated[int, Field(ge=2, le=32)] = 4
    seeds: list[int] | None = Field(None, description="one per member; default 0..K-1")
    bootstrap: bool = False
    r_max: PositiveFloat = 5.0
    num_channels: PositiveInt = 16
    max_L: Annotated[int, Field(ge=0, le=3)] = 0
    max_ell: Annotated[int, Field(ge=1, le=4)] = 3
    correlation: Annotated[int, Field(ge=1, le=4)] = 2
    num_interactions: Annotated[int, Field(ge=1, le=4)] = 2
    num_radial_basis: PositiveInt = 8
    epochs: PositiveInt = 60
    min_updates: NonNegativeInt = Field(
        0,
        description="more epochs for a small training set, so that it still gets at "
        "least this many optimizer steps (early iterations have a handful of frames)",
    )
    patience: PositiveInt = 20
    batch_size: PositiveInt = 4
    lr: PositiveFloat = 0.01
    ema_decay: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None,
        description="evaluate and save an exponential moving average of the weights "
        "(MACE --ema); with a few frames and batch 4 the raw weights jump from step to "
        "step, and the average is markedly more accurate. None: off (MACE's default)",
    )
    energy_weight: NonNegativeFloat = 1.0
    forces_weight: NonNegativeFloat = 100.0
    valid_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    dtype: Literal["float32", "float64"] = "float64"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    warm_start: Literal["none", "previous", "foundation"] = "previous"
    foundation_model: str | None = None

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
        return self

    @property
    def member_seeds(self) -> list[int]:
        """Seed of each committee member."""
        return list(self.seeds) if self.seeds is not None else list(range(self.committee_size))


class ExploreStop(Section):
    """When a walker stops early."""

    force_dev_factor: Annotated[float, Field(ge=1)] = Field(
        2.0, description="stop when max force deviation >= factor * trust hi"
    )
    min_distance_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    max_bond_stretch: PositiveFloat = Field(
        2.5, description="non-periodic: a fragment farther than this x covalent length"
    )


class ExploreConfig(Section):
    """Committee-driven MD exploration."""

    ensemble: Literal["nvt", "nve", "npt"] = "nvt"
    temperatures: list[PositiveFloat] = Field(default_factory=lambda: [300.0])
    pressures_gpa: list[float] = Field(default_factory=list)
    timestep_fs: PositiveFloat = 0.5
    friction_per_fs: PositiveFloat = 0.01
    steps: PositiveInt = 1000
    sample_interval: PositiveInt = 10
    walkers_per_system: PositiveInt = 4
    stop: ExploreStop = ExploreStop()
    seed: int = 0

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
        if self.ensemble == "npt" and not self.pressures_gpa:
            raise ValueError("ensemble 'npt' needs pressures_gpa")
        return self


class SelectConfig(Section):
    """Trust-window classification and diverse selection of candidates."""

    trust: TrustWindow = TrustWindow()
    max_per_system: PositiveInt = 10
    diversity: Literal["fps", "weighted_fps", "kmeans", "random"] = "fps"
    dedupe_distance: NonNegativeFloat = 1e-3
    adaptive_lo: bool = False
    seed: int = 0


class StopConfig(Section):
    """Convergence criteria of the campaign."""

    max_iterations: PositiveInt = 10
    accurate_ratio: Annotated[float, Field(gt=0, le=1)] = 0.95
    patience: PositiveInt = 2
    scope: Literal["all", "per_system"] = "all"
    force_error_target: PositiveFloat | None = Field(None, description="eV/Å")


class InitialConfig(Section):
    """Iteration 0: labelled perturbations of the starting structures."""

    rattled_per_structure: Annotated[int, Field(ge=0)] = 8
    rattle_stdev: PositiveFloat = Field(0.05, description="Å")
    seed: int = 0


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

    label_workers: PositiveInt | None = Field(None, description="default: from the machine")
    label_threads: PositiveInt | None = None
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
