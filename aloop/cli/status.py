"""``aloop status``: campaigns, or one campaign's iterations, from the database."""

from __future__ import annotations

from typing import Annotated

import typer

from aloop.cli.options import DbOption, connected, uri_in_force
from aloop.errors import UserError


def status(
    campaign: Annotated[
        str | None, typer.Argument(help="Campaign name; all campaigns when omitted.")
    ] = None,
    db_uri: DbOption = None,
) -> None:
    """Show campaigns, or one campaign's iterations, from the database."""
    from rich.console import Console

    from aloop.cli.summary import campaigns_table, holdout_line, iterations_table
    from db import campaigns, iterations

    console = Console()
    with connected(uri_in_force(db_uri), create=False) as target:
        if campaign is None:
            console.print(campaigns_table(campaigns.list_campaigns(), target.display))
        else:
            found = campaigns.get_campaign(campaign)
            if found is None:
                raise UserError(f"no campaign named {campaign!r} in {target.display}")
            its = iterations.campaign_iterations(found.id)
            console.print(iterations_table(found, its))
            line = holdout_line(its)
            if line is not None:
                console.print(line)
