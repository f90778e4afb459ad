"""The dashboard in a real browser (headless Debian chromium) and its JSON API."""

from __future__ import annotations

import json
import urllib.request

import pytest

from aloop.vocabulary import SEED_STAGES, Stage
from db import campaigns, connection
from tests.dashboard.seed import add_iteration, dataset_size, expected

#: Table columns of the iterations table: index, one per stage, then the numbers.
STAGE_COLUMNS = len(Stage)
SAMPLED = 1 + STAGE_COLUMNS
#: What the table shows for a stage an iteration does not run (an en dash).
NO_STAGE = "\u2013"


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


def test_api_returns_the_seeded_numbers_and_nothing_writes(dashboard):
    listed = {c["name"]: c for c in _api(dashboard + "/api/campaigns")}
    assert set(listed) == {"water-a", "water-b", "water-c"}
    assert listed["water-a"]["iterations"] == 13
    assert listed["water-a"]["dataset_size"] == dataset_size(12)
    assert listed["water-b"]["status"] == "stopped"
    view = _api(dashboard + "/api/campaigns/water-a")
    assert view["stages"] == [s.value for s in Stage]
    assert set(view["iterations"][0]["stages"]) == set(SEED_STAGES)  # seed and label only
    assert view["iterations"][0]["sampled"] == view["iterations"][0]["selected"] == 13
    for row in view["iterations"][1:]:
        want = expected(row["index"])
        for key in ("sampled", "accurate", "candidate", "failed", "labelled", "label_failures"):
            assert row[key] == want[key], (row["index"], key)
        assert row["committee_forces_rmse"] == pytest.approx(want["committee_error"]["forces_rmse"])
        assert row["systems"][0]["histogram"]["counts"] == want["systems"][0]["histogram"]["counts"]
    assert len(view["label_failures"]) == 6  # odd iterations 1..11
    assert {r["reason"] for r in view["label_failures"]} >= {"SCF did not converge (iteration 11)"}
    assert [r["iteration"] for r in view["selected"]] == [12] * 8
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
        assert cells[SAMPLED + 4] == f"{100 * want['accurate_ratio']:.1f}%"
        assert cells[SAMPLED + 6] == str(api["iterations"][k]["labelled"])
    assert page.inner_text("#head-size").startswith(str(dataset_size(12)))
    # Every plot rendered by Plotly, with its data.
    for plot in ("plot-ratio", "plot-size", "plot-error", "plot-dft", "plot-hist"):
        page.wait_for_selector(f"#{plot} .main-svg")
    assert page.evaluate("document.getElementById('plot-ratio').data[0].y.length") == 12
    assert page.evaluate("document.getElementById('plot-hist').data.length") == 12
    shapes = page.evaluate("document.getElementById('plot-hist').layout.shapes.map(s => s.x0)")
    assert shapes == [0.05, 0.3]  # the trust window
    assert page.evaluate("document.getElementById('plot-ratio').layout.shapes[0].y0") == 0.95
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
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
