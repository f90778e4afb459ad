"""The campaign's progress live in the terminal (what ``aloop run`` shows).

Lines are printed without wrapping (``soft_wrap``): a terminal folds a long line itself,
and a log that captures stderr keeps it whole instead of cut at 80 columns. While the
display runs, warnings that libraries raise about themselves (torch, e3nn, MACE: e.g.
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, which MACE sets on import) go to the log (logger
``aloop.warnings``), not the terminal; any other warning is one line above the display.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from aloop.vocabulary import Stage

#: Packages whose own warnings concern their authors, not a campaign's user.
_QUIET_PACKAGES = ("/torch/", "/e3nn/", "/mace/", "/torch_geometric/", "/cuequivariance")

log = logging.getLogger("aloop.warnings")


class RichReporter:
    """Live terminal display: one line per stage, a progress bar while labelling."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._bar: Any = None
        self._status: Any = None
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._warning

    def _warning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = f"{category.__name__}: {message} ({filename}:{lineno})"
        if any(p in filename.replace("\\", "/") for p in _QUIET_PACKAGES):
            log.info(text)
        else:
            shown = f"[yellow]warning:[/] {category.__name__}: {message}"
            self.console.print(shown, soft_wrap=True)

    def _stop_live(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._bar = None
        if self._status is not None:
            self._status.stop()
            self._status = None

    def stage_started(self, iteration: int, stage: Stage) -> None:
        self._stop_live()
        if stage != Stage.LABEL:
            self._status = self.console.status(f"iteration {iteration}: {stage} ...")
            self._status.start()

    def stage_finished(self, iteration: int, stage: Stage, seconds: float, summary: str) -> None:
        self._stop_live()
        self.console.print(
            f"[green]✓[/] iteration {iteration} [bold]{stage:<7}[/] {seconds:7.1f} s  {summary}",
            soft_wrap=True,
        )

    def stage_skipped(self, iteration: int, stage: Stage) -> None:
        self.console.print(
            f"[dim]· iteration {iteration} {stage:<7} already done (resumed)[/]", soft_wrap=True
        )

    def labels(self, done: int, total: int, failed: int, rejected: int = 0) -> None:
        """Labelling progress; ``failed`` and ``rejected`` (by the geometry guard) apart."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        if self._progress is None:
            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._bar = self._progress.add_task("labelling", total=total)
        bad = f"{failed} failed, {rejected} rejected" if rejected else f"{failed} failed"
        self._progress.update(
            self._bar, completed=done, total=total, description=f"labelling ({bad})"
        )

    def message(self, text: str) -> None:
        self._stop_live()
        self.console.print(text, soft_wrap=True)

    def close(self) -> None:
        """Stop any live display; warnings are shown as before."""
        self._stop_live()
        if warnings.showwarning == self._warning:
            warnings.showwarning = self._showwarning
