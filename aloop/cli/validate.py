"""``aloop validate``: check a campaign file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def validate(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
) -> None:
    """Check a campaign file and print a summary, or every error with its key path."""
    from aloop.cli.summary import config_summary
    from aloop.config import load_config

    typer.echo(config_summary(load_config(config)))
