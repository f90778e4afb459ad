"""The database side of dataset export and import: which labels a query selects, their
records in batches, and the Dataset document that records an export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mongoengine.connection import get_db

from aloop.dataset.export import ExportError, ExportResult, Summary
from aloop.versions import code_versions
from db.arrays import decode_array
from db.documents import Campaign, Dataset, Label, Structure

#: Ids per ``$in`` query.
BATCH = 1000


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
    """:class:`aloop.dataset.export.Source` over the documents of db/."""

    def __init__(self, query: ExportQuery) -> None:
        self.query = query
        found = {c.name: c for c in Campaign.objects(name__in=query.campaigns).only("name")}
        missing = [n for n in query.campaigns if n not in found]
        if missing:
            raise ExportError(f"no campaign named {', '.join(map(repr, missing))}")
        self.campaigns = {c.id: c.name for c in found.values()}
        self._label_of: dict[str, Any] = {}
        self._settings: dict[str, dict] = {}

    def _structure_filter(self) -> dict:
        q: dict[str, Any] = {"campaign": {"$in": list(self.campaigns)}}
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
        q: dict[str, Any] = {"campaign": {"$in": list(self.campaigns)}, "status": "ok"}
        if self.query.settings_hashes:
            q["settings_hash"] = {"$in": self.query.settings_hashes}
        if self.query.methods:
            methods = [m.upper() for m in self.query.methods]
            q["$or"] = [
                {"settings.method": {"$in": methods}},
                {"settings.xc": {"$in": self.query.methods}},
            ]
        return q

    def summaries(self) -> Iterator[Summary]:
        """One summary per successfully labelled structure the query selects."""
        db = get_db()
        structures = Structure._get_collection()
        cursor = Label._get_collection().find(
            self._label_filter(),
            {"structure": 1, "energy": 1, "forces": 1, "settings_hash": 1, "settings": 1},
        )
        batch: list[dict] = []

        def flush() -> Iterator[Summary]:
            ids = [d["structure"] for d in batch]
            meta = {
                d["_id"]: d
                for d in structures.find(
                    {"_id": {"$in": ids}, **self._structure_filter()}, {"system": 1, "hash": 1}
                )
            }
            for d in batch:
                m = meta.get(d["structure"])
                if m is None:
                    continue
                forces = decode_array(d["forces"], db)
                self._label_of[d["structure"]] = d["_id"]
                self._settings.setdefault(d["settings_hash"], d.get("settings") or {})
                yield Summary(
                    structure_id=d["structure"],
                    system=m["system"],
                    content_hash=m["hash"],
                    settings_hash=d["settings_hash"],
                    energy_per_atom=float(d["energy"]) / len(forces),
                    max_force=float(np.max(np.linalg.norm(forces, axis=1))),
                )
            batch.clear()

        for d in cursor:
            batch.append(d)
            if len(batch) >= BATCH:
                yield from flush()
        if batch:
            yield from flush()

    def records(self, ids: Sequence[str]) -> Iterator[dict]:
        """Full records for ``ids`` (in that order): geometry, label and provenance."""
        db = get_db()
        label_ids = [self._label_of[i] for i in ids]
        labels = {
            d["structure"]: d
            for d in Label._get_collection().find(
                {"_id": {"$in": label_ids}},
                {"structure": 1, "energy": 1, "forces": 1, "stress": 1, "settings_hash": 1},
            )
        }
        structures = {
            d["_id"]: d for d in Structure._get_collection().find({"_id": {"$in": list(ids)}})
        }
        for sid in ids:
            s, lab = structures[sid], labels[sid]
            yield {
                "structure_id": sid,
                "campaign": self.campaigns[s["campaign"]],
                "numbers": decode_array(s["numbers"], db),
                "positions": decode_array(s["positions"], db),
                "cell": decode_array(s["cell"], db),
                "pbc": s["pbc"],
                "charge": s.get("charge", 0),
                "multiplicity": s.get("multiplicity", 1),
                "system": s["system"],
                "iteration": s.get("iteration", 0),
                "origin": s["origin"],
                "force_dev_max": (s.get("uncertainty") or {}).get("force_dev_max"),
                "energy": lab["energy"],
                "forces": decode_array(lab["forces"], db),
                "stress": decode_array(lab["stress"], db) if lab.get("stress") else None,
                "settings_hash": lab["settings_hash"],
            }

    def label_settings(self) -> dict[str, dict]:
        """The settings of each label settings hash seen in the first pass."""
        return dict(self._settings)


def record_dataset(source: DatabaseSource, result: ExportResult, name: str) -> Any:
    """Store the export as a Dataset document (query, ids, split, files, manifest)."""
    first = next(iter(source.campaigns))
    ids = sorted(i for split in result.splits.values() for i in split)
    doc = Dataset(
        campaign=first,
        name=name,
        query=result.manifest["query"],
        structure_ids=ids,
        split=dict(result.splits),
        format="+".join(f["name"].rsplit(".", 1)[-1] for f in result.files),
        files=result.files,
        manifest=_storable(result.manifest),
        code_versions=code_versions(),
    )
    doc.save(force_insert=True)
    return doc.id


def _storable(manifest: dict) -> dict:
    """The manifest for a document: removal lists become counts (the file has them) and
    system names, which may contain dots, leave the field names."""
    out = {k: v for k, v in manifest.items() if k not in ("removed", "counts_per_system")}
    out["removed_counts"] = {k: len(v) for k, v in manifest["removed"].items()}
    out["counts_per_system"] = [
        {"split": split, "system": system, "n": n}
        for split, by_system in manifest["counts_per_system"].items()
        for system, n in by_system.items()
    ]
    out["outliers_flagged_not_removed"] = len(manifest["outliers_flagged_not_removed"])
    return out
