"""The live display and the one-line summaries: rejected labels shown as rejected, lines
not wrapped at 80 columns, library warnings sent to the log instead of the terminal."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import warnings

from rich.console import Console

from aloop.cli.reporter import RichReporter
from aloop.stats import IterationStats, LabelStats
from aloop.vocabulary import Stage


def _reporter() -> tuple[RichReporter, io.StringIO]:
    out = io.StringIO()
    return RichReporter(Console(file=out, width=80, force_terminal=False)), out


def test_label_summary_shows_rejected_apart_from_failed():
    stats = LabelStats(to_label=6, labelled=3, label_failures=3, label_rejected=2)
    assert stats.summary().startswith("3 ok, 1 failed, 2 rejected,")
    assert stats.to_doc()["label_failures"] == 3  # the stored key keeps its meaning


def test_old_label_stats_documents_still_read():
    doc = {"to_label": 4, "labelled": 3, "label_failures": 1, "dft_wall_s": 2.0}
    stats = IterationStats.from_doc(doc, 1).labelling
    assert stats is not None and stats.label_rejected == 0
    assert stats.summary() == "3 ok, 1 failed, DFT 2.0 s"


def test_live_labelling_line_counts_rejected_apart():
    reporter, _ = _reporter()
    try:
        reporter.labels(4, 10, failed=1, rejected=2)
        assert reporter._progress.tasks[0].description == "labelling (1 failed, 2 rejected)"
        reporter.labels(5, 10, failed=1)
        assert reporter._progress.tasks[0].description == "labelling (1 failed)"
    finally:
        reporter.close()


def test_stage_lines_are_not_wrapped_at_80_columns():
    reporter, out = _reporter()
    summary = "; ".join(
        f"water-{i}: 400 frames, 93% accurate, 12 candidate, 3 failed" for i in range(3)
    )
    try:
        reporter.stage_finished(2, Stage.EXPLORE, 12.5, summary)
        reporter.message("  " + "x" * 120)
    finally:
        reporter.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(summary) and len(lines[1]) == 122


def test_library_warnings_go_to_the_log_and_others_to_one_line(caplog):
    caplog.set_level(logging.INFO, logger="aloop.warnings")
    reporter, out = _reporter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn_explicit(
                "Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected",
                UserWarning,
                "/venv/lib/python3.11/site-packages/e3nn/o3/_wigner.py",
                10,
            )
            warnings.warn_explicit("a campaign warning", UserWarning, "/work/aloop/x.py", 1)
    finally:
        reporter.close()
    assert "TORCH_FORCE" not in out.getvalue()
    assert any("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in r.getMessage() for r in caplog.records)
    assert out.getvalue().strip() == "warning: UserWarning: a campaign warning"
    assert warnings.showwarning is not reporter._warning  # restored


def test_importing_mace_under_the_display_prints_no_torch_warning(tmp_path):
    """The real thing, in a fresh process: MACE sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD and
    e3nn warns about it on import."""
    log = tmp_path / "run.log"
    code = (
        "import logging\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
        "from aloop.cli.reporter import RichReporter\n"
        "r = RichReporter()\n"
        "import mace.calculators\n"
        "r.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in proc.stderr + proc.stdout
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in log.read_text()
