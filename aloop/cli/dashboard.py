"""``aloop dashboard``: serve the read-only web monitor."""

from __future__ import annotations

from typing import Annotated

import typer

from aloop.cli.exits import say_error
from aloop.cli.options import DbOption, uri_in_force
from aloop.errors import InfrastructureError


def dashboard(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8050,
    refresh: Annotated[float, typer.Option(help="Seconds between page refreshes.")] = 5.0,
    db_uri: DbOption = None,
) -> None:
    """Serve the read-only learning-loop dashboard (pages and a JSON API under /api)."""
    import uvicorn

    from dashboard.app import create_app
    from db import connection

    uri = uri_in_force(db_uri)
    target = connection.parse_uri(uri)
    if db_uri and target.kind == "embedded" and not (target.path and target.path.is_dir()):
        # Read-only: a mistyped path must not become an empty store served as if real.
        raise InfrastructureError(f"no embedded store at {target.path}")
    app_ = create_app(uri, refresh_s=refresh)
    if host not in ("127.0.0.1", "localhost", "::1"):
        say_error(f"warning: serving on {host}: anyone who can reach it can read the campaigns")
    typer.echo(f"aloop dashboard on http://{host}:{port} (Ctrl-C stops it)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")
