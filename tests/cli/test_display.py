"""The live display and the one-line summaries: rejected labels shown as rejected, lines
not wrapped at 80 columns, library warnings sent to the log instead of the terminal; the
``aloop status`` table and the Prefect artifact with the hold-out error, the calibration
and the final iteration (and without them, for campaigns stored before)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import yaml
from rich.console import Console

from aloop.cli.reporter import RichReporter
from aloop.cli.summary import holdout_line, iterations_table
from aloop.config import parse_config
from aloop.convergence import StopDecision
from aloop.records import CampaignRecord, IterationRecord, StageState
from aloop.stats import (
    Calibration,
    ExploreStats,
    FinalStats,
    HoldoutError,
    IterationStats,
    LabelStats,
    SelectStats,
    SystemSelection,
    SystemStats,
    TrainingStats,
)
from aloop.vocabulary import (
    FINAL_STAGES,
    CampaignStatus,
    Stage,
    StageStatus,
    stages_of,
)
from flows.artifacts import iteration_markdown

ROOT = Path(__file__).resolve().parents[2]


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


# ------------------------------------------------------------- status table, artifact

#: The first release's columns of ``aloop status``, which old campaigns still show.
FIRST_COLUMNS = ["it", "T", "E", "S", "L", "frames", "acc", "cand", "fail", "sel", "lab ok"]
FIRST_COLUMNS += ["lab fail", "F err"]
HOLDOUT_COLUMNS = ["hold", "F hold (n)", "cal"]


def _system(time_ratio: float | None) -> SystemStats:
    return SystemStats(
        name="water",
        sampled=100,
        accurate=90,
        candidate=8,
        failed=2,
        accurate_ratio=0.9,
        candidate_ratio=0.08,
        failed_ratio=0.02,
        histogram={"edges": [0.0, 1.0], "counts": [100]},
        trust_lo=0.05,
        trust_hi=0.3,
        walkers=4,
        md_steps=400,
        committee_calls=100,
        fixed_lo=None if time_ratio is None else 0.05,
        time_ratio=time_ratio,
        walkers_completed=None if time_ratio is None else 3,
    )


def _loop_stats(k: int, legacy: bool) -> IterationStats:
    """Exploring iteration ``k``: 90 % of frames accurate, 85 % of the walker time."""
    held = 0 if legacy else 2
    return IterationStats(
        explore=ExploreStats.of([_system(None if legacy else 0.85)]),
        selection=SelectStats.of(
            {"water": SystemSelection(candidates=8, selected=6, holdout=held)}
        ),
        labelling=LabelStats(
            to_label=6 + held,
            labelled=5 + held,
            label_failures=1,
            holdout_to_label=held,
            holdout_labelled=held,
        ),
        committee_error={"n": 5, "forces_rmse": 0.2 / k},
        holdout_error=None
        if legacy
        else HoldoutError(n=2 * k, n_new=2, forces_rmse=0.05 / k, forces_max_p95=0.15 / k),
        calibration=None
        if legacy
        else Calibration(
            n=7,
            scale=1.25,
            scale_90=2.0,
            spearman=0.7,
            coverage_90=None if k == 1 else 0.875,
            coverage_n=None if k == 1 else 8,
            points=[(0.01 * i, 0.0125 * i) for i in range(1, 8)],
        ),
    )


FINAL = FinalStats(
    final=TrainingStats(
        structures=40, members_trained=3, valid_forces_rmse=0.03, valid_energy_rmse_per_atom=0.002
    ),
    final_holdout=HoldoutError(n=4, forces_rmse=0.0125, forces_max_p95=0.04),
)


def _iteration(k: int, stats: IterationStats, stages=None) -> IterationRecord:
    done = StageState(StageStatus.DONE)
    return IterationRecord(
        id=k, index=k, stages=dict.fromkeys(stages or stages_of(k), done), stats=stats
    )


def _history(legacy: bool = False, final: bool = False) -> list[IterationRecord]:
    its = [_iteration(0, IterationStats())]
    its += [_iteration(k, _loop_stats(k, legacy)) for k in (1, 2)]
    if final:
        its.append(_iteration(3, IterationStats(final=FINAL), FINAL_STAGES))
    return its


def _rows(table) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the rows by their first cell, as ``aloop status`` prints them."""
    out = io.StringIO()
    Console(file=out, width=250, force_terminal=False).print(table)
    lines = [line for line in out.getvalue().splitlines() if line[:1] in "┃│"]
    cells = [[c.strip() for c in line.strip("┃│").split(line[0])] for line in lines]
    return cells[0], {row[0]: row for row in cells[1:]}


def _campaign() -> CampaignRecord:
    return CampaignRecord(id=1, name="demo", status=CampaignStatus.RUNNING)


def test_status_table_shows_holdout_error_with_n_and_calibration_scale():
    header, rows = _rows(iterations_table(_campaign(), _history()))
    assert header == FIRST_COLUMNS + HOLDOUT_COLUMNS
    row = dict(zip(header, rows["2"], strict=True))
    assert row["acc"] == "85%"  # the walker-time ratio: the stopping rule's number
    assert row["lab ok"] == "7" and row["hold"] == "2/2"
    assert row["F err"] == "0.100"  # on the new (high-uncertainty) labels
    assert row["F hold (n)"] == "0.025 (4)" and row["cal"] == "1.25"
    seed = dict(zip(header, rows["0"], strict=True))
    assert seed["F hold (n)"] == seed["cal"] == seed["hold"] == "-"
    assert holdout_line(_history()) == (
        "hold-out (iteration 2): 0.0250 eV/Å force RMSE on 4 hold-out frames"
    )


def test_status_table_marks_the_final_row_with_its_holdout_error():
    header, rows = _rows(iterations_table(_campaign(), _history(final=True)))
    assert list(rows) == ["0", "1", "2", "3 final"]
    final = dict(zip(header, rows["3 final"], strict=True))
    assert final["T"] == "✓"  # the production committee's training
    assert final["F hold (n)"] == "0.013 (4)"
    assert {final[c] for c in header if c not in ("it", "T", "F hold (n)")} == {"-"}
    assert holdout_line(_history(final=True)) == (
        "final: production committee on 40 structures: 0.0125 eV/Å force RMSE on 4 hold-out frames"
    )


def test_status_table_of_a_campaign_stored_before_holdouts_is_the_first_releases():
    header, rows = _rows(iterations_table(_campaign(), _history(legacy=True)))
    assert header == FIRST_COLUMNS
    assert rows["2"][FIRST_COLUMNS.index("acc")] == "90%"  # the frame ratio
    assert holdout_line(_history(legacy=True)) is None


def _config():
    return parse_config(yaml.safe_load((ROOT / "configs" / "demo-water.yaml").read_text()))


def test_artifact_has_the_holdout_error_and_calibration_lines():
    its = _history()
    md = iteration_markdown(_config(), its[1], StopDecision(False))
    assert "| water | 100 | 90 | 8 | 2 | 0.900 | 0.850 |" in md
    assert "- selected: 6, hold-out drawn: 2, labelled ok: 7 (2 of 2 hold-out)" in md
    assert "(selected for high uncertainty: biased): forces RMSE 0.2000 eV/Å" in md
    assert (
        "- hold-out error (2 random explored frames, 2 new, never trained on): forces "
        "RMSE 0.0500 eV/Å, 95th percentile of the max-atom force error 0.1500 eV/Å"
    ) in md
    assert (
        "- calibration on 7 frames: true max-atom force error ≈ 1.25 x max force "
        "deviation (90 % bound 2.00 x), Spearman 0.70, no previous bound to check "
        "(first calibration)"
    ) in md
    assert "88% of the 8 new frames under the previous 90 % bound" in iteration_markdown(
        _config(), its[2], StopDecision(False)
    )


def test_artifact_of_the_final_iteration_and_of_an_old_one():
    final = _history(final=True)[-1]
    md = iteration_markdown(_config(), final, StopDecision(False))
    assert md.startswith("# demo-water: final (production committee, iteration 3)")
    assert "3 member(s) trained on 40 structures" in md
    assert "forces RMSE 0.0125 eV/Å" in md and "(4 random explored frames" in md
    old = iteration_markdown(_config(), _history(legacy=True)[2], StopDecision(False))
    assert "hold-out" not in old and "calibration" not in old
    assert "| water | 100 | 90 | 8 | 2 | 0.900 | - |" in old
