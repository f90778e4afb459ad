"""``aloop db ...``: database operations."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer

from aloop.cli.exits import described, unexpected_as
from aloop.cli.options import connected
from aloop.errors import InfrastructureError

if TYPE_CHECKING:
    from db.copy import CopyReport

db_app = typer.Typer(help="Database operations.", no_args_is_help=True)


def _copy_failed(exc: Exception) -> InfrastructureError:
    # permissions, a dropped connection, a damaged file
    return InfrastructureError(f"copy failed: {described(exc)}; run it again to continue")


def db_copy(
    source: Annotated[str, typer.Argument(help="URI to copy from (e.g. embedded://PATH).")],
    target: Annotated[str, typer.Argument(help="URI to copy to (e.g. mongodb://...).")],
    campaign: Annotated[
        list[str], typer.Option("--campaign", help="Only this campaign (repeatable).")
    ] = [],  # noqa: B006
) -> None:
    """Copy campaigns with all their documents and GridFS files, then verify the copy.

    Running it again adds only what is missing. A campaign whose name exists in the
    target as a different campaign is refused.
    """
    from db.copy import copy_campaigns

    with ExitStack() as stack:
        ends = [
            stack.enter_context(connected(uri, alias=alias))
            for alias, uri in (("copy-source", source), ("copy-target", target))
        ]
        with unexpected_as(_copy_failed):
            report = copy_campaigns(campaign or None, "copy-source", "copy-target")
    typer.echo(
        f"copied {', '.join(report.campaigns) or 'no campaign'} from {ends[0].display} "
        f"to {ends[1].display}"
    )
    _print_counts(report)
    if not report.consistent or report.files_verified != report.files:
        raise InfrastructureError("the target does not match the source (see the counts above)")


def _print_counts(report: CopyReport) -> None:
    for name, c in report.counts.items():
        typer.echo(
            f"  {name:<11} {c['source']:>8} in source, {c['written']:>8} written, "
            f"{c['target']:>8} in target"
        )
    typer.echo(f"  GridFS files: {report.files}, sha256 verified: {report.files_verified}")
