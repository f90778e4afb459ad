"""The foundation model a committee is fine-tuned from, and the replay data it keeps.

A campaign names two local files: the foundation model and (multihead fine-tuning) an
extxyz of the foundation's own training data. :meth:`FoundationStart.prepare` reads
them once per committee: it hashes both, reads the foundation's element table and checks
that the training frames and the replay frames are all in it (MACE cannot fine-tune an
element the foundation has no weights for, and says so only as an index error deep in
its loader). Each member then replays its own seed-drawn subset of the replay frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aloop.models.io import sha256_bytes
from aloop.records import REF_ENERGY, REF_FORCES
from aloop.structures import resolve_path
from aloop.vocabulary import FinetuneMode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ase import Atoms

    from aloop.config import CampaignConfig, ModelConfig


@dataclass(frozen=True)
class FoundationStart:
    """The foundation model every member is fine-tuned from, with its files resolved.

    ``replay`` (multihead only) is the local extxyz of the foundation's training data;
    each member replays ``replay_samples`` of its frames.
    """

    model: Path
    mode: FinetuneMode = FinetuneMode.MULTIHEAD
    replay: Path | None = None
    replay_samples: int = 200

    def __post_init__(self) -> None:
        if self.mode is FinetuneMode.MULTIHEAD and self.replay is None:
            raise ValueError("multihead fine-tuning needs a replay file (MACE would train naively)")

    @classmethod
    def from_config(cls, cfg: ModelConfig, base_dir: Path | str = ".") -> FoundationStart | None:
        """The config's foundation start (paths relative to ``base_dir``, the folder of
        the campaign file), or None when members do not start from a foundation."""
        if cfg.warm_start != "foundation" or not cfg.foundation_model:
            return None
        replay = resolve_path(cfg.replay_file, base_dir) if cfg.multihead else None
        return cls(
            resolve_path(cfg.foundation_model, base_dir),
            cfg.finetune,
            replay,
            cfg.replay_samples,
        )

    def prepare(
        self, elements: Iterable[int], whose: str = "the training frames"
    ) -> PreparedFoundation:
        """Read and hash the files once, and check that every one of ``elements`` (those
        of ``whose``) and of the replay frames is the foundation's.

        Raises
        ------
        ValueError
            The model is not a MACE model; the replay file is not an extxyz of labelled
            frames; or the training frames or the replay frames hold an element the
            foundation has no weights for (each named).
        """
        from aloop.models.io import load_model

        elements_in = set(elements)
        weights = self.model.read_bytes()
        sha = sha256_bytes(weights)
        try:
            model = load_model(weights, sha, device="cpu")
            known = frozenset(int(z) for z in model.atomic_numbers.tolist())
        except Exception as exc:
            raise ValueError(
                f"model.foundation_model: {self.model} is not a MACE model ({exc})"
            ) from exc
        _check_elements(elements_in, known, whose, self.model, "model.foundation_model")
        replay, replay_sha = [], None
        if self.replay is not None:
            replay = read_replay(self.replay)
            replay_sha = sha256_bytes(self.replay.read_bytes())
            present = {int(z) for a in replay for z in a.numbers}
            what = f"the replay file {self.replay.name}"
            _check_elements(present, known, what, self.model, "model.replay_file")
        return PreparedFoundation(self, sha, known, replay, replay_sha)


@dataclass(frozen=True)
class PreparedFoundation:
    """A foundation start with its files read: what every member of a committee shares."""

    start: FoundationStart
    model_sha256: str
    #: Atomic numbers the foundation has weights for.
    elements: frozenset[int]
    replay_frames: list[Atoms] = field(repr=False)
    replay_sha256: str | None

    @property
    def replay_count(self) -> int:
        """Frames each member replays (0: naive)."""
        return min(self.start.replay_samples, len(self.replay_frames))

    def replay_subset(self, seed: int, out: Path) -> Path | None:
        """Write the member's replay frames to ``out``: ``replay_samples`` of them (all
        when there are fewer), drawn by ``seed``. None without replay (naive)."""
        from ase.io import write

        if not self.replay_frames:
            return None
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(len(self.replay_frames), self.replay_count, replace=False))
        write(out, [self.replay_frames[i] for i in picked], format="extxyz")
        return out

    def provenance(self, subset: Path | None, head: str) -> dict:
        """What a member stores of its start: file, sha256, mode, its evaluated head,
        replay."""
        out = {
            "file": self.start.model.name,
            "sha256": self.model_sha256,
            "finetune": self.start.mode.value,
            "head": head,
        }
        if subset is not None and self.start.replay is not None:
            out |= {
                "replay_file": self.start.replay.name,
                "replay_sha256": self.replay_sha256,
                "replay_subset_sha256": sha256_bytes(subset.read_bytes()),
                "replay_samples": self.replay_count,
            }
        return out


def read_replay(source: Path) -> list[Atoms]:
    """The frames of a replay file, each with REF_energy and REF_forces.

    Raises ValueError when the file is not an extxyz of such frames (MACE's keys for the
    replay head are the campaign's).
    """
    from ase.io import read

    try:
        frames = read(source, index=":", format="extxyz")
    except Exception as exc:
        raise ValueError(f"model.replay_file: {source} is not a readable extxyz ({exc})") from exc
    unlabelled = [
        i for i, a in enumerate(frames) if REF_ENERGY not in a.info or REF_FORCES not in a.arrays
    ]
    if not frames or unlabelled:
        where = f"frame {unlabelled[0]} has" if unlabelled else "it has no frames, so"
        raise ValueError(
            f"model.replay_file: in {source}, {where} no {REF_ENERGY} and {REF_FORCES} "
            "(the foundation's labels under aloop's keys)"
        )
    return frames


def _check_elements(
    present: Iterable[int], known: frozenset[int], what: str, model: Path, key: str
) -> None:
    from ase.data import chemical_symbols

    missing = sorted(set(present) - known)
    if missing:
        raise ValueError(
            f"{key}: {what} hold {', '.join(chemical_symbols[z] for z in missing)}, which the "
            f"foundation model {model.name} has no weights for (it covers "
            f"{', '.join(chemical_symbols[z] for z in sorted(known))}): fine-tune a "
            "foundation trained on these elements"
        )


def foundation_problems(cfg: CampaignConfig, base_dir: Path) -> list[str]:
    """The config check of a foundation start (``aloop validate`` and ``aloop run``,
    before any DFT): its files are a MACE model and a labelled replay file, and every
    element of the campaign's systems is one the foundation has weights for."""
    from aloop.structures import load_system_structures

    start = FoundationStart.from_config(cfg.model, base_dir)
    if start is None:
        return []
    elements = {
        int(z)
        for system in cfg.systems
        for atoms in load_system_structures(system, base_dir)
        for z in atoms.numbers
    }
    try:
        start.prepare(elements, "the campaign's systems")
    except ValueError as exc:  # each message starts with its key
        return [str(exc)]
    return []
