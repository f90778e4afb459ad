"""The dataset aggregate: the record of an export (query, ids, split, files, manifest)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aloop.versions import code_versions
from db.documents import Dataset

if TYPE_CHECKING:
    from aloop.dataset.export import ExportResult
    from db.export import DatabaseSource


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
