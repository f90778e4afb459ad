"""Training a MACE committee with mace-torch's own training code, keeping provenance.

Each member is one ``mace.cli.run_train.run`` call (the code behind ``mace_run_train``)
on extxyz files written with MACE's REF_ keys. The validation frames are chosen by each
structure's content hash (:func:`valid_split`), so they are fixed for the life of a
campaign: a frame that a parent trained on does not become a validation frame of its
warm-started child (but for one tiny-set case, see that function), and MACE's
best-on-validation checkpoint is chosen on frames no ancestor trained on. All members
share that split (so their validation errors compare); they differ by seed and, with
``bootstrap``, by a resampled training set. Warm starts hand the parent model file to
MACE as ``--foundation_model``: MACE rebuilds the architecture from it and loads its
weights before training (naive fine-tuning; no download happens for a file path).

A foundation start (``warm_start: foundation``) is MACE's multihead replay fine-tuning
by default: the new head (``Default``) learns the campaign's labels while the
foundation's head (``pt_head``) keeps training on a subset of the foundation's own data,
drawn from a local replay file by each member's seed, so members differ by seed, replay
subset and data order. The committee evaluates the fine-tuned head. What MACE actually
used (it takes the architecture from the foundation, and its own learning rate and EMA
for multihead runs) is read back from the run and the trained model and stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aloop.dataset.split import draw
from aloop.isolated_atoms import elements_of, missing_elements
from aloop.models.foundation import FoundationStart, PreparedFoundation
from aloop.models.io import pick_device, sha256_bytes
from aloop.records import (
    FINETUNED_HEAD,
    REF_ENERGY,
    REF_FORCES,
    REF_STRESS,
    REPLAY_HEAD,
    fine_tuned_head,
    model_heads,
)
from aloop.structures import atoms_hash
from aloop.versions import code_versions
from aloop.vocabulary import E0Source

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ase import Atoms

    from aloop.config import ModelConfig

log = logging.getLogger(__name__)

#: Hyperparameters (ModelConfig fields) handed to MACE, with their mace_run_train flags.
_FLAGS = {
    "r_max": "--r_max",
    "num_channels": "--num_channels",
    "max_L": "--max_L",
    "max_ell": "--max_ell",
    "correlation": "--correlation",
    "num_interactions": "--num_interactions",
    "num_radial_basis": "--num_radial_basis",
    "batch_size": "--batch_size",
    "lr": "--lr",
    "energy_weight": "--energy_weight",
    "forces_weight": "--forces_weight",
    "patience": "--patience",
}


@dataclass
class MemberResult:
    """One trained member, as plain data for db/ to store."""

    member: int
    seed: int
    weights: bytes = field(repr=False)
    sha256: str
    hyperparameters: dict
    training_ids: list[str]
    valid_ids: list[str]
    parent_sha256: str | None
    metrics: dict
    epochs: int
    learning_curve: list[dict]
    wall_time: float
    device: str
    code_versions: dict
    #: The head the member is evaluated with (MACE's ``Default``; of a multihead model,
    #: the fine-tuned one, not the foundation's replay head).
    head: str = FINETUNED_HEAD


def hyperparameters(cfg: ModelConfig) -> dict:
    """The settings that define a member's training (stored with it)."""
    keep = [*_FLAGS, "epochs", "min_updates", "ema_decay", "dtype", "valid_fraction"]
    keep += ["bootstrap", "warm_start", "stress_weight"]
    return {k: getattr(cfg, k) for k in keep} | {"e0s": cfg.e0s.value}


def e0s_argument(atomic_energies: Mapping[int, float]) -> str:
    """MACE's explicit ``--E0s`` value: a dict literal by atomic number, in eV.

    ``repr`` keeps every digit of each energy (MACE reads it with ``ast.literal_eval``).
    """
    return (
        "{" + ", ".join(f"{int(z)}: {float(e)!r}" for z, e in sorted(atomic_energies.items())) + "}"
    )


def has_stress(frames: Sequence[Atoms]) -> bool:
    """Whether any frame carries a reference stress (then MACE trains on stress too)."""
    return any(REF_STRESS in a.info for a in frames)


#: Salt of each frame's validation draw, fixed for good: changing it would reshuffle the
#: validation set of every running campaign (frames would move from train to valid).
VALID_SALT = 20250619


def frame_hash(atoms: Atoms) -> str:
    """Content hash of a training frame, with its ``info`` charge and multiplicity
    (default 0 and 1): the structure's identity, whatever id a campaign gives it."""
    charge = int(atoms.info.get("charge", 0))
    multiplicity = int(atoms.info.get("multiplicity", 1))
    return atoms_hash(atoms, charge, multiplicity)


def valid_split(frames: Sequence[Atoms], valid_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) indices of ``frames``, chosen by content and fixed for a campaign.

    A frame is a validation frame iff its uniform draw ``draw(VALID_SALT, frame_hash(a))``
    (:func:`aloop.dataset.split.draw`) is below ``valid_fraction``. The draw depends only
    on the structure (numbers, positions, cell, pbc, charge, multiplicity), never on its
    id, its position in ``frames`` or the iteration: the same frames give the same split
    in any campaign and any order, and as the set grows a frame keeps its side. Copies of
    one structure share a side.

    MACE needs a frame on each side. When no frame draws below ``valid_fraction`` (a tiny
    set), the one with the smallest draw validates; when every frame does, the one with
    the largest draw trains.

    The first fallback never moves a frame from train to valid as frames are added (the
    argument is at the code). A frame may go the other way, valid to train, when a new
    frame takes over the smallest draw: no parent has trained on it.

    The second fallback cannot keep that promise (no rule that depends on the set alone
    can: of every pair of frames drawing below the fraction one would train for good, so
    in a large set nearly all of them would train): its one training frame moves to valid
    as soon as a frame drawing at or above the fraction arrives. That needs every distinct
    frame to draw below the fraction, which happens with probability
    ``valid_fraction ** n`` (1 % for two frames at the default 0.1), and leaks that one
    frame only.

    Raises
    ------
    ValueError
        Fewer than two distinct structures (a structure cannot be on both sides).
    """
    if len(frames) < 2:
        raise ValueError(f"training needs at least 2 labelled structures, got {len(frames)}")
    hashes = [frame_hash(a) for a in frames]
    draws = {h: draw(VALID_SALT, h) for h in hashes}
    if len(draws) < 2:
        raise ValueError("training needs at least 2 distinct structures; all frames are one")

    def rank(h: str) -> tuple[float, str]:  # the hash breaks a (2**-64) tie in the draws
        return draws[h], h

    valid = {h for h, d in draws.items() if d < valid_fraction}
    if not valid:
        # This fallback never turns a training frame valid as frames are added. Outside the other
        # fallback a training frame draws at or above the fraction, so in a larger set it can only
        # validate as the smallest draw of a set with no draw below the fraction. Then the smaller
        # set (a subset) had none below either, took this same fallback, and the frame was not its
        # minimum; the minimum of a growing set can only move to a newly added frame, so the old
        # frame is not the larger set's minimum either.
        valid = {min(draws, key=rank)}
    elif len(valid) == len(draws):
        valid.discard(max(draws, key=rank))
    is_valid = np.array([h in valid for h in hashes])
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)


def epochs_for(cfg: ModelConfig, n_train: int) -> int:
    """``cfg.epochs``, raised so that ``n_train`` frames get ``cfg.min_updates`` steps."""
    steps_per_epoch = max(1, -(-n_train // cfg.batch_size))
    return max(cfg.epochs, -(-cfg.min_updates // steps_per_epoch))


def mace_arguments(
    cfg: ModelConfig,
    *,
    name: str,
    seed: int,
    train_file: Path,
    valid_file: Path,
    workdir: Path,
    device: str,
    epochs: int,
    foundation: Path | None = None,
    atomic_energies: Mapping[int, float] | None = None,
    stress: bool = False,
    replay: Path | None = None,
) -> list[str]:
    """The mace_run_train command line for one member.

    Parameters
    ----------
    foundation, replay
        The model file the member starts from. With ``replay`` (an extxyz of the
        foundation's training data) MACE fine-tunes multihead: the replay head keeps
        every element of the foundation, so all members share one element table.
        Without, naive fine-tuning.
    atomic_energies
        Isolated-atom energies by atomic number (eV), exactly the elements of the
        member's train and valid files (MACE's model has one E0 per element it sees and
        refuses a table of another size); required with ``cfg.e0s`` ``isolated_atoms``,
        ignored with ``average`` (MACE's least-squares fit over the training file).
    stress
        The frames carry REF_stress: train with MACE's ``stress`` loss (the ``weighted``
        default ignores stress) at ``cfg.stress_weight``. Frames without a stress (and
        molecules) get stress weight 0 from MACE, so a mixed set is trained on the
        stresses it has.
    """
    if cfg.e0s is E0Source.ISOLATED_ATOMS:
        if atomic_energies is None:
            raise ValueError("model.e0s is isolated_atoms but no isolated-atom energies given")
        e0s = e0s_argument(atomic_energies)
    else:
        e0s = E0Source.AVERAGE.value
    args = [
        f"--name={name}",
        f"--seed={seed}",
        "--model=MACE",
        f"--train_file={train_file}",
        f"--valid_file={valid_file}",
        f"--energy_key={REF_ENERGY}",
        f"--forces_key={REF_FORCES}",
        f"--E0s={e0s}",
        f"--max_num_epochs={epochs}",
        f"--device={device}",
        f"--default_dtype={cfg.dtype}",
        f"--valid_batch_size={max(cfg.batch_size, 8)}",
        "--eval_interval=1",
        "--save_cpu",
        f"--work_dir={workdir}",
        f"--model_dir={workdir}",
        f"--log_dir={workdir / 'logs'}",
        f"--checkpoints_dir={workdir / 'checkpoints'}",
        f"--results_dir={workdir / 'results'}",
    ]
    args += [f"{flag}={getattr(cfg, key)}" for key, flag in _FLAGS.items()]
    if cfg.ema_decay is not None:
        args += ["--ema", f"--ema_decay={cfg.ema_decay}"]
    if stress:
        args += [
            "--loss=stress",
            f"--stress_key={REF_STRESS}",
            f"--stress_weight={cfg.stress_weight}",
        ]
    if foundation is not None and replay is not None:
        args += [
            f"--foundation_model={foundation}",
            "--multiheads_finetuning=True",
            f"--pt_train_file={replay}",
            "--foundation_model_elements=True",
            f"--force_mh_ft_lr={cfg.finetune_optimizer == 'campaign'}",
        ]
    elif foundation is not None:
        args += [f"--foundation_model={foundation}", "--multiheads_finetuning=False"]
    return args


def _write_extxyz(path: Path, frames: Sequence[Atoms]) -> None:
    from ase.io import write

    for a in frames:
        if REF_ENERGY not in a.info or REF_FORCES not in a.arrays:
            raise ValueError("training structures need REF_energy and REF_forces")
    write(path, list(frames), format="extxyz")


def _run_mace(argv: list[str], console_log: Path) -> Any:
    """Run MACE's trainer in this process and undo its global side effects; MACE's
    arguments as the run left them (it overrides some, e.g. for multihead runs).

    MACE logs every batch at INFO to stdout and to the root logger: that goes to
    ``console_log`` instead (its own log file under logs/ is kept too), so a campaign's
    terminal shows aloop's progress, not MACE's.
    """
    import torch
    from mace.cli.run_train import run
    from mace.tools import build_default_arg_parser

    dtype = torch.get_default_dtype()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handler_levels = [h.level for h in handlers]
    try:
        try:
            args = build_default_arg_parser().parse_args(argv)
        except SystemExit:  # argparse exits on a bad flag: that is our bug, say so
            raise RuntimeError(f"mace_run_train rejected the arguments {argv}") from None
        for h in handlers:
            h.setLevel(max(h.level, logging.ERROR))
        with (
            open(console_log, "a") as sink,
            contextlib.redirect_stdout(sink),
            warnings.catch_warnings(),
        ):
            # TorchScript and DataLoader warn on every member about things that do not
            # concern a user (annotations inside e3nn, pin_memory without a GPU).
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            run(args)
        return args
    finally:
        torch.set_default_dtype(dtype)
        for h, lvl in zip(handlers, handler_levels, strict=True):
            h.setLevel(lvl)
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)


def _learning_curve(results_dir: Path) -> list[dict]:
    """Validation errors per epoch from MACE's results log (eV/Å, eV/atom)."""
    curve = []
    for path in sorted(results_dir.glob("*_train.txt")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            # a multihead run logs each head: the curve is the fine-tuned head's
            if row.get("head", FINETUNED_HEAD) != FINETUNED_HEAD:
                continue
            if row.get("mode") == "eval" and row.get("epoch") is not None:
                curve.append(
                    {
                        "epoch": int(row["epoch"]),
                        "valid_forces_rmse": row.get("rmse_f"),
                        "valid_energy_rmse_per_atom": row.get("rmse_e_per_atom"),
                    }
                )
    return curve


def reference_errors(committee: Any, frames: Sequence[Atoms]) -> dict:
    """Errors of a committee's mean against the REF_ labels of ``frames``.

    Energy per atom (eV/atom), forces per component (eV/Å), and the largest per-atom
    force error: each member's train/valid metrics (a committee of one).
    """
    from aloop.calibration import committee_error, frame_errors

    return committee_error(frame_errors(committee, frames)).model_dump(exclude={"n"})


def error_metrics(model: Any, frames: Sequence[Atoms], device: str) -> dict:
    """:func:`reference_errors` of one model."""
    from aloop.models.committee import Committee

    return reference_errors(Committee([model], device=device), frames)


@dataclass(frozen=True)
class _SharedSplit:
    """The labelled frames and the train/valid split that every member of a committee uses."""

    frames: Sequence[Atoms]
    ids: Sequence[str]
    train_idx: np.ndarray
    valid_idx: np.ndarray
    valid: list[Atoms]
    #: Isolated-atom energies by atomic number (eV); None with ``average`` E0s.
    atomic_energies: Mapping[int, float] | None = None
    #: Whether the frames carry stress (then every member trains on it).
    stress: bool = False


def train_committee(
    frames: Sequence[Atoms],
    ids: Sequence[str],
    cfg: ModelConfig,
    workdir: Path | str,
    *,
    parents: Sequence[bytes] | None = None,
    members: Sequence[int] | None = None,
    on_member: Callable[[MemberResult], None] | None = None,
    atomic_energies: Mapping[int, float] | None = None,
    foundation: FoundationStart | None = None,
) -> list[MemberResult]:
    """Train ``cfg.committee_size`` MACE members on labelled ``frames``.

    Parameters
    ----------
    frames, ids
        Labelled structures (REF_energy, REF_forces; ``info`` charge and multiplicity,
        default 0 and 1) and their structure ids. The train/valid split is
        :func:`valid_split` of the frames: the ids play no part in it.
    cfg
        Model section of the campaign config.
    workdir
        Scratch folder for MACE's files (one subfolder per member).
    parents
        Weights of each member's parent (warm start from the previous iteration);
        the foundation is used instead when ``warm_start`` is ``foundation``.
    foundation
        The foundation start with its files resolved (default: from ``cfg``, paths
        relative to the working directory).
    members
        Indices of the members to train (default all); a resumed iteration trains only
        those not yet stored. The split does not depend on which members are trained.
    on_member
        Called with each member as soon as it is trained (persist it here), so a crash
        loses at most the member in training.
    atomic_energies
        Isolated-atom reference energies by atomic number (eV), MACE's explicit E0s:
        required, for every element of ``frames``, when ``cfg.e0s`` is
        ``isolated_atoms``; not used with ``average``. Stored with each member.

    Returns
    -------
    list[MemberResult]
        The members trained, in member order.
    """
    if len(frames) != len(ids):
        raise ValueError("frames and ids differ in length")
    workdir = Path(workdir)
    if foundation is None:
        foundation = FoundationStart.from_config(cfg)
    # read, hashed and checked once for the committee, before MACE runs
    prepared = (
        foundation.prepare(elements_of(frames))
        if foundation is not None and cfg.warm_start == "foundation"
        else None
    )
    e0s = _explicit_e0s(cfg, frames, atomic_energies)
    device = pick_device(cfg.device)
    train_idx, valid_idx = valid_split(frames, cfg.valid_fraction)
    split = _SharedSplit(
        frames,
        ids,
        train_idx,
        valid_idx,
        [frames[i] for i in valid_idx],
        atomic_energies=e0s,
        stress=has_stress(frames),
    )
    results = []
    wanted = set(range(cfg.committee_size) if members is None else members)
    for member, seed in enumerate(cfg.member_seeds):
        if member not in wanted:
            continue
        mdir = workdir / f"member{member}"
        start = _Start(parents, prepared)
        results.append(_train_member(split, cfg, member, seed, mdir, device, start))
        if on_member is not None:
            on_member(results[-1])
    return results


def _explicit_e0s(
    cfg: ModelConfig, frames: Sequence[Atoms], atomic_energies: Mapping[int, float] | None
) -> dict[int, float] | None:
    """The E0s the members train with, checked to cover ``frames``; None for ``average``."""
    if cfg.e0s is not E0Source.ISOLATED_ATOMS:
        return None
    if atomic_energies is None:
        raise ValueError(
            "model.e0s is isolated_atoms: train_committee needs atomic_energies (or set "
            "model.e0s: average)"
        )
    missing = missing_elements(elements_of(frames), atomic_energies)
    if missing:
        raise ValueError(
            f"no isolated-atom energy (E0) for {', '.join(missing)}, present in the training frames"
        )
    return {int(z): float(e) for z, e in atomic_energies.items()}


def _member_e0s(split: _SharedSplit, frames: Sequence[Atoms]) -> dict[int, float] | None:
    """The E0s of exactly the elements MACE sees in one member's train and valid files."""
    if split.atomic_energies is None:
        return None
    return {z: split.atomic_energies[z] for z in elements_of(frames)}


def _provenance(
    cfg: ModelConfig, e0s: Mapping[int, float] | None, stress: bool, used: dict
) -> dict:
    """The member's stored hyperparameters: the config's overwritten by what MACE used
    (``used``, see :func:`used_hyperparameters`), the E0s and whether stress."""
    from ase.data import chemical_symbols

    out = hyperparameters(cfg) | used | {"stress": stress}
    if e0s is not None:
        out["atomic_energies"] = {chemical_symbols[z]: e for z, e in sorted(e0s.items())}
    return out


def model_architecture(model: Any) -> dict:
    """The architecture of a trained MACE model, read from the model itself (under a
    foundation start MACE takes it from the foundation, whatever the config says)."""
    from mace.tools.scripts_utils import extract_config_mace_model

    found = extract_config_mace_model(model)
    if "error" in found:
        raise ValueError(f"not a MACE model aloop can read: {found['error']}")
    hidden = found["hidden_irreps"]
    return {
        "r_max": float(found["r_max"]),
        "num_channels": int(hidden.count("0e")),
        "max_L": int(hidden.lmax),
        "max_ell": int(found["max_ell"]),
        "correlation": int(np.max(found["correlation"])),
        "num_interactions": int(found["num_interactions"]),
        "num_radial_basis": int(found["num_bessel"]),
    }


def used_hyperparameters(model: Any, args: Any) -> dict:
    """What MACE trained with: the model's architecture and the training settings as
    MACE's run left its arguments (a multihead run sets its own learning rate and EMA)."""
    return model_architecture(model) | {
        "lr": float(args.lr),
        "batch_size": int(args.batch_size),
        "energy_weight": float(args.energy_weight),
        "forces_weight": float(args.forces_weight),
        "patience": int(args.patience),
        "ema_decay": float(args.ema_decay) if args.ema else None,
        "loss": str(args.loss),
        "heads": model_heads(model),
    }


@dataclass(frozen=True)
class _Start:
    """Where members start: their parents' weights (warm start), or a foundation."""

    parents: Sequence[bytes] | None = None
    foundation: PreparedFoundation | None = None


def _train_member(
    split: _SharedSplit,
    cfg: ModelConfig,
    member: int,
    seed: int,
    mdir: Path,
    device: str,
    start: _Start,
) -> MemberResult:
    """Train one member in ``mdir`` and describe it: errors, learning curve, provenance."""
    from aloop.models.io import load_model

    # A killed run may have left checkpoints and half a results log: start clean.
    shutil.rmtree(mdir, ignore_errors=True)
    mdir.mkdir(parents=True)
    members_train = _training_indices(cfg, seed, split.train_idx)
    train = [split.frames[i] for i in members_train]
    _write_extxyz(mdir / "train.xyz", train)
    _write_extxyz(mdir / "valid.xyz", split.valid)
    e0s = _member_e0s(split, [*train, *split.valid])
    origin, parent_sha, replay = _starting_point(cfg, member, seed, mdir, start)
    n_replay = start.foundation.replay_count if replay is not None else 0
    wall, args = _fit(
        cfg,
        member,
        seed,
        mdir,
        device,
        len(members_train),
        origin,
        e0s,
        split.stress,
        replay,
        n_replay=n_replay,
    )
    weights = (mdir / f"member{member}.model").read_bytes()
    sha = sha256_bytes(weights)
    model = load_model(weights, sha, device="cpu")
    if replay is not None and REPLAY_HEAD not in getattr(model, "heads", ()):
        raise RuntimeError(
            f"member {member}: MACE was asked for multihead fine-tuning but trained "
            f"without a replay head (heads {getattr(model, 'heads', None)}); see "
            f"{mdir / 'mace-console.log'}"
        )
    head = fine_tuned_head(model_heads(model))
    provenance = _provenance(cfg, e0s, split.stress, used_hyperparameters(model, args))
    if start.foundation is not None:
        provenance["foundation"] = start.foundation.provenance(replay, head)
    metrics = _member_metrics(split, members_train, weights, sha, device)
    curve = _learning_curve(mdir / "results")
    return MemberResult(
        member=member,
        seed=seed,
        weights=weights,
        sha256=sha,
        hyperparameters=provenance,
        training_ids=[split.ids[i] for i in members_train],
        valid_ids=[split.ids[i] for i in split.valid_idx],
        parent_sha256=parent_sha,
        metrics=metrics,
        epochs=len(curve),
        learning_curve=curve,
        wall_time=round(wall, 3),
        device=device,
        code_versions=code_versions(),
        head=head,
    )


def _training_indices(cfg: ModelConfig, seed: int, train_idx: np.ndarray) -> np.ndarray:
    """The member's training frames: the shared train split, resampled with ``bootstrap``."""
    if not cfg.bootstrap:
        return train_idx
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train_idx, size=len(train_idx), replace=True))


def _fit(
    cfg: ModelConfig,
    member: int,
    seed: int,
    mdir: Path,
    device: str,
    n_train: int,
    foundation: Path | None,
    atomic_energies: Mapping[int, float] | None = None,
    stress: bool = False,
    replay: Path | None = None,
    *,
    n_replay: int = 0,
) -> tuple[float, Any]:
    """Run MACE on the member's files in ``mdir`` (``n_replay`` frames in ``replay``):
    the wall time it took (s) and MACE's arguments as the run left them."""
    argv = mace_arguments(
        cfg,
        name=f"member{member}",
        seed=seed,
        train_file=mdir / "train.xyz",
        valid_file=mdir / "valid.xyz",
        workdir=mdir,
        device=device,
        # min_updates counts optimizer steps, and a multihead epoch also steps through
        # the replayed frames: the floor is reached in fewer passes over the labels
        epochs=epochs_for(cfg, n_train + n_replay),
        foundation=foundation,
        atomic_energies=atomic_energies,
        stress=stress,
        replay=replay,
    )
    log.info("training committee member %d (seed %d) on %d structures", member, seed, n_train)
    start = time.perf_counter()
    args = _run_mace(argv, mdir / "mace-console.log")
    return time.perf_counter() - start, args


def _starting_point(
    cfg: ModelConfig, member: int, seed: int, mdir: Path, start: _Start
) -> tuple[Path | None, str | None, Path | None]:
    """(model file MACE starts from, its sha256, the member's replay subset), or Nones to
    train from scratch."""
    if start.foundation is not None:
        found = start.foundation
        replay = found.replay_subset(seed, mdir / "replay.xyz")
        return found.start.model, found.model_sha256, replay
    if cfg.warm_start == "previous" and start.parents:
        # MACE reads the parent from a file: it goes into the member's own folder.
        parent = start.parents[member % len(start.parents)]
        origin = mdir / "parent.model"
        origin.write_bytes(parent)
        return origin, sha256_bytes(parent), None
    return None, None, None


def _member_metrics(
    split: _SharedSplit, members_train: np.ndarray, weights: bytes, sha: str, device: str
) -> dict:
    """The trained member's errors on its own training frames and on the shared valid set."""
    from aloop.models.io import load_model

    model = load_model(weights, sha, device=device)
    return {
        "train": error_metrics(model, [split.frames[i] for i in members_train], device),
        "valid": error_metrics(model, split.valid, device),
    }
