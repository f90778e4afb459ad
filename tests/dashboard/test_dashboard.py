"""The dashboard in a real browser (headless Debian chromium) and its JSON API."""

from __future__ import annotations

import json
import urllib.request

import pytest

from aloop.vocabulary import SEED_STAGES, Stage
from db import campaigns, connection
from tests.dashboard.seed import (
    FINAL,
    HOLDOUT_PER_ITERATION,
    add_iteration,
    calibration,
    dataset_size,
    expected,
    holdout_error,
)

#: The stage columns of the iterations table: every stage a loop iteration may run (the
#: final iteration's is not a column: it has a row of its own).
LOOP_STAGES = [s.value for s in Stage if s is not Stage.FINAL]
#: Table columns of the iterations table: index, one per stage, then the numbers.
STAGE_COLUMNS = len(LOOP_STAGES)
SAMPLED = 1 + STAGE_COLUMNS
#: The number columns after the stages (their offsets from SAMPLED).
COLUMN = {
    name: i
    for i, name in enumerate(
        (
            "sampled",
            "accurate",
            "candidate",
            "failed",
            "accurate ratio",
            "selected",
            "labelled",
            "label failures",
            "hold-out labelled",
            "DFT s",
            "hold-out F RMSE (n)",
            "F RMSE on selected (biased)",
            "calibration scale",
            "stress dev GPa (median / max)",
            "stage s",
        )
    )
}
#: What the table shows for a stage an iteration does not run (an en dash).
NO_STAGE = "\u2013"
#: The multiplication sign of the calibration lines' names.
TIMES = "\u00d7"


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), ""


def _api(url: str):
    status, body, _ = _get(url)
    assert status == 200, body
    return json.loads(body)


def _cells(page, iteration: int) -> list[str]:
    return page.locator(f'#iterations tr[data-iteration="{iteration}"] td').all_inner_texts()


def _cell(page, iteration: int, column: str) -> str:
    return _cells(page, iteration)[SAMPLED + COLUMN[column]]


def _plot(page, plot: str, expr: str):
    return page.evaluate(
        f"(() => {{ const p = document.getElementById('{plot}'); return {expr}; }})()"
    )


def _open(browser, url: str, ready: str):
    """A page at ``url`` once ``ready`` shows, and the list its script errors go to."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector(ready)
    return page, errors


def _pct(ratio: float) -> str:
    return f"{100 * ratio:.1f}%"


def test_api_returns_the_seeded_numbers_and_nothing_writes(dashboard):
    listed = {c["name"]: c for c in _api(dashboard + "/api/campaigns")}
    assert set(listed) == {"water-a", "water-b", "water-c"}
    assert listed["water-a"]["iterations"] == 13
    assert listed["water-a"]["dataset_size"] == dataset_size(12)
    assert listed["water-a"]["holdout_size"] == HOLDOUT_PER_ITERATION * 12
    assert listed["water-b"]["status"] == "converged"
    assert listed["water-b"]["iterations"] == 12  # 0..11: the final one is not a loop one
    assert listed["water-b"]["final_status"] == "done"
    assert listed["water-b"]["holdout"]["final"] is True
    assert listed["water-b"]["holdout"]["n"] == FINAL.final_holdout.n
    assert listed["water-c"]["status"] == "stopped"
    assert listed["water-c"]["holdout"] is None and listed["water-c"]["holdout_size"] == 0
    view = _api(dashboard + "/api/campaigns/water-a")
    assert view["stages"] == LOOP_STAGES
    assert view["final"] is None
    assert set(view["iterations"][0]["stages"]) == set(SEED_STAGES)  # seed and label only
    assert view["iterations"][0]["sampled"] == view["iterations"][0]["selected"] == 13
    for row in view["iterations"][1:]:
        want = expected(row["index"])
        for key in ("sampled", "accurate", "candidate", "failed", "labelled", "label_failures"):
            assert row[key] == want[key], (row["index"], key)
        assert row["committee_forces_rmse"] == pytest.approx(want["committee_error"]["forces_rmse"])
        assert row["systems"][0]["histogram"]["counts"] == want["systems"][0]["histogram"]["counts"]
        assert row["time_ratio"] == pytest.approx(want["time_ratio"])
        # water has no stress: its hold-out says so (no RMSE, on no cell)
        assert row["holdout"] == pytest.approx(
            {**holdout_error(row["index"]), "stress_rmse_gpa": None, "stress_n": 0}
        )
        assert row["calibration"]["points"] == calibration(row["index"])["points"]
        assert row["holdout_labelled"] == row["holdout_selected"] == HOLDOUT_PER_ITERATION
    assert len(view["label_failures"]) == 6  # odd iterations 1..11
    assert {r["reason"] for r in view["label_failures"]} >= {"SCF did not converge (iteration 11)"}
    # The latest iteration's labels: 8 selected and its 2 hold-out frames.
    assert [r["iteration"] for r in view["selected"]] == [12] * 10
    assert [r["verdict"] for r in view["selected"]].count("holdout") == HOLDOUT_PER_ITERATION
    final = _api(dashboard + "/api/campaigns/water-b")["final"]
    assert final["index"] == 12 and final["stages"]["final"]["status"] == "done"
    assert final["final"]["holdout"]["forces_rmse"] == FINAL.final_holdout.forces_rmse
    old = _api(dashboard + "/api/campaigns/water-c")
    assert old["final"] is None
    assert all(r["holdout"] is None and r["calibration"] is None for r in old["iterations"])
    assert all(r["time_ratio"] is None for r in old["iterations"])
    assert _get(dashboard + "/api/campaigns/nosuch")[0] == 404
    # Read-only: no route accepts a write.
    req = urllib.request.Request(dashboard + "/api/campaigns", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 405
    # Everything the pages load comes from this server, never a CDN.
    status, page, _ = _get(dashboard + "/campaigns/water-a")
    assert status == 200 and b"http://" not in page and b"https://" not in page
    status, js, ctype = _get(dashboard + "/static/plotly.min.js")
    assert status == 200 and "javascript" in ctype and len(js) > 1_000_000


def test_pages_show_the_seeded_numbers_plots_and_links(dashboard, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(dashboard + "/")
    page.wait_for_selector('#campaigns tr[data-campaign="water-a"]')
    row = page.locator('#campaigns tr[data-campaign="water-a"] td').all_inner_texts()
    assert row[0] == "water-a" and row[1] == "running"
    assert row[3] == "13" and row[4] == str(dataset_size(12))
    page.screenshot(path=str(tmp_path / "campaigns.png"), full_page=True)

    page.click("text=water-a")
    page.wait_for_selector('#iterations tr[data-iteration="12"]')
    api = _api(dashboard + "/api/campaigns/water-a")
    # Iteration 0 seeds and labels; the stages it does not run show a dash.
    assert _cells(page, 0)[1:SAMPLED] == ["done", NO_STAGE, NO_STAGE, NO_STAGE, "done"]
    for k in (1, 5, 12):
        cells = _cells(page, k)
        want = expected(k)
        assert cells[0] == str(k)
        assert cells[1:SAMPLED] == [NO_STAGE] + ["done"] * 4  # no seed stage after iteration 0
        assert cells[SAMPLED : SAMPLED + 4] == [
            str(want[x]) for x in ("sampled", "accurate", "candidate", "failed")
        ]
        # The accurate ratio is the walker-time one (the stopping rule's), frames beside it.
        assert cells[SAMPLED + COLUMN["accurate ratio"]] == (
            f"{_pct(want['time_ratio'])} ({_pct(want['accurate_ratio'])} of frames)"
        )
        assert cells[SAMPLED + COLUMN["labelled"]] == str(api["iterations"][k]["labelled"])
        assert cells[SAMPLED + COLUMN["hold-out labelled"]] == "2/2"
    assert page.inner_text("#head-size").startswith(str(dataset_size(12)))
    assert "24 of them hold-out" in page.inner_text("#head-size")
    # Every plot rendered by Plotly, with its data.
    for plot in (
        "plot-holdout",
        "plot-calibration",
        "plot-ratio",
        "plot-size",
        "plot-error",
        "plot-dft",
        "plot-hist",
    ):
        page.wait_for_selector(f"#{plot} .main-svg")
    assert page.evaluate("document.getElementById('plot-ratio').data[0].y.length") == 12
    assert page.evaluate("document.getElementById('plot-hist').data.length") == 12
    shapes = page.evaluate("document.getElementById('plot-hist').layout.shapes.map(s => s.x0)")
    assert shapes == [0.05, 0.3]  # the trust window
    assert page.evaluate("document.getElementById('plot-ratio').layout.shapes[0].y0") == 0.95
    ratio = page.evaluate("document.getElementById('plot-ratio').data[0].y")
    assert ratio == pytest.approx([expected(k)["time_ratio"] for k in range(1, 13)])
    assert "walker time" in _plot(page, "plot-ratio", "p.layout.title.text")
    assert "biased" in _plot(page, "plot-error", "p.layout.title.text")
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)

    failed = api["label_failures"][0]["structure_id"]
    page.click(f'#failures a[href="/structures/{failed}"]')
    page.wait_for_selector("#lineage dl")
    text = page.inner_text("#lineage")
    assert "water-a" in text and "water" in text and "md, iteration" in text
    assert "SCF did not converge" in page.inner_text("#labels")
    page.wait_for_selector("#plot-structure .main-svg")
    page.screenshot(path=str(tmp_path / "structure.png"), full_page=True)
    assert all(
        (tmp_path / f"{n}.png").stat().st_size > 10_000
        for n in ("campaigns", "campaign", "structure")
    )


def test_holdout_learning_curve_shows_every_iteration_with_its_n(dashboard, browser, tmp_path):
    page, errors = _open(browser, dashboard + "/campaigns/water-a", "#plot-holdout .main-svg")
    want = [holdout_error(k) for k in range(1, 13)]
    assert _plot(page, "plot-holdout", "p.data[0].x") == list(range(1, 13))
    assert _plot(page, "plot-holdout", "p.data[0].y") == pytest.approx(
        [h["forces_rmse"] for h in want]
    )
    assert _plot(page, "plot-holdout", "p.data[0].text") == [f"n={h['n']}" for h in want]
    assert _plot(page, "plot-holdout", "p.data[1].y") == pytest.approx(
        [h["forces_max_p95"] for h in want]
    )
    names = _plot(page, "plot-holdout", "p.data.map(t => t.name)")
    assert names == ["force RMSE", "p95 of max-atom error", "target 0.02 eV/Å"]
    # The n labels are drawn on the chart, not only in the data.
    drawn = page.locator("#plot-holdout .textpoint").all_text_contents()
    assert "n=24" in drawn and "n=2" in drawn
    assert "never trained on" in _plot(page, "plot-holdout", "p.layout.title.text")
    assert _cell(page, 12, "hold-out F RMSE (n)") == f"{want[-1]['forces_rmse']:.4f} (n=24)"
    assert _cell(page, 12, "F RMSE on selected (biased)") == f"{0.5 / 13:.4f}"
    head = page.inner_text("#head-holdout")
    assert "on 24 hold-out frames" in head and "iteration 12" in head
    page.screenshot(path=str(tmp_path / "holdout.png"), full_page=True)
    assert errors == []


def test_calibration_plot_shows_the_latest_or_the_picked_iteration(dashboard, browser):
    page, errors = _open(browser, dashboard + "/campaigns/water-a", "#plot-calibration .main-svg")
    options = page.locator("#calibration-iteration option").all_inner_texts()
    assert options == [str(k) for k in range(1, 13)]
    assert page.input_value("#calibration-iteration") == "12"
    cal = calibration(12)
    assert _plot(page, "plot-calibration", "p.data[0].x.length") == cal["n"] == 22
    assert _plot(page, "plot-calibration", "p.data[0].y") == pytest.approx(
        [e for _, e in cal["points"]]
    )
    names = _plot(page, "plot-calibration", "p.data.map(t => t.name)")
    assert names == [
        "frames (n=22)",
        f"error = 1.60 {TIMES} deviation (median)",
        f"90 % bound: 2.40 {TIMES} deviation",
        "error = deviation",
    ]
    lo, hi = cal["points"][0][0], cal["points"][-1][0]
    assert _plot(page, "plot-calibration", "p.data[1].y") == pytest.approx([1.6 * lo, 1.6 * hi])
    assert _plot(page, "plot-calibration", "p.layout.xaxis.type") == "log"
    title = _plot(page, "plot-calibration", "p.layout.title.text")
    assert title == "Calibration, iteration 12: scale 1.60, Spearman 0.84"
    numbers = page.inner_text("#calibration-numbers")
    assert numbers == (
        "n=22, scale 1.60 (90 % bound 2.40), Spearman 0.84, "
        "coverage of the previous 90 % bound 92.0%"
    )
    assert _cell(page, 12, "calibration scale") == "1.60"
    # Picking iteration 1: its 11 points; the first calibration has no coverage yet.
    page.select_option("#calibration-iteration", "1")
    page.wait_for_function("document.getElementById('plot-calibration').data[0].x.length === 11")
    assert page.inner_text("#calibration-numbers").endswith("- (first calibration)")
    # The pick survives the page's refresh.
    loads = int(page.evaluate("document.body.dataset.loaded"))
    page.wait_for_function(f"Number(document.body.dataset.loaded) > {loads}")
    assert page.input_value("#calibration-iteration") == "1"
    assert _plot(page, "plot-calibration", "p.data[0].x.length") == 11
    assert errors == []


def test_final_iteration_is_shown_as_the_production_committee(dashboard, browser, tmp_path):
    page, errors = _open(browser, dashboard + "/", '#campaigns tr[data-campaign="water-b"]')
    row = page.locator('#campaigns tr[data-campaign="water-b"] td').all_inner_texts()
    assert row[1] == "converged" and row[3] == "12"
    assert row[6] == f"{FINAL.final_holdout.forces_rmse:.4f} (n=22) final"
    page.goto(dashboard + "/campaigns/water-b")
    page.wait_for_selector('#iterations tr[data-final="true"]')
    # One row of its own, after the last loop iteration, not a loop row with empty stages.
    final = page.locator('#iterations tr[data-final="true"]')
    assert final.get_attribute("data-iteration") == "12"
    cells = final.locator("td").all_inner_texts()
    assert cells[0] == "final" and len(cells) == 2
    assert cells[1].startswith("production committee (iteration 12): done; 4 member(s)")
    assert "trained on 120 structures" in cells[1]
    assert "force RMSE 0.0153 eV/Å on 22 hold-out frames" in cells[1]
    assert "max-atom error 0.0521 eV/Å" in cells[1]
    headers = page.locator("#iterations th").all_inner_texts()
    assert "final" not in headers
    assert "production committee" in page.inner_text("#head-final")
    assert "(final committee)" in page.inner_text("#head-holdout")
    # The learning curve ends on the final committee's point.
    page.wait_for_selector("#plot-holdout .main-svg")
    star = _plot(page, "plot-holdout", "p.data.find(t => t.name === 'final committee')")
    assert star["x"] == [12] and star["y"] == [FINAL.final_holdout.forces_rmse]
    assert star["text"] == ["final n=22"]
    assert _plot(page, "plot-holdout", "p.data[0].x") == list(range(1, 12))
    # The loop plots draw loop iterations only.
    assert _plot(page, "plot-ratio", "p.data[0].x") == list(range(1, 12))
    page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
    assert errors == []


def test_a_campaign_stored_before_holdouts_still_renders(dashboard, browser, tmp_path):
    """water-c: no hold-out, calibration, walker-time ratio or final iteration stored."""
    page, errors = _open(
        browser, dashboard + "/campaigns/water-c", '#iterations tr[data-iteration="10"]'
    )
    for plot in ("plot-holdout", "plot-calibration", "plot-ratio", "plot-error", "plot-hist"):
        page.wait_for_selector(f"#{plot} .main-svg")
    want = expected(5, legacy=True)
    assert _cell(page, 5, "accurate ratio") == _pct(want["accurate_ratio"])
    assert _cell(page, 5, "hold-out labelled") == "-"
    assert _cell(page, 5, "hold-out F RMSE (n)") == "-"
    assert _cell(page, 5, "calibration scale") == "-"
    assert _cell(page, 5, "F RMSE on selected (biased)") == f"{0.5 / 6:.4f}"
    assert page.locator('#iterations tr[data-final="true"]').count() == 0
    assert _plot(page, "plot-holdout", "p.data.map(t => t.x.length)") == [0, 0]
    assert "no hold-out frames" in page.inner_text("#plot-holdout")
    assert page.is_hidden("#calibration-pick")
    assert page.inner_text("#calibration-numbers") == "no calibration stored"
    ratio = _plot(page, "plot-ratio", "p.data[0].y")
    assert ratio == pytest.approx(
        [expected(k, legacy=True)["accurate_ratio"] for k in range(1, 11)]
    )
    assert _plot(page, "plot-ratio", "p.layout.title.text") == "Accurate ratio"
    assert page.inner_text("#head-size") == f"{dataset_size(10, legacy=True)} labelled structures"
    assert page.locator("#head-holdout").count() == 0
    page.screenshot(path=str(tmp_path / "legacy.png"), full_page=True)
    assert errors == []


def test_a_new_iteration_appears_without_reload(seeded, dashboard, browser, tmp_path):
    uri, _ = seeded
    page = browser.new_page()
    page.goto(dashboard + "/campaigns/water-c")
    page.wait_for_selector('#iterations tr[data-iteration="10"]')
    assert page.locator('#iterations tr[data-iteration="11"]').count() == 0
    loads = int(page.evaluate("document.body.dataset.loaded"))
    connection.connect(uri)  # another process writes, as a running campaign would
    try:
        add_iteration(campaigns.get_campaign("water-c"), 11)
    finally:
        connection.disconnect()
    page.wait_for_selector('#iterations tr[data-iteration="11"]', timeout=15_000)
    assert int(page.evaluate("document.body.dataset.loaded")) > loads  # polled, not reloaded
    assert _cells(page, 11)[SAMPLED] == str(expected(11)["sampled"])
    assert page.evaluate("document.getElementById('plot-ratio').data[0].y.length") == 11
    # water-c was stored before hold-outs; its new iteration has one: the curve's first point.
    page.wait_for_function("document.getElementById('plot-holdout').data[0].x.length === 1")
    assert _plot(page, "plot-holdout", "p.data[0].text") == ["n=22"]
    assert page.input_value("#calibration-iteration") == "11"
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)


def test_a_periodic_campaign_shows_its_stress_deviation(seeded, dashboard, browser, tmp_path):
    """A cell's committee stress deviation: per iteration (median / max) in the table, per
    frame in the labelled frames and the structure's lineage; molecules show a dash."""
    from ase import Atoms

    from aloop.records import StructureRecord
    from aloop.stats import ExploreStats, SystemStats
    from aloop.vocabulary import Origin, Verdict
    from db import iterations
    from db.structures import insert_structures

    uri, _ = seeded
    connection.connect(uri)
    try:
        cell, _ = campaigns.get_or_create_campaign("cell-a", {"campaign": "cell-a"}, "c" * 64)
        it = iterations.get_or_create_iteration(cell.id, 1)
        system = SystemStats.model_validate(
            {
                **expected(1)["systems"][0],
                "name": "mgcl2",
                "stress_dev_median_gpa": 0.78,
                "stress_dev_max_gpa": 2.5,
                "stress_candidate": 12,
                "stress_failed": 3,
            }
        )
        iterations.merge_stats(it.id, ExploreStats.of([system]))
        box = Atoms("MgCl2", positions=[[0, 0, 0], [2.4, 0, 0], [0, 2.4, 0]], cell=[6.5] * 3)
        box.pbc = True
        (sid,) = insert_structures(
            cell.id,
            [
                StructureRecord.from_atoms(
                    box,
                    "mgcl2",
                    Origin.MD,
                    iteration=1,
                    lineage={"walker": 0, "temperature": 1300.0, "md_step": 40},
                    uncertainty={"force_dev_max": 0.31, "stress_dev_gpa": 1.234},
                    verdict=Verdict.SELECTED,
                    verdict_reason="diverse candidate (fps)",
                )
            ],
        ).ids
    finally:
        connection.disconnect()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(dashboard + "/campaigns/cell-a")
    page.wait_for_selector('#iterations tr[data-iteration="1"]')
    assert _cell(page, 1, "stress dev GPa (median / max)") == "0.78 / 2.50"
    page.goto(dashboard + f"/structures/{sid}")
    page.wait_for_selector("#lineage dl")
    assert "stress deviation (GPa)\n1.234" in page.inner_text("#lineage")
    page.screenshot(path=str(tmp_path / "cell.png"), full_page=True)
    # the water campaign's cells show a dash: molecules have no stress
    page.goto(dashboard + "/campaigns/water-a")
    page.wait_for_selector('#iterations tr[data-iteration="1"]')
    assert _cell(page, 1, "stress dev GPa (median / max)") == "-"
