"""The dashboard: HTML pages and the JSON API they are drawn from, read-only.

FastAPI and uvicorn (already installed with Prefect) serve three pages and an API under
/api; the pages are thin shells whose script fetches the same API and draws tables and
Plotly charts, so a page can never show a number the API does not return. Plotly's own
bundled plotly.min.js (from the plotly package) is served from here: nothing loads from
a CDN. Only GET routes exist; the database URI is shown with its password masked.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

from db import connection, views

STATIC = Path(__file__).with_name("static")

API_INDEX = {
    "/api/campaigns": "every campaign: status, iterations, dataset size, last activity",
    "/api/campaigns/{name}": "one campaign: head, per-iteration rows (stage states and "
    "timings, sampled/accurate/candidate/failed counts and ratios per system, accurate "
    "fraction of planned walker time, deviation histograms with trust windows, selected, "
    "hold-out drawn and labelled, labelled, label failures, DFT wall time, committee error "
    "on the newly labelled (high-uncertainty, biased) frames, error on the accumulated "
    "hold-out, calibration of deviation against true error with its points, cumulative "
    "dataset size), the final iteration (production committee and its hold-out error), "
    "recent label failures with reasons, the latest iteration's labelled structures",
    "/api/structures/{id}": "one structure: lineage as `aloop show`, and its geometry",
}


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _page(title: str, body: str, script: str, data: dict[str, Any]) -> HTMLResponse:
    attrs = " ".join(f'data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)} · aloop</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/plotly.min.js"></script>
<script src="/static/dashboard.js"></script>
</head>
<body {attrs}>
<header><a href="/">aloop</a> <span class="where">{html.escape(data.get("db", ""))}</span>
<span id="updated"></span></header>
<main>{body}</main>
<script>{script}</script>
</body></html>"""
    )


def create_app(db_uri: str | None = None, refresh_s: float = 5.0) -> FastAPI:
    """The dashboard application on the database at ``db_uri`` (see db.connection).

    Raises ``DatabaseUnavailable`` at once when the database cannot be reached. The
    handlers are coroutines and the connection is opened in the server's event loop:
    the embedded store's SQLite handles belong to the thread that opened them.
    """
    target = connection.connect(db_uri)  # fail early, here, with a clear message
    connection.disconnect()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection.connect(db_uri)
        try:
            yield
        finally:
            connection.disconnect()

    app = FastAPI(
        lifespan=lifespan,
        title="aloop dashboard",
        docs_url=None,  # Swagger and ReDoc load their assets from a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    common = {"db": target.display, "refresh": refresh_s}

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(_plotly_js(), media_type="text/javascript")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        path = STATIC / name
        if name not in {"dashboard.js", "style.css"} or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path)

    @app.get("/api")
    async def api_index() -> dict:
        """The endpoints of the API."""
        return API_INDEX

    @app.get("/api/campaigns")
    async def api_campaigns() -> list[dict]:
        """Every campaign."""
        return views.campaigns_overview()

    @app.get("/api/campaigns/{name}")
    async def api_campaign(name: str) -> dict:
        """One campaign's page data."""
        view = views.campaign_view(name)
        if view is None:
            raise HTTPException(404, f"no campaign named {name!r}")
        return view

    @app.get("/api/structures/{structure_id}")
    async def api_structure(structure_id: str) -> dict:
        """One structure's lineage and geometry."""
        view = views.structure_view(structure_id)
        if view is None:
            raise HTTPException(404, f"no structure {structure_id!r}")
        return view

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        body = '<h1>Campaigns</h1><div id="campaigns"></div>'
        return _page("campaigns", body, "aloop.campaignsPage();", common)

    @app.get("/campaigns/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def campaign_page(name: str) -> HTMLResponse:
        body = f"""<h1>Campaign <span id="name">{html.escape(name)}</span></h1>
<div id="head"></div>
<h2>Iterations</h2><div id="iterations"></div>
<div class="plots">
<div class="plot" id="plot-holdout"></div>
<div class="plot-box"><div class="plot" id="plot-calibration"></div>
<p class="picker"><span id="calibration-pick"><label for="calibration-iteration">calibration of
iteration</label> <select id="calibration-iteration"></select></span>
<span id="calibration-numbers"></span></p></div>
<div class="plot" id="plot-ratio"></div><div class="plot" id="plot-size"></div>
<div class="plot" id="plot-error"></div><div class="plot" id="plot-dft"></div>
<div class="plot wide" id="plot-hist"></div>
</div>
<h2>Label failures</h2><div id="failures"></div>
<h2>Labelled in the latest iteration</h2><div id="selected"></div>"""
        return _page(name, body, "aloop.campaignPage();", {**common, "campaign": name})

    @app.get("/structures/{structure_id}", response_class=HTMLResponse, include_in_schema=False)
    async def structure_page(structure_id: str) -> HTMLResponse:
        body = """<h1>Structure <span id="sid"></span></h1>
<div id="lineage"></div><div class="plot" id="plot-structure"></div><div id="labels"></div>"""
        return _page(
            structure_id, body, "aloop.structurePage();", {**common, "structure": structure_id}
        )

    return app
