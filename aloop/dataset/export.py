"""Exporting a curated dataset: only successful labels, de-duplicated, outliers reported
and optionally removed, split reproducibly, written as MACE-ready extxyz and an ASE
database, with a manifest that says exactly what is in it and where it came from.

The database side is a *source* (db/export.py): a first pass gives one small summary per
label (for de-duplication, the outlier filter and the split); a second pass streams full
records in batches to the writers. Memory holds the summaries, never the structures.

A campaign's hold-out structures (labelled, never trained on) always go to the test
split, whatever the fractions: the fractions split the others. The manifest names each
campaign's production committee (its final iteration's members and their hold-out
error), or says why there is none; with ``models`` the members' weights are written too,
under ``models/`` with a ``SHA256SUMS`` file, and converted for LAMMPS by mace-torch's
own ``mace.cli.create_lammps_model`` where that runs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from aloop.dataset.extxyz import write_frame
from aloop.dataset.outliers import LabelSummary, find_outliers
from aloop.dataset.split import SPLITS, assign
from aloop.errors import UserError
from aloop.isolated_atoms import MACE_ISOLATED_CONFIG_TYPE
from aloop.records import FINETUNED_HEAD, REF_ENERGY, REF_FORCES, REF_STRESS
from aloop.versions import code_versions

FORMATS = ("extxyz", "ase-db")
#: Where every hold-out structure goes, whatever the split fractions.
HOLDOUT_SPLIT = SPLITS[-1]
#: The folder, under the export, of the production committee's files.
MODELS_DIR = "models"
#: What ``mace.cli.create_lammps_model`` appends to a model's path for its output.
LAMMPS_SUFFIX = "-lammps.pt"
#: The longest the LAMMPS conversion of a committee may take (seconds).
LAMMPS_TIMEOUT_S = 900
#: How LAMMPS (built with MACE's pair style) reads a converted member.
LAMMPS_USAGE = (
    "pair_style mace no_domain_decomposition; "
    "pair_coeff * * models/member0.model-lammps.pt <element of each atom type, in order>"
)
#: Structure ids are hex: about 4 in 100,000 look like a number (``1234e5...``), which
#: ASE's extxyz reader turns into a float and ase.db refuses outright. In files they carry
#: this prefix, so they always read back as the same string (`aloop show` takes either).
FILE_ID_PREFIX = "s-"
#: Records fetched per round trip in the writing pass.
BATCH = 1000
#: How to train on an export, for the manifest's reader. train.xyz holds every element's
#: isolated atom as a ``config_type=IsolatedAtom`` frame, which MACE takes as its E0s by
#: itself (and leaves out of the training frames): no ``--E0s`` is given.
MACE_RUN_TRAIN = (
    "mace_run_train --train_file=train.xyz --valid_file=valid.xyz "
    "--test_file=test.xyz --energy_key=REF_energy --forces_key=REF_forces "
    "--stress_key=REF_stress ..."
)
#: The same, for an export without isolated atoms (see the manifest's ``isolated_atoms``
#: for why): MACE's least-squares fit, meaningless when every frame has one composition.
MACE_RUN_TRAIN_AVERAGE = (
    "mace_run_train --train_file=train.xyz --valid_file=valid.xyz "
    "--test_file=test.xyz --energy_key=REF_energy --forces_key=REF_forces "
    "--stress_key=REF_stress --E0s=average ..."
)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the first pass needs of one labelled structure."""

    structure_id: str
    system: str
    content_hash: str
    settings_hash: str
    energy_per_atom: float
    max_force: float
    #: The atomic numbers in the structure, sorted (which isolated atoms it needs).
    elements: tuple[int, ...] = ()
    #: A hold-out structure (verdict ``holdout``): always in the test split.
    holdout: bool = False


class Source(Protocol):
    """Where the labelled structures come from (db/export.py implements it).

    A source may also have ``isolated_atoms() -> list[dict]``: the successful labels of
    isolated atoms (records like :meth:`records`', plus ``label_id``), called after
    :meth:`summaries`; they are the E0s, never dataset frames.
    """

    def summaries(self) -> Iterable[Summary]: ...

    def records(self, ids: Sequence[str]) -> Iterator[dict]: ...

    def label_settings(self) -> dict[str, dict]: ...


@dataclass
class ExportOptions:
    """How to curate and write."""

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    stratify: bool = True
    outlier_k: float | None = None
    remove_outliers: bool = True
    formats: tuple[str, ...] = ("extxyz", "ase-db")
    force: bool = False
    #: With models: also convert each member for LAMMPS (mace.cli.create_lammps_model).
    lammps: bool = True


@dataclass(frozen=True)
class ModelFile:
    """One member of a production committee to write: its weights and what names it."""

    campaign: str
    iteration: int
    member: int
    model_id: str
    seed: int
    #: The sha256 stored with the model; the weights must hash to it.
    sha256: str
    weights: bytes = field(repr=False)
    #: The head to evaluate (MACECalculator's ``head=``): the fine-tuned one of a
    #: multihead model.
    head: str = FINETUNED_HEAD

    @property
    def name(self) -> str:
        """The file name under ``models/``: ``member0.model``."""
        return f"member{self.member}.model"


@dataclass
class ExportResult:
    """What was written: ids per split, files with hashes, and the manifest."""

    out_dir: Path
    splits: dict[str, list[str]]
    files: list[dict]
    manifest: dict
    outliers: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)


class ExportError(UserError):
    """The export cannot be made as asked (nothing matched, target exists, mixed levels)."""


def _out_files(out_dir: Path, formats: Sequence[str]) -> list[Path]:
    files = [out_dir / "manifest.json"]
    if "extxyz" in formats:
        files += [out_dir / f"{s}.xyz" for s in SPLITS]
    if "ase-db" in formats:
        files.append(out_dir / "dataset.db")
    return files


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _curate(
    summaries: list[Summary], options: ExportOptions
) -> tuple[list[Summary], dict[str, str], dict[str, str], dict[str, str]]:
    """(kept, duplicates, outliers found, outliers removed) with reasons."""
    by_system_hash: dict[str, set[str]] = {}
    for s in summaries:
        by_system_hash.setdefault(s.system, set()).add(s.settings_hash)
    mixed = {k: v for k, v in by_system_hash.items() if len(v) > 1}
    if mixed:
        raise ExportError(
            "labels at more than one level of theory for "
            + ", ".join(f"{k} ({len(v)} settings)" for k, v in sorted(mixed.items()))
            + ": choose one with --settings-hash or --method"
        )
    duplicates: dict[str, str] = {}
    first_of: dict[str, str] = {}
    kept = []
    for s in sorted(summaries, key=lambda x: x.structure_id):
        if s.content_hash in first_of:
            duplicates[s.structure_id] = f"same structure as {first_of[s.content_hash]}"
            continue
        first_of[s.content_hash] = s.structure_id
        kept.append(s)
    outliers: dict[str, str] = {}
    if options.outlier_k is not None:
        outliers = find_outliers(
            [LabelSummary(s.structure_id, s.system, s.energy_per_atom, s.max_force) for s in kept],
            options.outlier_k,
        )
    removed = outliers if options.remove_outliers else {}
    return [s for s in kept if s.structure_id not in removed], duplicates, outliers, removed


def _ase_row(rec: dict, split: str) -> tuple[Any, dict, dict]:
    from ase import Atoms

    atoms = Atoms(
        numbers=rec["numbers"], positions=rec["positions"], cell=rec["cell"], pbc=rec["pbc"]
    )
    # ase.db key-value pairs are scalars, and a string that reads as a number (a campaign
    # called "2024") is refused: those go to the row's data, as do arrays (REF_stress).
    kv, data = {}, {REF_FORCES: rec["forces"]}
    for k, v in _info(rec, split).items():
        if v is None:
            continue
        if isinstance(v, np.ndarray) or (isinstance(v, str) and _numeric(v)):
            data[k] = v
        else:
            kv[k] = v
    if rec.get("stress") is not None:
        data[REF_STRESS] = rec["stress"]
    return atoms, kv, data


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text in ("T", "F", "True", "False")
    return True


def _info(rec: dict, split: str) -> dict:
    """Per-frame info: the label under MACE's keys, then where the frame came from."""
    info: dict[str, Any] = {REF_ENERGY: float(rec["energy"])}
    if rec.get("stress") is not None:
        info[REF_STRESS] = np.asarray(rec["stress"], dtype=np.float64)
    info.update(
        config_type=rec["system"],
        structure_id=FILE_ID_PREFIX + rec["structure_id"],
        campaign=rec["campaign"],
        iteration=int(rec["iteration"]),
        origin=rec["origin"],
        label_settings_hash=rec["settings_hash"],
        force_dev_max=rec.get("force_dev_max"),
        total_charge=int(rec.get("charge", 0)),
        multiplicity=int(rec.get("multiplicity", 1)),
        split=split,
        # Only on hold-out frames (None is not written): test.xyz's unbiased part.
        holdout=True if rec.get("holdout") else None,
    )
    return info


def export_dataset(
    source: Source,
    out_dir: Path | str,
    options: ExportOptions,
    query: dict,
    on_progress: Callable[[int, int], None] | None = None,
    *,
    committees: Sequence[dict] = (),
    models: Sequence[ModelFile] = (),
) -> ExportResult:
    """Curate and write the structures ``source`` yields; see the module docstring.

    Parameters
    ----------
    source, out_dir, options
        Where the labelled structures come from, the folder to write to, how to curate.
    query
        The selection the structures answer (recorded in the manifest).
    on_progress
        Called with (structures written, structures to write) after each batch.
    committees
        Each campaign's production committee as the manifest names it (db/export.py's
        ``production_committees``): its members and hold-out error, or why there is none.
    models
        The members whose weights to write under ``models/`` (one production committee).

    Returns
    -------
    ExportResult
        The ids per split, the files written with their hashes, and the manifest.

    Raises
    ------
    ExportError
        Nothing matched, labels at mixed settings, or the output exists without ``force``.
    """
    out_dir = Path(out_dir)
    targets = _out_files(out_dir, options.formats)
    model_targets = _model_targets(out_dir, models)
    _check_target(out_dir, targets + model_targets, options.force)
    _check_weights(models)
    summaries = list(source.summaries())
    if not summaries:
        raise ExportError("no successfully labelled structure matches the query")
    kept, duplicates, outliers, removed = _curate(summaries, options)
    splits = _split(kept, options)
    isolated, isolated_account = _isolated_atoms(source, kept, splits, options.formats)
    part = _start_writing(out_dir, targets)
    stressed = _write_splits(
        source, splits, out_dir, part, options.formats, len(kept), on_progress, isolated
    )
    models_account, model_parts = (
        _write_models(out_dir, models, options.lammps) if models else (None, {})
    )
    settings = source.label_settings()
    files = _publish(targets[1:], part, splits, len(kept), len(isolated))
    _publish_models(model_targets, model_parts)
    manifest = {
        "format": "aloop-dataset/1",
        "created_at": datetime.now(UTC).isoformat(),
        "query": query,
        **_contents(kept, splits, options, settings),
        "isolated_atoms": isolated_account,
        "production_committee": list(committees),
        "models": models_account,
        **_curation(options, duplicates, outliers, removed),
        "code_versions": code_versions(),
        "files": files,
        "frames_with_stress": stressed,
        "mace_run_train": _mace_run_train(bool(isolated), stressed > 0),
    }
    _write_manifest(manifest, out_dir / "manifest.json", part)
    return ExportResult(out_dir, splits, files, manifest, outliers, duplicates)


def _mace_run_train(isolated: bool, with_stress: bool) -> str:
    """The manifest's mace_run_train line: ``--loss=stress`` when frames carry REF_stress
    (MACE's default loss ignores it; the stress weight is the user's to choose)."""
    line = MACE_RUN_TRAIN if isolated else MACE_RUN_TRAIN_AVERAGE
    return line.replace(" ...", " --loss=stress ...") if with_stress else line


def _isolated_atoms(
    source: Source,
    kept: Sequence[Summary],
    splits: dict[str, list[str]],
    formats: Sequence[str],
) -> tuple[list[dict], dict]:
    """The isolated-atom records to write into train.xyz, and the manifest's account.

    MACE takes the E0s from train.xyz's IsolatedAtom frames, one per element it trains
    on, and refuses a table with an element its train and valid frames lack; without
    one for every element it stops. So either every element of the train and valid
    splits gets the isolated atom labelled at the settings hash of its frames, or none
    is written and the account says why (training then falls back on ``--E0s=average``).
    """
    found = getattr(source, "isolated_atoms", None)  # not vocabulary: a method name
    available = sorted(
        found() if found is not None else [],
        key=lambda r: (r["settings_hash"], int(r["numbers"][0]), r["campaign"], r["structure_id"]),
    )
    by_key: dict[tuple[str, int], dict] = {}
    for rec in available:  # several campaigns: the first of each (settings, element)
        by_key.setdefault((rec["settings_hash"], int(rec["numbers"][0])), rec)
    trained = set(splits["train"]) | set(splits["valid"])
    hashes_of: dict[int, set[str]] = {}
    for s in kept:
        if s.structure_id in trained:
            for z in s.elements:
                hashes_of.setdefault(z, set()).add(s.settings_hash)
    chosen, problems = [], []
    for z, hashes in sorted(hashes_of.items()):
        sym = _symbol(z)
        if len(hashes) > 1:
            problems.append(f"{sym} is in frames of {len(hashes)} settings hashes")
        elif (next(iter(hashes)), z) not in by_key:
            problems.append(f"{sym} has no isolated-atom label at its frames' settings")
        else:
            chosen.append(by_key[(next(iter(hashes)), z)])
    if "extxyz" not in formats:
        problems = ["no extxyz file is written"]
    elif not hashes_of:
        problems = ["the source gives no element of its frames"]
    if problems:
        chosen = []
    account = {
        "config_type": MACE_ISOLATED_CONFIG_TYPE,
        "written_to": "train.xyz" if chosen else None,
        "not_written_because": "; ".join(problems) or None,
        "E0s": {
            _symbol(int(r["numbers"][0])): {
                "energy_eV": float(r["energy"]),
                "multiplicity": int(r["multiplicity"]),
                "settings_hash": r["settings_hash"],
                "structure_id": r["structure_id"],
                "label_id": r["label_id"],
                "campaign": r["campaign"],
            }
            for r in chosen
        },
    }
    return chosen, account


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[z]


def _check_target(out_dir: Path, targets: Sequence[Path], force: bool) -> None:
    """Refuse before any work when the export would overwrite or cannot be written."""
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise ExportError(f"{existing[0]} exists; use --force to overwrite, or another directory")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a directory")


def _split(kept: Sequence[Summary], options: ExportOptions) -> dict[str, list[str]]:
    """Sorted structure ids of each split, drawn reproducibly from ``options``.

    Hold-out structures all go to test (a model trained on the export never sees them);
    the fractions split the others.
    """
    split_of = assign(
        ((s.structure_id, s.system) for s in kept if not s.holdout),
        options.fractions,
        options.seed,
        options.stratify,
    )
    split_of.update((s.structure_id, HOLDOUT_SPLIT) for s in kept if s.holdout)
    return {name: sorted(i for i, sp in split_of.items() if sp == name) for name in SPLITS}


def _start_writing(out_dir: Path, targets: Sequence[Path]) -> dict[Path, Path]:
    """Create ``out_dir`` and give each target a fresh temporary name to be written under.

    Renaming them at the end means a failed export never leaves files that look finished.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot write to {out_dir}: {exc.strerror}") from None
    part = {p: p.with_name(p.name + ".part") for p in targets}
    for p in part.values():
        p.unlink(missing_ok=True)
    return part


def _write_splits(
    source: Source,
    splits: dict[str, list[str]],
    out_dir: Path,
    part: dict[Path, Path],
    formats: Sequence[str],
    total: int,
    on_progress: Callable[[int, int], None] | None,
    isolated: Sequence[dict] = (),
) -> int:
    """Stream each split's records from ``source``, ``BATCH`` at a time, to the writers;
    the ``isolated`` atoms go at the end of train.xyz (MACE's E0s, no dataset frame).
    Returns how many frames carry a reference stress."""
    db = None
    if "ase-db" in formats:
        import ase.db

        db = ase.db.connect(str(part[out_dir / "dataset.db"]), type="db", append=False)
    done = stressed = 0
    for name in SPLITS:
        xyz = part[out_dir / f"{name}.xyz"].open("w") if "extxyz" in formats else None
        try:
            for start in range(0, len(splits[name]), BATCH):
                batch = splits[name][start : start + BATCH]
                count, with_stress = _write_batch(source.records(batch), name, xyz, db)
                done, stressed = done + count, stressed + with_stress
                if on_progress is not None:
                    on_progress(done, total)
            if name == SPLITS[0] and xyz is not None:  # train.xyz
                for rec in isolated:
                    info = _info(rec, name) | {"config_type": MACE_ISOLATED_CONFIG_TYPE}
                    _write_xyz_frame(xyz, rec, info)
        finally:
            if xyz is not None:
                xyz.close()
    return stressed


def _write_xyz_frame(xyz: IO[str], rec: dict, info: dict) -> None:
    """One labelled record as an extxyz frame with ``info``, its forces as REF_forces."""
    write_frame(
        xyz,
        rec["numbers"],
        rec["positions"],
        rec["cell"],
        rec["pbc"],
        info,
        {REF_FORCES: rec["forces"]},
    )


def _write_batch(
    records: Iterable[dict], split: str, xyz: IO[str] | None, db: Any
) -> tuple[int, int]:
    """Write one batch of ``split`` to the open extxyz file and the ase.db; the count,
    and how many of them carry a stress."""
    rows = []
    count = stressed = 0
    for rec in records:
        stressed += rec.get("stress") is not None
        if xyz is not None:
            _write_xyz_frame(xyz, rec, _info(rec, split))
        if db is not None:
            rows.append(_ase_row(rec, split))
        count += 1
    if db is not None and rows:
        with db:  # one transaction per batch
            for atoms, kv, data in rows:
                db.write(atoms, key_value_pairs=kv, data=data)
    return count, stressed


def _publish(
    paths: Sequence[Path],
    part: dict[Path, Path],
    splits: dict[str, list[str]],
    total: int,
    isolated: int = 0,
) -> list[dict]:
    """Rename the written files to their final names; each one's manifest entry.

    ``frames`` counts dataset frames; train.xyz's isolated atoms are counted apart.
    """
    files = []
    for path in paths:
        part[path].replace(path)
        entry = {
            "name": path.name,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "frames": len(splits[path.stem]) if path.suffix == ".xyz" else total,
        }
        if path.name == "train.xyz":
            entry["isolated_atom_frames"] = isolated
        files.append(entry)
    return files


def _contents(
    kept: Sequence[Summary],
    splits: dict[str, list[str]],
    options: ExportOptions,
    settings: dict[str, dict],
) -> dict:
    """The manifest's account of what the files hold: counts, split, keys, units, labels."""
    systems = {s.structure_id: s.system for s in kept}
    used_hashes = sorted({s.settings_hash for s in kept})
    per_system = {name: dict(Counter(systems[i] for i in ids)) for name, ids in splits.items()}
    held = [s.system for s in kept if s.holdout]
    return {
        "counts": {name: len(ids) for name, ids in splits.items()},
        "counts_per_system": per_system,
        "holdout": {
            "count": len(held),
            "split": HOLDOUT_SPLIT,
            # A list, not a mapping: system names may hold dots (no document field name).
            "per_system": [{"system": k, "n": n} for k, n in sorted(Counter(held).items())],
            "note": "the campaigns' hold-out structures (labelled, never trained on) are "
            f"all in {HOLDOUT_SPLIT}, whatever the fractions (they split the others); "
            "their frames carry holdout=True",
        },
        "split": {
            "fractions": list(options.fractions),
            "seed": options.seed,
            "stratified_by": "system" if options.stratify else None,
        },
        "keys": {"energy": REF_ENERGY, "forces": REF_FORCES, "stress": REF_STRESS},
        "units": {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3", "positions": "Å"},
        "label_settings": {h: settings.get(h, {}) for h in used_hashes},
    }


def _curation(
    options: ExportOptions,
    duplicates: dict[str, str],
    outliers: dict[str, str],
    removed: dict[str, str],
) -> dict:
    """The manifest's account of what was left out or flagged, and why."""
    return {
        "removed": {
            "duplicates": duplicates,
            "outliers": removed,
        },
        "outliers_flagged_not_removed": {k: v for k, v in outliers.items() if k not in removed},
        "outlier_filter": (
            None
            if options.outlier_k is None
            else {"k_robust_sd": options.outlier_k, "removed": options.remove_outliers}
        ),
    }


def _write_manifest(manifest: dict, path: Path, part: dict[Path, Path]) -> None:
    """Write the manifest, the last file: under its final name, it says the export finished."""
    part[path].write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    part[path].replace(path)


# ------------------------------------------------------------------ the production models


def _model_targets(out_dir: Path, models: Sequence[ModelFile]) -> list[Path]:
    """Every file ``models`` may write (their weights, LAMMPS files, SHA256SUMS)."""
    if not models:
        return []
    mdir = out_dir / MODELS_DIR
    paths = [mdir / m.name for m in models]
    return [*paths, *(p.with_name(p.name + LAMMPS_SUFFIX) for p in paths), mdir / "SHA256SUMS"]


def _check_weights(models: Sequence[ModelFile]) -> None:
    """Refuse, before anything is written, weights that do not hash to their record."""
    if len({m.campaign for m in models}) > 1 or len({m.member for m in models}) < len(models):
        raise ExportError("models of one committee are written, each member once")
    for m in models:
        got = hashlib.sha256(m.weights).hexdigest()
        if got != m.sha256:
            raise ExportError(
                f"model {m.model_id} (member {m.member}) hashes to {got}, its record says "
                f"{m.sha256}: nothing was written"
            )


def _write_models(
    out_dir: Path, models: Sequence[ModelFile], lammps: bool
) -> tuple[dict, dict[Path, Path]]:
    """Write the members' weights (and LAMMPS files) under temporary names.

    Returns the manifest's ``models`` account and ``{final path: written path}`` of
    what was written, for :func:`_publish_models`.
    """
    mdir = out_dir / MODELS_DIR
    try:
        mdir.mkdir(exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot write to {mdir}: {exc.strerror}") from None
    parts: dict[Path, Path] = {}
    for m in models:
        path = mdir / m.name
        parts[path] = path.with_name(path.name + ".part")
        parts[path].write_bytes(m.weights)
    # In the models folder: the converted files are then renamed, never copied.
    with tempfile.TemporaryDirectory(prefix=".lammps-", dir=mdir) as work:
        if lammps:
            weights = {m.name: m.weights for m in models}
            heads = {m.name: m.head for m in models}
            conversion, converted = convert_for_lammps(weights, Path(work), heads)
        else:
            conversion, converted = _lammps_account(None, "not asked for", asked=False), {}
        members = [_member_entry(m, mdir, converted, parts) for m in models]
    sums = mdir / "SHA256SUMS"
    parts[sums] = sums.with_name(sums.name + ".part")
    lines = [(e["sha256"], e["file"]) for e in members]
    lines += [(e["lammps_sha256"], e["lammps_file"]) for e in members if e["lammps_file"]]
    parts[sums].write_text(
        "".join(f"{sha}  {name.removeprefix(MODELS_DIR + '/')}\n" for sha, name in lines)
    )
    account = {
        "campaign": models[0].campaign,
        "iteration": models[0].iteration,
        "directory": MODELS_DIR,
        # sha256sum's format, names relative to the folder: cd models; sha256sum -c SHA256SUMS
        "sha256sums": f"{MODELS_DIR}/SHA256SUMS",
        "members": members,
        "lammps": conversion,
    }
    return account, parts


def _member_entry(
    m: ModelFile, mdir: Path, converted: dict[str, Path], parts: dict[Path, Path]
) -> dict:
    """The manifest's entry of one member; its LAMMPS file, if converted, moves into
    ``parts`` under its temporary name."""
    entry = {
        "member": m.member,
        "model_id": m.model_id,
        "seed": m.seed,
        "file": f"{MODELS_DIR}/{m.name}",
        "sha256": m.sha256,
        "head": m.head,
        "bytes": len(m.weights),
        "lammps_file": None,
        "lammps_sha256": None,
    }
    if m.name in converted:
        lmp = mdir / (m.name + LAMMPS_SUFFIX)
        parts[lmp] = lmp.with_name(lmp.name + ".part")
        converted[m.name].replace(parts[lmp])
        entry["lammps_file"] = f"{MODELS_DIR}/{lmp.name}"
        entry["lammps_sha256"] = sha256_file(parts[lmp])
    return entry


def _publish_models(targets: Sequence[Path], parts: dict[Path, Path]) -> None:
    """Rename the written model files to their final names; remove an earlier export's
    file this one did not write (a LAMMPS file whose conversion failed this time)."""
    for path in targets:
        if path in parts:
            parts[path].replace(path)
        else:
            path.unlink(missing_ok=True)


#: Run in a fresh interpreter: mace-torch's own converter on each path in turn (one
#: import for the committee), then a check that its output loads as TorchScript.
_LAMMPS_SCRIPT = """
import sys
import torch
from mace.cli import create_lammps_model
args = sys.argv[1:]
for path, head in zip(args[::2], args[1::2]):
    sys.argv = ["create_lammps_model", path, "--head", head]
    create_lammps_model.main()
    torch.jit.load(path + "-lammps.pt", map_location="cpu")
"""


def convert_for_lammps(
    weights: dict[str, bytes], workdir: Path, heads: dict[str, str] | None = None
) -> tuple[dict, dict[str, Path]]:
    """Convert MACE models for LAMMPS with ``mace.cli.create_lammps_model`` (libtorch
    format, float64), in a subprocess: mace-torch sets process-wide torch settings.

    Parameters
    ----------
    weights
        ``{file name: .model bytes}``.
    heads
        ``{file name: head}`` to convert (default MACE's ``Default``): a fine-tuned
        multihead model's own head, not its replay head.
    workdir
        An empty folder to convert in (the converted files are left there).

    Returns
    -------
    tuple
        The manifest's account of the conversion (``written``, or why not) and
        ``{file name: converted file in workdir}``; empty when the conversion failed
        (all members or none).
    """
    paths, argv = [], []
    for name, data in weights.items():
        (workdir / name).write_bytes(data)
        paths.append(workdir / name)
        argv += [str(workdir / name), (heads or {}).get(name, FINETUNED_HEAD)]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LAMMPS_SCRIPT, *argv],
            cwd=workdir,
            stdin=subprocess.DEVNULL,  # a model with several heads asks which: refuse
            capture_output=True,
            text=True,
            timeout=LAMMPS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return _lammps_account(None, f"timed out after {LAMMPS_TIMEOUT_S} s"), {}
    wall = round(time.perf_counter() - start, 1)
    out = {p.name: p.with_name(p.name + LAMMPS_SUFFIX) for p in paths}
    if done.returncode != 0 or not all(p.is_file() for p in out.values()):
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else f"exit status {done.returncode}"
        return _lammps_account(wall, f"mace.cli.create_lammps_model failed: {why}"), {}
    return _lammps_account(wall, None), out


def _lammps_account(wall_s: float | None, failure: str | None, asked: bool = True) -> dict:
    return {
        "asked_for": asked,
        "written": failure is None,
        "converter": "mace.cli.create_lammps_model",
        "format": "libtorch",
        "dtype": "float64",
        "wall_s": wall_s,
        "not_written_because": failure,
        "usage": LAMMPS_USAGE if failure is None else None,
    }
