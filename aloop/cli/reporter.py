"""The campaign's progress live in the terminal (what ``aloop run`` shows)."""

from __future__ import annotations

from typing import Any

from aloop.vocabulary import Stage


class RichReporter:
    """Live terminal display: one line per stage, a progress bar while labelling."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._bar: Any = None
        self._status: Any = None

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
            f"[green]✓[/] iteration {iteration} [bold]{stage:<7}[/] {seconds:7.1f} s  {summary}"
        )

    def stage_skipped(self, iteration: int, stage: Stage) -> None:
        self.console.print(f"[dim]· iteration {iteration} {stage:<7} already done (resumed)[/]")

    def labels(self, done: int, total: int, failed: int) -> None:
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
        self._progress.update(
            self._bar, completed=done, total=total, description=f"labelling ({failed} failed)"
        )

    def message(self, text: str) -> None:
        self._stop_live()
        self.console.print(text)

    def close(self) -> None:
        """Stop any live display."""
        self._stop_live()
