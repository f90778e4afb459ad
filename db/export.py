"""The database side of dataset export and import: which labels a query selects, their
records in batches, each campaign's production committee and its weights (db.datasets
records the export itself)."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mongoengine.connection import get_db

from aloop.dataset.export import ExportError, ModelFile, Summary
from aloop.errors import AloopError
from aloop.records import IterationRecord
from aloop.vocabulary import LabelStatus, Origin, Stage, StageStatus, Verdict
from db.arrays import decode_array
from db.blobs import BlobIntegrityError
from db.documents import Campaign, Label
from db.isolated_atoms import isolated_atom_ids
from db.iterations import final_iteration
from db.models import final_committee, load_model_weights
from db.scan import get_many, scan


def _check_finite(sid: Any, energy: Any, forces: Any, stress: Any) -> None:
    """Refuse an "ok" label that is not finite (imports before they were checked stored
    NaN): exporting it would hand MACE a NaN, and no split file is written yet."""
    bad = [
        name
        for name, value in (("energy", energy), ("forces", forces), ("stress", stress))
        if (value is None and name != "stress")
        or (value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))))
    ]
    if bad:
        raise ExportError(
            f"structure {sid} has an ok label whose {' and '.join(bad)} is not finite "
            "(stored by an older release's import): nothing was written; import the data "
            "again into a new campaign, or export the others with --origin/--iteration"
        )


@dataclass
class ExportQuery:
    """What to export; empty lists mean "any"."""

    campaigns: list[str]
    systems: list[str] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    settings_hashes: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The query as stored in the manifest and on the Dataset document."""
        return {k: v for k, v in self.__dict__.items() if v}


class DatabaseSource:
    """:class:`aloop.dataset.export.Source` over the documents of db/.

    Each collection is read once, as one streaming query (per-id lookups are what make
    an embedded store slow). The first pass copies the matching labels and structures
    into a temporary SQLite file keyed by structure id, so the writing pass can fetch
    them in any order and memory holds only the small per-structure summaries. Use it as
    a context manager: the temporary file goes away on exit.
    """

    def __init__(self, query: ExportQuery, fast: bool = True) -> None:
        self.query = query
        self.fast = fast
        found = {c.name: c for c in Campaign.objects(name__in=query.campaigns).only("name")}
        missing = [n for n in query.campaigns if n not in found]
        if missing:
            raise ExportError(f"no campaign named {', '.join(map(repr, missing))}")
        self.campaigns = {c.id: c.name for c in found.values()}
        self._settings: dict[str, dict] = {}
        self._elements: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="aloop-export-")
        self._join = sqlite3.connect(Path(self._tmp.name) / "join.db")
        self._join.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE lab(sid TEXT PRIMARY KEY, energy REAL, forces BLOB, stress BLOB,"
            " hash TEXT);"
            "CREATE TABLE st(sid TEXT PRIMARY KEY, campaign TEXT, system TEXT, numbers BLOB,"
            " positions BLOB, cell BLOB, pbc INTEGER, charge INTEGER, mult INTEGER,"
            " iteration INTEGER, origin TEXT, fdev REAL, holdout INTEGER);"
        )

    def __enter__(self) -> DatabaseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary join file."""
        self._join.close()
        self._tmp.cleanup()

    def _campaign_match(self) -> Any:
        ids = list(self.campaigns)
        return ids[0] if len(ids) == 1 else {"$in": ids}

    def _structure_filter(self) -> dict:
        q: dict[str, Any] = {"campaign": self._campaign_match()}
        if self.query.systems:
            q["system"] = {"$in": self.query.systems}
        if self.query.iterations:
            q["iteration"] = {"$in": self.query.iterations}
        if self.query.origins:
            q["origin"] = {"$in": self.query.origins}
        if self.query.tags:
            q["tags"] = {"$in": self.query.tags}
        return q

    def _label_filter(self) -> dict:
        q: dict[str, Any] = {"campaign": self._campaign_match(), "status": LabelStatus.OK.value}
        if self.query.settings_hashes:
            q["settings_hash"] = {"$in": self.query.settings_hashes}
        if self.query.methods:
            methods = [m.upper() for m in self.query.methods]
            q["$or"] = [
                {"settings.method": {"$in": methods}},
                {"settings.xc": {"$in": self.query.methods}},
            ]
        return q

    def _copy(self, table: str, rows: list[tuple]) -> None:
        marks = ",".join("?" * len(rows[0]))
        self._join.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)
        rows.clear()

    def summaries(self) -> Iterator[Summary]:
        """One summary per successfully labelled structure the query selects."""
        scalars = self._copy_labels()
        yield from self._copy_structures(scalars)
        self._join.commit()

    def _copy_labels(self) -> dict[str, tuple[str, float, float]]:
        """First pass: the selected labels into the join file; per structure its
        ``(settings hash, energy per atom, max force)``, NaN force where two hashes."""
        db = get_db()
        scalars: dict[str, tuple[str, float, float]] = {}
        rows: list[tuple] = []
        for d in scan("labels", self._label_filter(), fast=self.fast):
            sid = d["structure"]
            if sid in scalars:  # a second settings hash for this structure
                scalars[sid] = (*scalars[sid][:2], float("nan"))
                continue
            forces = decode_array(d["forces"], db)
            stress = decode_array(d["stress"], db) if d.get("stress") else None
            _check_finite(sid, d.get("energy"), forces, stress)
            self._settings.setdefault(d["settings_hash"], d.get("settings") or {})
            scalars[sid] = (
                d["settings_hash"],
                float(d["energy"]) / len(forces),
                float(np.max(np.linalg.norm(forces, axis=1))),
            )
            rows.append(
                (
                    sid,
                    float(d["energy"]),
                    forces.astype("<f8").tobytes(),
                    None if stress is None else stress.astype("<f8").tobytes(),
                    d["settings_hash"],
                )
            )
            if len(rows) >= 1000:
                self._copy("lab", rows)
        if rows:
            self._copy("lab", rows)
        return scalars

    def _copy_structures(self, scalars: dict[str, tuple[str, float, float]]) -> Iterator[Summary]:
        """Second pass: the labelled structures into the join file, with their summaries."""
        db = get_db()
        rows: list[tuple] = []
        for d in scan("structures", self._structure_filter(), fast=self.fast):
            sid = d["_id"]
            if sid not in scalars or d["origin"] == Origin.ISOLATED_ATOM:
                continue  # isolated atoms are the E0s (isolated_atoms), not frames
            if scalars[sid][2] != scalars[sid][2]:  # NaN: marked above
                raise ExportError(
                    f"structure {sid} has labels at more than one settings hash: "
                    "choose one with --settings-hash or --method"
                )
            numbers = decode_array(d["numbers"], db)
            rows.append(
                (
                    sid,
                    self.campaigns[d["campaign"]],
                    d["system"],
                    numbers.astype("<i8").tobytes(),
                    decode_array(d["positions"], db).astype("<f8").tobytes(),
                    decode_array(d["cell"], db).astype("<f8").tobytes(),
                    sum(1 << i for i, p in enumerate(d["pbc"]) if p),
                    d.get("charge", 0),
                    d.get("multiplicity", 1),
                    d.get("iteration", 0),
                    d["origin"],
                    (d.get("uncertainty") or {}).get("force_dev_max"),
                    int(d.get("verdict") == Verdict.HOLDOUT),
                )
            )
            if len(rows) >= 1000:
                self._copy("st", rows)
            settings_hash, epa, fmax = scalars[sid]
            yield Summary(
                structure_id=sid,
                # Interned: one string per system and settings hash, not one per row.
                system=sys.intern(d["system"]),
                content_hash=d["hash"],
                settings_hash=sys.intern(settings_hash),
                energy_per_atom=epa,
                max_force=fmax,
                elements=self._intern(numbers),
                holdout=d.get("verdict") == Verdict.HOLDOUT,
            )
        if rows:
            self._copy("st", rows)

    def _intern(self, numbers: np.ndarray) -> tuple[int, ...]:
        """The sorted elements of ``numbers``, one tuple per composition."""
        key = tuple(sorted({int(z) for z in numbers}))
        return self._elements.setdefault(key, key)

    def isolated_atoms(self) -> list[dict]:
        """The successful isolated-atom labels of the campaigns (the E0s), as records.

        Whatever the query's systems, iterations or origins: they are no system's
        frames, and the export picks the ones its frames' elements and settings need.
        """
        db = get_db()
        ids = [sid for c in self.campaigns for sid in isolated_atom_ids(c)]
        if not ids:
            return []
        found = get_many("structures", ids)
        out = []
        for d in Label._get_collection().find(
            {"structure": {"$in": ids}, "status": LabelStatus.OK.value}
        ):
            st = found[d["structure"]]
            forces = decode_array(d["forces"], db)
            _check_finite(d["structure"], d.get("energy"), forces, None)
            self._settings.setdefault(d["settings_hash"], d.get("settings") or {})
            out.append(
                {
                    "structure_id": d["structure"],
                    "label_id": str(d["_id"]),
                    "campaign": self.campaigns[st["campaign"]],
                    "numbers": decode_array(st["numbers"], db),
                    "positions": decode_array(st["positions"], db),
                    "cell": decode_array(st["cell"], db),
                    "pbc": list(st["pbc"]),
                    "charge": st.get("charge", 0),
                    "multiplicity": st.get("multiplicity", 1),
                    "system": st["system"],
                    "iteration": st.get("iteration", 0),
                    "origin": st["origin"],
                    "force_dev_max": None,
                    "energy": float(d["energy"]),
                    "forces": forces,
                    "stress": None,
                    "settings_hash": d["settings_hash"],
                }
            )
        return out

    def records(self, ids: Sequence[str]) -> Iterator[dict]:
        """Full records for ``ids`` (in that order): geometry, label and provenance."""
        found = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self._join.execute(
                "SELECT st.sid, campaign, system, numbers, positions, cell, pbc, charge, mult,"
                " iteration, origin, fdev, energy, forces, stress, hash, holdout"
                f" FROM st JOIN lab ON st.sid = lab.sid WHERE st.sid IN ({marks})",
                chunk,
            ):
                found[row[0]] = row
        for sid in ids:
            (_, camp, system, numbers, pos, cell, pbc, charge, mult, it, origin, fdev, energy,
             forces, stress, settings_hash, holdout) = found[sid]  # fmt: skip
            z = np.frombuffer(numbers, dtype="<i8")
            yield {
                "structure_id": sid,
                "campaign": camp,
                "numbers": z,
                "positions": np.frombuffer(pos, dtype="<f8").reshape(len(z), 3),
                "cell": np.frombuffer(cell, dtype="<f8").reshape(3, 3),
                "pbc": [bool(pbc >> i & 1) for i in range(3)],
                "charge": charge,
                "multiplicity": mult,
                "system": system,
                "iteration": it,
                "origin": origin,
                "force_dev_max": fdev,
                "energy": energy,
                "forces": np.frombuffer(forces, dtype="<f8").reshape(len(z), 3),
                "stress": None if stress is None else np.frombuffer(stress, dtype="<f8"),
                "settings_hash": settings_hash,
                "holdout": bool(holdout),
            }

    def label_settings(self) -> dict[str, dict]:
        """The settings of each label settings hash seen in the first pass."""
        return dict(self._settings)


def production_committees(campaigns: Mapping[Any, str]) -> list[dict]:
    """The manifest's account of each campaign's production committee, by ``{id: name}``.

    The final iteration's members, their seeds and hashes, and the committee's error on
    the hold-out; for a campaign without one (still exploring, or its final training not
    done), ``available`` is false and ``not_available_because`` says why. An exploring
    iteration's committee is never named instead.
    """
    return [_production_committee(cid, name) for cid, name in campaigns.items()]


def _production_committee(campaign_id: Any, name: str) -> dict:
    final = final_iteration(campaign_id)
    members = final_committee(campaign_id)
    if final is None or not members:
        return {
            "campaign": name,
            "available": False,
            "iteration": None,
            "members": [],
            "holdout_error": None,
            "not_available_because": why_no_final_committee(campaign_id, name, final),
        }
    stats = final.stats.final
    err = stats.final_holdout if stats is not None else None
    return {
        "campaign": name,
        "available": True,
        "iteration": final.index,
        "trained_on_structures": stats.final.structures if stats is not None else None,
        "members": [
            {
                "member": m.member,
                "model_id": str(m.id),
                "seed": m.seed,
                "sha256": m.sha256,
                "head": m.head,
            }
            for m in members
        ],
        "holdout_error": None
        if err is None
        else {
            "n": err.n,
            "energy_rmse_per_atom": err.energy_rmse_per_atom,
            "forces_rmse": err.forces_rmse,
            "forces_max_p95": err.forces_max_p95,
            "units": {
                "energy_rmse_per_atom": "eV/atom",
                "forces_rmse": "eV/Å",
                "forces_max_p95": "eV/Å",
            },
        },
        "not_available_because": None,
    }


def why_no_final_committee(campaign_id: Any, name: str, final: IterationRecord | None) -> str:
    """Why campaign ``name`` has no production committee, in one sentence."""
    if final is None:
        doc = Campaign.objects.only("status", "status_reason").get(id=campaign_id)
        reason = f" ({doc.status_reason})" if doc.status_reason else ""
        return (
            f"campaign {name!r} has no final committee yet: it is {doc.status}{reason} and "
            "no stopping rule has led to its final training (its exploring committees are "
            "not production models)"
        )
    state = final.stages.get(Stage.FINAL)
    status = state.status if state is not None else StageStatus.PENDING
    if status is not StageStatus.DONE:
        error = f": {state.error}" if state is not None and state.error else ""
        state_words = status if status is StageStatus.FAILED else f"is {status}"
        return (
            f"campaign {name!r} has no final committee yet: the final training "
            f"(iteration {final.index}) {state_words}{error}"
        )
    return f"campaign {name!r}: its final iteration {final.index} is done but stores no model"


def final_model_files(campaigns: Mapping[Any, str]) -> list[ModelFile]:
    """The production committee's members with their weights, sha256-verified.

    Raises
    ------
    ExportError
        Not exactly one campaign, or it has no final committee (the reason is named).
    AloopError
        Stored weights do not hash to their recorded sha256.
    """
    if len(campaigns) != 1:
        raise ExportError(
            "--models writes one campaign's production committee: export one campaign"
        )
    ((campaign_id, name),) = campaigns.items()
    members = final_committee(campaign_id)
    final = final_iteration(campaign_id)
    if final is None or not members:
        raise ExportError(
            f"--models: {why_no_final_committee(campaign_id, name, final)}; nothing was written"
        )
    out = []
    for m in members:
        try:
            weights = load_model_weights(m.id)
        except BlobIntegrityError as exc:
            raise AloopError(
                f"--models: the weights of member {m.member} ({m.id}) are damaged: {exc}; "
                "nothing was written"
            ) from None
        out.append(
            ModelFile(
                campaign=name,
                iteration=final.index,
                member=m.member,
                model_id=str(m.id),
                seed=m.seed,
                sha256=m.sha256,
                weights=weights,
                head=m.head,
            )
        )
    return out
