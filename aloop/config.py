"""Campaign configuration: the YAML schema, validated by pydantic.

Every section rejects unknown keys so that a typo never silently falls back to a default,
and every physical check names the key path it concerns. The sections are defined in
:mod:`aloop.config_sections` and importable from here; this module assembles them into
:class:`CampaignConfig`, hashes it and turns validation errors into one line per problem.
Structure files are read by :mod:`aloop.structures`, not here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from aloop.config_file import CampaignFileError, read_campaign_yaml
from aloop.config_sections import (
    CP2KDFT,
    SCF_STRATEGIES,
    DatabaseConfig,
    DFTConfig,
    ExecutionConfig,
    ExploreConfig,
    ExploreStop,
    GeometryGuard,
    InitialConfig,
    ModelConfig,
    PeriodicDFT,
    SCFConfig,
    Section,
    SelectConfig,
    StopConfig,
    SystemConfig,
    TrustWindow,
    UncertaintyBiasConfig,
)
from aloop.errors import UserError
from aloop.structures import check_system_structures, resolve_path
from aloop.vocabulary import E0Source, Engine, FinetuneMode, SpinPolicy

__all__ = [
    "CP2KDFT",
    "HASH_NEUTRAL_DEFAULTS",
    "SCF_STRATEGIES",
    "CampaignConfig",
    "ConfigCheck",
    "ConfigError",
    "DFTConfig",
    "DatabaseConfig",
    "ExecutionConfig",
    "ExploreConfig",
    "ExploreStop",
    "GeometryGuard",
    "InitialConfig",
    "ModelConfig",
    "PeriodicDFT",
    "SCFConfig",
    "SelectConfig",
    "StopConfig",
    "SystemConfig",
    "TrustWindow",
    "UncertaintyBiasConfig",
    "config_field",
    "from_section",
    "load_config",
    "parse_config",
]

#: Settings added after campaigns were first stored (section, dotted key), with their
#: default. At that value they stay out of the result hash, so a stored campaign resumes
#: after an upgrade instead of being refused as changed. Where the default computes
#: something new (the label protocol, explicit E0s), the change shows where it happens:
#: labels carry a new settings hash (stale ones are relabelled on resume, see
#: flows/relabel.py) and each model stores its hyperparameters.
HASH_NEUTRAL_DEFAULTS: dict[tuple[str, str], object] = {
    ("model", "min_updates"): 0,
    ("model", "finetune_optimizer"): "mace",
    ("explore", "uncertainty_bias"): None,  # not vocabulary: the config section
    ("model", "ema_decay"): None,
    ("model", "stress_weight"): 1.0,
    ("model", "e0s"): E0Source.ISOLATED_ATOMS,
    ("dft", "ecp"): "auto",
    ("dft", "spin"): SpinPolicy.RESTRICTED,
    ("dft", "scf.stability_rounds"): 3,
    ("dft", "engine"): Engine.PYSCF,
    ("explore", "stop.max_volume_ratio"): 1.5,  # not vocabulary: the config section
    ("initial", "strained_per_structure"): 0,  # not vocabulary: the config section
    ("initial", "max_volumetric_strain"): 0.08,  # not vocabulary
    ("initial", "max_shear_strain"): 0.04,  # not vocabulary
    ("dft", "cp2k"): CP2KDFT().model_dump(mode="json"),  # not vocabulary
    ("select", "trust.calibrated"): False,  # not vocabulary: the config section
    ("explore", "barostat_time_fs"): 500.0,  # not vocabulary: the config section
    # The stress window is off unless set: every stored campaign keeps its verdicts.
    ("select", "trust.stress_lo_gpa"): None,  # not vocabulary
    ("select", "trust.stress_hi_gpa"): None,  # not vocabulary
    # A resumed campaign starts drawing its hold-out at the next exploration: the frames
    # show it (verdict holdout), and the earlier iterations' labels are unchanged.
    ("select", "holdout_per_system"): 2,  # not vocabulary: the config section
}


T = TypeVar("T")

#: Metadata key under which :func:`config_field` records where a field is configured.
_CONFIG_KEY = "aloop.config.key"


class ConfigError(UserError):
    """A campaign file that cannot be used; ``problems`` holds one line per error.

    A :class:`~aloop.errors.UserError`, and so a ``ValueError``.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


class CampaignConfig(Section):
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
            check_system_structures(
                system, f"systems.{i}", base_dir, self.dft.guard.min_distance_factor
            )
            window = self.trust_window(system.name)
            stop_at = self.explore.stop.force_dev_factor * window.hi
            if stop_at <= window.lo:
                raise ValueError(f"systems.{i}: the walker stop threshold is below trust lo")
        if self.stop.force_error_target is not None and self.select.holdout_per_system == 0:
            raise ValueError(
                "stop.force_error_target: the hold-out error it reads is never measured "
                "with select.holdout_per_system: 0 (draw hold-out frames, or drop the target)"
            )
        if self.stop.stress_error_target_gpa is not None and self.stop.force_error_target is None:
            raise ValueError(
                "stop.stress_error_target_gpa: it is read with the hold-out rule; set "
                "stop.force_error_target too"
            )
        if self.stop.stress_error_target_gpa is not None and all(
            s.molecule is not None or s.pbc is False for s in self.systems
        ):
            raise ValueError(
                "stop.stress_error_target_gpa: no system is a periodic cell, so no hold-out "
                "frame has a stress to measure; drop the target"
            )
        if self.model.foundation_model and self.model.warm_start == "foundation":
            path = resolve_path(self.model.foundation_model, base_dir)
            if not path.is_file():
                raise ValueError(f"model.foundation_model: file not found: {path}")
        if self.model.multihead:
            path = resolve_path(self.model.replay_file, base_dir)
            if not path.is_file():
                raise ValueError(f"model.replay_file: file not found: {path}")
        return self

    def system(self, name: str) -> SystemConfig:
        """The system called ``name``."""
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(name)

    def _files_read(self) -> list[str]:
        """The model keys naming files whose content makes the results: the foundation
        of a foundation start, and the replay file of a multihead one."""
        if self.model.warm_start != "foundation":
            return []
        return ["foundation_model", "replay_file"] if self.model.multihead else ["foundation_model"]

    def earlier_result_hashes(self) -> list[str]:
        """Hashes these same settings had under earlier hashing rules (a foundation's
        files counted by path): a campaign stored under one resumes, its hash updated."""
        if not self._files_read():
            return []
        return [self.result_hash()]

    def trust_window(self, name: str) -> TrustWindow:
        """The trust window in force for system ``name``."""
        return self.system(name).trust or self.select.trust

    def temperatures(self, name: str) -> list[float]:
        """Exploration temperatures (K) for system ``name``."""
        return self.system(name).temperatures or self.explore.temperatures

    def result_hash(self, base_dir: Path | str | None = None) -> str:
        """sha256 of everything that changes the campaign's results.

        Execution and database settings move work around but do not change any number,
        so they are left out: a campaign may be resumed with more workers. The stopping
        rules decide how many iterations run, not what any iteration computes, so they
        are left out too: raising the iteration cap continues a stopped campaign.

        With ``base_dir`` (the campaign file's folder) the files a foundation start
        reads (the model, the replay file) count by their content, not their path: a
        foundation replaced under the same name makes another campaign, a file moved
        does not.
        """
        data = self.model_dump(
            mode="json", exclude={"execution", "database", "description", "stop"}
        )
        for (section, key), neutral in HASH_NEUTRAL_DEFAULTS.items():
            *parents, leaf = key.split(".")
            holder = data[section]
            for part in parents:
                holder = holder[part]
            if leaf in holder and holder[leaf] == neutral:
                del holder[leaf]
        _drop_unread_finetune_settings(data["model"])
        if base_dir is not None:
            for key in self._files_read():
                data["model"][key] = (
                    f"sha256:{_file_sha256(resolve_path(data['model'][key], base_dir), key)}"
                )
        for system in data["systems"]:  # a system's own trust window, as select's
            trust = system.get("trust") or {}
            for (section, key), neutral in HASH_NEUTRAL_DEFAULTS.items():
                leaf = key.removeprefix("trust.")
                in_select = section == "select"  # not vocabulary: the config section
                if in_select and leaf != key and leaf in trust and trust[leaf] == neutral:
                    del trust[leaf]
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


#: Fine-tuning settings added later (model section), and their values in campaigns stored
#: before: a foundation start then fine-tuned naively and replayed nothing.
_FINETUNE_BEFORE = {"finetune": FinetuneMode.NAIVE.value, "replay_file": None}
_FINETUNE_UNREAD = ("finetune", "replay_file", "replay_samples", "finetune_optimizer")


def _file_sha256(path: Path, key: str) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise UserError(f"model.{key}: cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _drop_unread_finetune_settings(model: dict) -> None:
    """Leave the fine-tuning settings out of the result hash where they change nothing
    (no foundation start), or where they say what stored campaigns did (naive, no
    replay): such a campaign resumes under the hash it was stored with."""
    unread = model.get("warm_start") != "foundation" or all(
        model.get(k) == v for k, v in _FINETUNE_BEFORE.items()
    )
    if unread:
        for key in _FINETUNE_UNREAD:
            model.pop(key, None)


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_KEYED_MESSAGE = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)+): ")


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        # One line per problem, whatever a message quotes (a file's, ase.io's text).
        msg = " ".join(err["msg"].removeprefix("Value error, ").split())
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


#: A check of a validated campaign that needs an outer layer (dft/ asks PySCF whether a
#: basis set exists): it takes the campaign and the folder of its file and returns one
#: line per problem, each starting with the key path.
ConfigCheck = Callable[[CampaignConfig, Path], list[str]]


def load_config(path: Path | str, checks: Sequence[ConfigCheck] = ()) -> CampaignConfig:
    """Read and validate a campaign YAML file, then run ``checks`` on it.

    Raises
    ------
    ConfigError
        The file is missing, not a regular UTF-8 file, not YAML (or repeats a key), fails
        validation or one of ``checks``; one line per problem.
    """
    path = Path(path)
    try:
        data = read_campaign_yaml(path)
    except CampaignFileError as exc:
        raise ConfigError([str(exc)], str(path)) from None
    cfg = parse_config(data, base_dir=path.parent, source=str(path))
    problems = [p for check in checks for p in check(cfg, path.parent)]
    if problems:
        raise ConfigError(problems, str(path))
    return cfg


def _value_at(section: Section, key: str) -> Any:
    """The value at the dotted ``key`` of ``section``; lists come back as tuples."""
    value: Any = section
    for part in key.split("."):
        value = getattr(value, part)
    return tuple(value) if isinstance(value, list) else value


def config_field(defaults: Section, key: str) -> Any:
    """A dataclass field set from the config key ``key`` (dotted, within a section).

    Its default is the schema's, read from ``defaults`` (the section at its defaults), so
    the value is defined once, in the schema; :func:`from_section` fills it from a
    campaign's section.
    """
    return dataclasses.field(default=_value_at(defaults, key), metadata={_CONFIG_KEY: key})


def from_section(cls: type[T], section: Section, **values: Any) -> T:
    """An instance of the dataclass ``cls``: each :func:`config_field` read from
    ``section``, the other fields from ``values`` (or their defaults)."""
    configured = {
        f.name: _value_at(section, f.metadata[_CONFIG_KEY])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if _CONFIG_KEY in f.metadata
    }
    return cls(**configured, **values)
