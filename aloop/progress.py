"""Progress of a running campaign: what the loop reports, and a reporter that logs it.

The live terminal display is :class:`aloop.cli.reporter.RichReporter`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aloop.vocabulary import Stage


class Reporter(Protocol):
    """What the campaign loop tells whoever watches it."""

    def stage_started(self, iteration: int, stage: Stage) -> None: ...

    def stage_finished(
        self, iteration: int, stage: Stage, seconds: float, summary: str
    ) -> None: ...

    def stage_skipped(self, iteration: int, stage: Stage) -> None: ...

    def labels(self, done: int, total: int, failed: int, rejected: int = 0) -> None:
        """Labelling progress: ``failed`` SCFs and ``rejected`` geometries apart."""

    def message(self, text: str) -> None: ...


class LogReporter:
    """Reports through a logger (Prefect's run logger inside a flow, else ``logging``)."""

    def __init__(self, logger: Any = None) -> None:
        self.log = logger or logging.getLogger("aloop")
        self._last_labels = -1

    def stage_started(self, iteration: int, stage: Stage) -> None:
        self.log.info("iteration %d: %s started", iteration, stage)

    def stage_finished(self, iteration: int, stage: Stage, seconds: float, summary: str) -> None:
        self.log.info("iteration %d: %s done in %.1f s: %s", iteration, stage, seconds, summary)

    def stage_skipped(self, iteration: int, stage: Stage) -> None:
        self.log.info("iteration %d: %s already done (resumed)", iteration, stage)

    def labels(self, done: int, total: int, failed: int, rejected: int = 0) -> None:
        # One line per tenth of the batch, not per structure.
        step = max(1, total // 10)
        if done == total or done // step != self._last_labels:
            self._last_labels = done // step
            self.log.info("labelled %d/%d (%d failed, %d rejected)", done, total, failed, rejected)

    def message(self, text: str) -> None:
        self.log.info(text)
