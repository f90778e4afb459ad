"""Storing imported frames in a campaign: structures of origin ``imported`` (iteration 0,
with the source file and frame index as lineage) and, for labelled frames, their labels
at the campaign's settings hash, marked with the file they came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aloop.dataset.export import sha256_file
from aloop.dataset.importing import ImportedFrame, ImportRefused
from aloop.records import CampaignRecord, LabelRecord, StructureRecord
from aloop.vocabulary import LabelStatus, Origin, Stage, StageStatus, Verdict
from db.iterations import find_iteration
from db.labels import record_label
from db.structures import insert_structures

__all__ = ["ImportRefused", "ImportResult", "import_frames"]


@dataclass
class ImportResult:
    """Counts of an import."""

    frames: int = 0
    new_structures: int = 0
    labels_added: int = 0
    to_label: int = 0


def import_frames(
    campaign: CampaignRecord,
    frames: Iterable[ImportedFrame],
    *,
    system: str,
    charge: int,
    multiplicity: int,
    settings_hash: str,
    settings: dict,
    source: Path,
) -> ImportResult:
    """Store ``frames`` as initial data of ``campaign``; returns what was added.

    Unlabelled frames become iteration-0 structures selected for labelling, so they are
    refused once iteration 0's labelling is done (they would never be labelled).
    """
    seed = find_iteration(campaign.id, 0)
    labelling_done = seed is not None and seed.stage_status(Stage.LABEL) is StageStatus.DONE
    digest = sha256_file(source)
    result = ImportResult()
    pending: list[tuple[StructureRecord, ImportedFrame]] = []
    for frame in frames:
        result.frames += 1
        if not frame.labelled and labelling_done:
            raise ImportRefused(
                f"frame {frame.index} of {source} has no label, and campaign "
                f"{campaign.name!r} has finished labelling its initial structures: import "
                "unlabelled structures before the first `aloop run`, or into a new campaign"
            )
        rec = StructureRecord.from_atoms(
            frame.atoms,
            system,
            Origin.IMPORTED,
            charge=charge,
            multiplicity=multiplicity,
            iteration=0,
            lineage={"source_file": str(source), "source_index": frame.index},
            verdict=Verdict.SELECTED,
            verdict_reason="imported with its label" if frame.labelled else "imported: to label",
        )
        pending.append((rec, frame))
    inserted = insert_structures(campaign.id, [rec for rec, _ in pending])
    result.new_structures = inserted.inserted
    for sid, (_, frame) in zip(inserted.ids, pending, strict=True):
        if not frame.labelled:
            result.to_label += 1
            continue
        _, created = record_label(
            campaign.id,
            LabelRecord(
                structure_id=sid,
                settings_hash=settings_hash,
                status=LabelStatus.OK,
                settings={**settings, "imported_from": str(source), "source_sha256": digest},
                energy=frame.energy,
                forces=frame.forces,
                stress=frame.stress,
                iteration=0,
            ),
        )
        result.labels_added += created
    return result
