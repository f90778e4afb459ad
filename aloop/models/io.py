"""Loading MACE model files only when their sha256 is the one recorded."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any


class ModelHashMismatch(RuntimeError):
    """A model file's bytes do not hash to the recorded sha256; it was not unpickled."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def pick_device(requested: str = "auto") -> str:
    """``cuda`` when asked for or available under ``auto``, else ``cpu``."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device")
    return requested


def load_model(source: bytes | str | Path, sha256: str, device: str = "cpu") -> Any:
    """Unpickle a MACE model after checking its bytes against ``sha256``.

    MACE model files are whole pickled modules (``torch.load(weights_only=False)``),
    so loading runs code from the file: the hash check comes first, always.

    Raises
    ------
    ModelHashMismatch
        The bytes hash differently; nothing was unpickled.
    """
    import torch

    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    got = sha256_bytes(data)
    if got != sha256:
        raise ModelHashMismatch(f"model sha256 is {got}, expected {sha256}: refusing to load")
    model = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    model.eval()
    return model
