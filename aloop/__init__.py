"""aloop: active learning of machine-learned interatomic potentials."""

from __future__ import annotations

__version__ = "0.1.0"
