"""``aloop show``: one structure's history."""

from __future__ import annotations

from typing import Annotated

import typer

from aloop.cli.options import DbOption, connected, uri_in_force
from aloop.errors import UserError


def show(
    structure_id: Annotated[str, typer.Argument(help="Structure id (24 hex digits).")],
    db_uri: DbOption = None,
) -> None:
    """A structure's history: origin, MD lineage, committee uncertainty, labels and SCF
    attempts, and the models trained on it."""
    from rich.console import Console

    from aloop.cli.summary import lineage_panel
    from aloop.dataset.export import FILE_ID_PREFIX
    from db.lineage import structure_lineage

    structure_id = structure_id.removeprefix(FILE_ID_PREFIX)  # as written in exports
    with connected(uri_in_force(db_uri)):
        info = structure_lineage(structure_id)
    if info is None:
        raise UserError(f"no structure {structure_id!r}")
    Console().print(lineage_panel(info))
