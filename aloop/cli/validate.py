"""``aloop validate``: check a campaign file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from aloop.config import CampaignConfig


def load_checked(config: Path) -> CampaignConfig:
    """The campaign in ``config``, validated by the schema and by PySCF, which is asked
    whether it knows the basis sets, pseudopotentials and functional (no SCF is run),
    and, for a foundation start, against the foundation model's elements.

    What ``aloop validate`` and ``aloop run`` both accept: a name PySCF does not know is
    refused before any work starts.
    """
    from aloop.config import load_config
    from aloop.models.foundation import foundation_problems
    from dft.names import dft_name_problems

    return load_config(config, checks=[dft_name_problems, foundation_problems])


def validate(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
) -> None:
    """Check a campaign file and print a summary, or every error with its key path."""
    from aloop.cli.summary import config_summary

    typer.echo(config_summary(load_checked(config)))
