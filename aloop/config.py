"""Campaign configuration: the YAML schema, validated by pydantic.

Every section rejects unknown keys so that a typo never silently falls back to a default,
and every physical check names the key path it concerns. Units follow DESIGN.md: K, GPa,
fs, Å, eV/Å; Hartree and Bohr appear only inside dft/.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]

#: Settings added after campaigns were first stored, with the value that reproduces the
#: behaviour from before they existed. At that value they stay out of the result hash,
#: so a stored campaign resumes after an upgrade instead of being refused as changed.
HASH_NEUTRAL_DEFAULTS: dict[tuple[str, str], object] = {
    ("model", "min_updates"): 0,
    ("model", "ema_decay"): None,
}

SCF_STRATEGIES = ("diis", "damping_levelshift", "newton", "initial_guess", "smearing")


class ConfigError(ValueError):
    """A campaign file that cannot be used; ``problems`` holds one line per error."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


class _Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrustWindow(_Section):
    """Committee force-deviation window in eV/Å: [lo, hi) is the candidate band."""

    lo: NonNegativeFloat = 0.05
    hi: PositiveFloat = 0.30

    @model_validator(mode="after")
    def _lo_below_hi(self) -> TrustWindow:
        if self.lo >= self.hi:
            raise ValueError(f"lo ({self.lo}) must be smaller than hi ({self.hi})")
        return self


class SystemConfig(_Section):
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


class PeriodicDFT(_Section):
    """Options for periodic cells (pyscf.pbc at the Gamma point)."""

    pseudo: str = "gth-pade"
    basis: str = "gth-szv"
    ke_cutoff_hartree: PositiveFloat | None = None
    multigrid: bool = Field(True, description="needed for analytic RKS Gamma gradients")
    smearing_hartree: NonNegativeFloat = 0.0


class SCFConfig(_Section):
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
        if not v:
            raise ValueError("the recovery ladder needs at least one strategy")
        if len(set(v)) != len(v):
            raise ValueError("each strategy may appear once")
        return v


class GeometryGuard(_Section):
    """Checks run before any DFT is spent on a structure."""

    min_distance_factor: Annotated[float, Field(gt=0, le=1)] = 0.5


class DFTConfig(_Section):
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


class ModelConfig(_Section):
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


class ExploreStop(_Section):
    """When a walker stops early."""

    force_dev_factor: Annotated[float, Field(ge=1)] = Field(
        2.0, description="stop when max force deviation >= factor * trust hi"
    )
    min_distance_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    max_bond_stretch: PositiveFloat = Field(
        2.5, description="non-periodic: a fragment farther than this x covalent length"
    )


class ExploreConfig(_Section):
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
        if not v:
            raise ValueError("at least one temperature is needed")
        return v

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


class SelectConfig(_Section):
    """Trust-window classification and diverse selection of candidates."""

    trust: TrustWindow = TrustWindow()
    max_per_system: PositiveInt = 10
    diversity: Literal["fps", "weighted_fps", "kmeans", "random"] = "fps"
    dedupe_distance: NonNegativeFloat = 1e-3
    adaptive_lo: bool = False
    seed: int = 0


class StopConfig(_Section):
    """Convergence criteria of the campaign."""

    max_iterations: PositiveInt = 10
    accurate_ratio: Annotated[float, Field(gt=0, le=1)] = 0.95
    patience: PositiveInt = 2
    scope: Literal["all", "per_system"] = "all"
    force_error_target: PositiveFloat | None = Field(None, description="eV/Å")


class InitialConfig(_Section):
    """Iteration 0: labelled perturbations of the starting structures."""

    rattled_per_structure: Annotated[int, Field(ge=0)] = 8
    rattle_stdev: PositiveFloat = Field(0.05, description="Å")
    seed: int = 0


class DatabaseConfig(_Section):
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


class ExecutionConfig(_Section):
    """How work is spread over the machine."""

    label_workers: PositiveInt | None = Field(None, description="default: from the machine")
    label_threads: PositiveInt | None = None
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None


class CampaignConfig(_Section):
    """A whole active-learning campaign as written in its YAML file."""

    campaign: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    systems: Annotated[list[SystemConfig], Field(min_length=1)]
    initial: InitialConfig = InitialConfig()
    dft: DFTConfig = DFTConfig()
    model: ModelConfig = ModelConfig()
    explore: ExploreConfig = ExploreConfig()
    select: SelectConfig = SelectConfig()
    stop: StopConfig = StopConfig()
    database: DatabaseConfig = DatabaseConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @field_validator("systems")
    @classmethod
    def _unique_names(cls, v: list[SystemConfig]) -> list[SystemConfig]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"system names must be unique; repeated: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> CampaignConfig:
        base_dir = Path((info.context or {}).get("base_dir", "."))
        for i, system in enumerate(self.systems):
            _check_system_structure(system, i, base_dir)
            window = self.trust_window(system.name)
            stop_at = self.explore.stop.force_dev_factor * window.hi
            if stop_at <= window.lo:
                raise ValueError(f"systems.{i}: the walker stop threshold is below trust lo")
        if self.model.foundation_model and self.model.warm_start == "foundation":
            path = resolve_path(self.model.foundation_model, base_dir)
            if not path.is_file():
                raise ValueError(f"model.foundation_model: file not found: {path}")
        return self

    def system(self, name: str) -> SystemConfig:
        """The system called ``name``."""
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(name)

    def trust_window(self, name: str) -> TrustWindow:
        """The trust window in force for system ``name``."""
        return self.system(name).trust or self.select.trust

    def temperatures(self, name: str) -> list[float]:
        """Exploration temperatures (K) for system ``name``."""
        return self.system(name).temperatures or self.explore.temperatures

    def result_hash(self) -> str:
        """sha256 of everything that changes the campaign's results.

        Execution and database settings move work around but do not change any number,
        so they are left out: a campaign may be resumed with more workers. The stopping
        rules decide how many iterations run, not what any iteration computes, so they
        are left out too: raising the iteration cap continues a stopped campaign.
        """
        data = self.model_dump(
            mode="json", exclude={"execution", "database", "description", "stop"}
        )
        for (section, key), neutral in HASH_NEUTRAL_DEFAULTS.items():
            if data[section].get(key) == neutral:
                del data[section][key]
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def resolve_path(path: str, base_dir: Path) -> Path:
    """A path from the config, relative to the config file's folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def _check_system_structure(system: SystemConfig, index: int, base_dir: Path) -> None:
    """Load the starting geometry once to check it exists and that charge/spin fit it."""
    from aloop.structures import electron_count, load_system_structures

    where = f"systems.{index}"
    try:
        frames = load_system_structures(system, base_dir)
    except (OSError, ValueError, KeyError) as exc:
        key = "molecule" if system.molecule else "structure"
        raise ValueError(f"{where}.{key}: {exc}") from None
    for atoms in frames:
        electrons = electron_count(atoms, system.charge)
        unpaired = system.multiplicity - 1
        if electrons < 0:
            raise ValueError(f"{where}.charge: {system.charge} leaves a negative electron count")
        if unpaired > electrons or (electrons - unpaired) % 2:
            raise ValueError(
                f"{where}.multiplicity: {system.multiplicity} is impossible with "
                f"{electrons} electrons (charge {system.charge}); parity must match"
            )


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_KEYED_MESSAGE = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)+): ")


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = _format_loc(err["loc"])
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        # Cross-checks name a deeper key themselves ("systems.0.charge: ...").
        keyed = _KEYED_MESSAGE.match(msg)
        if keyed and (not err["loc"] or keyed.group(1).startswith(loc)):
            lines.append(msg)
        else:
            lines.append(f"{loc}: {msg}")
    return lines


def parse_config(
    data: Any, base_dir: Path | str = ".", source: str | None = None
) -> CampaignConfig:
    """Validate a config mapping; raise :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping of sections"], source)
    try:
        return CampaignConfig.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc), source) from None


def load_config(path: Path | str) -> CampaignConfig:
    """Read and validate a campaign YAML file.

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, or fails validation; one line per problem.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read file: {exc.strerror}"], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"(yaml) {where}{problem}"], str(path)) from None
    return parse_config(data, base_dir=path.parent, source=str(path))
