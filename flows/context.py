"""What every stage of one campaign run shares: the config, the campaign, the label
settings per system, and reads that stay fixed for the length of an iteration."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aloop.errors import AloopError
from aloop.records import LabelRecord
from aloop.structures import load_system_structures
from aloop.vocabulary import LabelStatus
from db import iterations, labels, models
from dft.batch import LabelTask
from dft.settings import LabelSettings

if TYPE_CHECKING:
    from ase import Atoms

    from aloop.config import CampaignConfig
    from aloop.models.committee import Committee
    from aloop.progress import Reporter
    from aloop.records import CampaignRecord
    from flows.lease import RunLease

#: Labels one batch: ``(jobs, on_record)`` where each job is ``(LabelTask, LabelSettings)``
#: and ``on_record`` must be called with every record as soon as it exists.
LabelRunner = Callable[
    [Sequence[tuple[LabelTask, LabelSettings]], Callable[[LabelRecord], None]], None
]


def label_recorder(
    loop: Loop, total: int, iteration_of: Callable[[str], int]
) -> tuple[Callable[[LabelRecord], None], Counter[LabelStatus]]:
    """An ``on_record`` for a :data:`LabelRunner` that stores each record in its
    iteration (``iteration_of(structure_id)``) and reports progress out of ``total``,
    with the counter of outcomes it fills."""
    finished = Counter[LabelStatus]()

    def on_record(rec: LabelRecord) -> None:
        rec.iteration = iteration_of(rec.structure_id)
        labels.record_label(loop.campaign.id, rec)
        finished[LabelStatus(rec.status)] += 1
        loop.reporter.labels(
            finished.total(),
            total,
            finished[LabelStatus.FAILED],
            rejected=finished[LabelStatus.REJECTED],
        )

    return on_record, finished


class CampaignError(AloopError):
    """The campaign cannot go on as it stands (e.g. too few successful labels to train):
    the command failed (exit 1), and rerunning it unchanged will fail the same way."""


@dataclass
class Loop:
    """What every stage of one campaign run shares."""

    cfg: CampaignConfig
    campaign: CampaignRecord
    base_dir: Path
    workdir: Path
    reporter: Reporter
    #: The run's hold on the campaign (flows/lease.py); None when nothing guards it.
    lease: RunLease | None = None
    #: The campaign's labeller, for labelling outside the label stage (isolated atoms
    #: before training); None: those are labelled in a worker process of their own.
    label_runner: LabelRunner | None = None
    _committees: dict[int, Committee] = field(default_factory=dict, repr=False)
    _labelled: tuple[int, list, list] = field(default=(-1, [], []), repr=False)

    def check_lease(self) -> None:
        """Raise :class:`~flows.lease.LeaseLost` if another run took the campaign over."""
        if self.lease is not None:
            self.lease.check()

    def label_settings(self, system: str) -> LabelSettings:
        """Labelling settings of a system (periodic systems use the GTH options)."""
        return self._settings[system]

    @cached_property
    def _settings(self) -> dict[str, LabelSettings]:
        out = {}
        for s in self.cfg.systems:
            periodic = bool(self.starts[s.name][0].pbc.any())
            out[s.name] = LabelSettings.from_config(self.cfg.dft, periodic=periodic)
        return out

    @cached_property
    def starts(self) -> dict[str, list[Atoms]]:
        """Each system's starting geometries from the campaign file."""
        return {s.name: load_system_structures(s, self.base_dir) for s in self.cfg.systems}

    def labelled_before(self, iteration: int) -> tuple[list[str], list[Atoms]]:
        """Structures labelled before ``iteration`` (ids, Atoms with REF_ keys).

        Fixed once the iteration starts (earlier labelling is done), so train, explore
        and select share one read instead of three.
        """
        if self._labelled[0] != iteration:
            ids, frames = labels.labelled_frames(
                self.campaign.id, self.settings_hashes(), before_iteration=iteration
            )
            self._labelled = (iteration, ids, frames)
        return self._labelled[1], self._labelled[2]

    def settings_hashes(self) -> list[str]:
        """The label settings hashes in use (one per kind of system)."""
        return sorted({s.settings_hash() for s in self._settings.values()})

    def settings_by_hash(self) -> dict[str, LabelSettings]:
        """The label settings in use, by their hash."""
        return {s.settings_hash(): s for s in self._settings.values()}

    def elements_by_hash(self) -> dict[str, set[int]]:
        """For each settings hash in use, the elements of the systems labelled with it."""
        out: dict[str, set[int]] = {}
        for s in self.cfg.systems:
            zs = out.setdefault(self._settings[s.name].settings_hash(), set())
            zs.update(int(z) for a in self.starts[s.name] for z in a.numbers)
        return out

    def calibration_scale(self, iteration: int) -> float:
        """The deviation-to-error scale a calibrated trust window is read with at
        ``iteration``: the latest one fitted before it on at least
        ``MIN_CALIBRATION_FRAMES`` frames (1, said so, when none was yet)."""
        from aloop.calibration import MIN_CALIBRATION_FRAMES, usable_scale

        earlier = [
            it for it in iterations.campaign_iterations(self.campaign.id) if it.index < iteration
        ]
        scale = usable_scale(
            it.stats.calibration for it in sorted(earlier, key=lambda it: -it.index)
        )
        if scale is not None:
            return scale
        self.reporter.message(
            f"  iteration {iteration}: no calibration fitted on {MIN_CALIBRATION_FRAMES} or "
            "more frames yet; the calibrated trust window reads the raw deviation (scale 1)"
        )
        return 1.0

    def committee(self, iteration: int) -> tuple[Committee, list[Any]]:
        """The committee trained in ``iteration`` (loaded once) and its model ids."""
        from aloop.models.committee import Committee
        from aloop.models.io import load_model, pick_device

        members = models.committee_models(self.campaign.id, iteration)
        if len(members) != self.cfg.model.committee_size:
            raise CampaignError(
                f"iteration {iteration} has {len(members)} trained members, "
                f"expected {self.cfg.model.committee_size}"
            )
        if iteration not in self._committees:
            device = pick_device(self.cfg.model.device)
            loaded = [
                load_model(models.load_model_weights(m.id), m.sha256, device=device)
                for m in members
            ]
            self._committees = {iteration: Committee(loaded, device=device)}
        return self._committees[iteration], [m.id for m in members]
