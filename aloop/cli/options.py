"""What several commands share: the ``--db`` option and a connection that always closes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from db.connection import Target

DB_HELP = "Database URI (default: ALOOP_DB_URI or the embedded store)."


def db_option(help_text: str = DB_HELP) -> Any:
    """The ``--db URI`` option (a command whose default differs says so in ``help_text``)."""
    return typer.Option("--db", help=help_text)


#: ``--db URI``: None means ALOOP_DB_URI, else the embedded store.
DbOption = Annotated[str | None, db_option()]


def uri_in_force(option: str | None, config_uri: str | None = None) -> str | None:
    """The URI in force: ``--db``, else ALOOP_DB_URI, else the campaign file's, else None."""
    from aloop.settings import resolve_db_uri

    return option or resolve_db_uri(config_uri)


@contextmanager
def connected(uri: str | None, alias: str = "default", create: bool = True) -> Iterator[Target]:
    """Connected to ``uri`` inside the block, disconnected after it, however it ends.

    ``create=False`` (commands that only read): a missing embedded store is refused
    (exit 2) instead of created empty. Raises ``InvalidDatabaseUri`` (exit 2) for a URI
    that cannot be right, ``DatabaseUnavailable`` (exit 1) when the database does not
    answer.
    """
    from db import connection

    target = connection.connect(uri, alias=alias, create=create)
    try:
        yield target
    finally:
        connection.disconnect(alias)
