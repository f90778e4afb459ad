"""A streaming extended-XYZ writer that keeps every float bit for bit.

ASE's writer formats floats with 8 decimals, which loses bits (an export must give back
exactly what was labelled) and costs about a millisecond per frame. This one writes
Python's shortest round-trip representation of each float, which ``float()`` (and so
``ase.io.read``) turns back into the identical double. The layout is ASE's extxyz:
``Lattice``, ``Properties``, ``pbc`` and the info keys on the comment line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

import numpy as np
from ase.data import chemical_symbols


def _value(v: object) -> str:
    if isinstance(v, bool | np.bool_):
        return "T" if v else "F"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v))
    if isinstance(v, np.ndarray | list | tuple):
        return '"' + " ".join(_value(x) for x in np.asarray(v).ravel().tolist()) + '"'
    text = str(v)
    if not text or any(c in text for c in ' ="\t'):
        return '"' + text.replace('"', "'") + '"'
    return text


def write_frame(
    out: IO[str],
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    info: Mapping[str, object],
    arrays: Mapping[str, np.ndarray],
) -> None:
    """Append one frame: species and positions, then the per-atom ``arrays`` (n, 3)."""
    n = len(numbers)
    props = ["species:S:1", "pos:R:3"]
    columns = [positions]
    for key, arr in arrays.items():
        arr = np.asarray(arr, dtype=np.float64).reshape(n, -1)
        props.append(f"{key}:R:{arr.shape[1]}")
        columns.append(arr)
    head = []
    cell = np.asarray(cell, dtype=np.float64)
    if cell.any():  # ASE's convention: a molecule without a box has no Lattice
        head.append(f'Lattice="{" ".join(repr(float(x)) for x in cell.ravel())}"')
    head.append(f"Properties={':'.join(props)}")
    head.extend(f"{k}={_value(v)}" for k, v in info.items() if v is not None)
    head.append(f'pbc="{" ".join("T" if p else "F" for p in pbc)}"')
    table = np.hstack(columns)
    lines = [str(n), " ".join(head)]
    for z, row in zip(numbers, table.tolist(), strict=True):
        lines.append(chemical_symbols[int(z)] + " " + " ".join(map(repr, row)))
    out.write("\n".join(lines) + "\n")
