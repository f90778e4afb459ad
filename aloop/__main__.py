"""``python -m aloop`` runs the command line."""

from __future__ import annotations

from aloop.cli import app

app(prog_name="aloop")
