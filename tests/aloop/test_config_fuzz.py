"""Malformed campaign files, generated from a valid one: each is refused by ``aloop
validate`` with exit 2, one stderr line naming the key at fault, and no traceback.

Every case is one mutation of ``tests/flows/tiny-water.yaml`` (or a file written around
it), with the key path the message must start with. The categories are those of issue
17, item 3 and the configuration part of item 7.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write
from typer.testing import CliRunner

from aloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "tests" / "flows" / "tiny-water.yaml").read_text())
runner = CliRunner()

NAN, INF = math.nan, math.inf


def changed(path: str, value: object, base: dict = BASE) -> dict:
    """A copy of ``base`` with the dotted ``path`` set to ``value`` (creating mappings)."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[int(last) if last.isdigit() else last] = value
    return data


def dumped(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False)


#: (category, id, key the line must name, file text or a writer of the file)
Case = tuple[str, str, str, "str | bytes | Callable[[Path], None]"]


def _values(category: str, changes: list[tuple[str, object]], key=None) -> list[Case]:
    return [(category, f"{p}={v!r}", key or p, dumped(changed(p, v))) for p, v in changes]


NON_FINITE = _values(
    "non-finite",
    [
        ("explore.timestep_fs", NAN),
        ("explore.timestep_fs", INF),
        ("explore.temperatures.0", NAN),
        ("explore.temperatures.0", INF),
        ("systems.0.temperatures", [300, NAN]),
        ("explore.friction_per_fs", NAN),
        ("model.r_max", NAN),
        ("model.r_max", INF),
        ("model.lr", -INF),
        ("model.energy_weight", INF),
        ("model.ema_decay", NAN),
        ("initial.rattle_stdev", NAN),
        ("initial.rattle_stdev", INF),
        ("dft.scf.timeout_s", INF),
        ("dft.scf.timeout_s", NAN),
        ("dft.scf.conv_tol", NAN),
        ("dft.periodic.ke_cutoff_hartree", INF),
        ("select.trust.hi", INF),
        ("select.trust.lo", NAN),
        ("systems.0.trust", {"lo": 0.01, "hi": NAN}),
        ("stop.force_error_target", NAN),
        ("select.dedupe_distance", INF),
    ],
)
# explore.pressures_gpa needs an npt ensemble, or the case would test something else
NON_FINITE += [
    (
        "non-finite",
        "explore.pressures_gpa.0=nan",
        "explore.pressures_gpa.0",
        dumped(changed("explore.pressures_gpa", [NAN], changed("explore.ensemble", "npt"))),
    )
]
for case in NON_FINITE[:]:
    if case[2] == "systems.0.temperatures":
        NON_FINITE[NON_FINITE.index(case)] = (*case[:2], "systems.0.temperatures.1", case[3])
    if case[2] == "systems.0.trust":
        NON_FINITE[NON_FINITE.index(case)] = (*case[:2], "systems.0.trust.hi", case[3])

ABSURD = _values(
    "absurd magnitude",
    [
        ("explore.temperatures", [1e6]),
        ("systems.0.temperatures", [2e5]),
        ("explore.timestep_fs", 11),
        ("explore.timestep_fs", 1e4),
        ("explore.steps", 10**12),
        ("explore.walkers_per_system", 10**6),
        ("initial.rattled_per_structure", 10**9),
        ("initial.rattle_stdev", 5.0),
        ("model.epochs", 10**9),
        ("model.num_channels", 10**6),
        ("model.r_max", 1e3),
        ("dft.scf.max_cycle", 10**9),
        ("stop.max_iterations", 10**12),
        ("select.max_per_system", 10**30),
        ("execution.label_workers", 10**6),
    ],
)
ABSURD = [
    (c, i, {"explore.temperatures": "explore.temperatures.0"}.get(k, k), t) for c, i, k, t in ABSURD
]
ABSURD = [
    (c, i, {"systems.0.temperatures": "systems.0.temperatures.0"}.get(k, k), t)
    for c, i, k, t in ABSURD
]
_many_frames = changed("explore.walkers_per_system", 10**4, changed("explore.steps", 10**5))
ABSURD += [
    ("absurd magnitude", "frames beyond memory", "explore.steps", dumped(_many_frames)),
    (
        "absurd magnitude",
        "pressure",
        "explore.pressures_gpa.0",
        dumped(changed("explore.pressures_gpa", [1e6], changed("explore.ensemble", "npt"))),
    ),
]

BOOLEANS = _values(
    "boolean as number",
    [
        ("model.epochs", True),
        ("explore.steps", True),
        ("explore.timestep_fs", True),
        ("systems.0.charge", True),
        ("model.committee_size", False),
        ("model.lr", True),
        ("dft.grid_level", True),
        ("select.max_per_system", False),
        ("initial.seed", True),
        ("stop.accurate_ratio", True),
    ],
)
BOOLEANS += [("boolean as number", "temperatures [true]", "explore.temperatures.0", "")]
BOOLEANS[-1] = (*BOOLEANS[-1][:3], dumped(changed("explore.temperatures", [True])))
BOOLEANS += _values("number as boolean", [("dft.density_fit", 1), ("systems.0.pbc", "yes")])

SEEDS = _values(
    "negative or oversized seed",
    [
        ("initial.seed", -1),
        ("explore.seed", -1),
        ("select.seed", -5),
        ("initial.seed", 2**40),
    ],
)
SEEDS += [
    (
        "negative or oversized seed",
        "model.seeds",
        "model.seeds.0",
        dumped(changed("model.seeds", [-1, 1])),
    )
]

CHARGES = _values(
    "charge",
    [("systems.0.charge", 10), ("systems.0.charge", 11), ("systems.0.charge", 1000)],
)

NAMES = _values(
    "unknown name",
    [
        ("dft.basis", "not-a-basis"),
        ("dft.basis", ""),
        ("dft.basis", "cc-pvqz-typo"),
    ],
)
_dft = changed("dft.method", "DFT")
NAMES += [
    ("unknown name", "xc", "dft.xc", dumped(changed("dft.xc", "PBEE", _dft))),
    ("unknown name", "xc+d3", "dft.xc", dumped(changed("dft.xc", "PBE+D3", _dft))),
    ("unknown name", "xc empty", "dft.xc", dumped(changed("dft.xc", "", _dft))),
    (
        "unknown name",
        "auxbasis",
        "dft.auxbasis",
        dumped(changed("dft.auxbasis", "nojkfit", changed("dft.density_fit", True))),
    ),
    ("unknown name", "ecp", "dft.ecp", dumped(changed("dft.ecp", "def2-nonsense"))),
]


def _periodic(key: str, value: str) -> Callable[[Path], None]:
    def write_files(folder: Path) -> None:
        write(folder / "si.xyz", bulk("Si", "diamond", a=5.43), format="extxyz")
        data = changed("systems.0", {"name": "si", "structure": "si.xyz"})
        (folder / "bad.yaml").write_text(dumped(changed(key, value, data)))

    return write_files


NAMES += [
    (
        "unknown name",
        "pbc basis",
        "dft.periodic.basis",
        _periodic("dft.periodic.basis", "gth-nope"),
    ),
    ("unknown name", "pbc pseudo", "dft.periodic.pseudo", _periodic("dft.periodic.pseudo", "nope")),
]

_text = dumped(BASE)
DUPLICATES = [
    ("duplicated key", "top-level model", "model", _text + "model:\n  epochs: 3\n"),
    ("duplicated key", "top-level campaign", "campaign", _text + "campaign: other\n"),
    (
        "duplicated key",
        "nested dft.basis",
        "dft.basis",
        _text.replace("  basis: sto-3g\n", "  basis: sto-3g\n  basis: 6-31g\n"),
    ),
    (
        "duplicated key",
        "in a list item",
        "systems.0.name",
        _text.replace("- name: water\n", "- name: water\n  name: ice\n"),
    ),
    (
        "duplicated key",
        "flow mapping",
        "select.trust.lo",
        _text.replace("select:\n", "select:\n  trust: {lo: 0.02, lo: 0.1, hi: 0.8}\n").replace(
            "  trust:\n    lo: 0.02\n    hi: 0.8\n", ""
        ),
    ),
]


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "bad.yaml")


def _directory(folder: Path) -> None:
    (folder / "bad.yaml").mkdir()


def _deep(n: int) -> str:
    return _text + "description: " + "[" * n + "]" * n + "\n"


FILES = [
    ("file", "latin-1 byte", "(file)", _text.encode() + b"# caf\xe9\n"),
    ("file", "utf-16", "(file)", _text.encode("utf-16")),
    ("file", "binary junk", "(file)", bytes(range(256)) * 4),
    ("file", "NUL byte", "(yaml)", _text + "\x00\n"),
    ("file", "directory", "(file)", _directory),
    ("file", "too large", "(file)", _text + "#" * (2 << 20) + "\n"),
    ("file", "deep list", "description", _deep(50)),
    ("file", "very deep list", "description", _deep(5000)),
    (
        "file",
        "deep mapping",
        "a",
        _text
        + "".join(f"{'  ' * i}{'a' if i == 0 else 'b'}:\n" for i in range(30))
        + "  " * 30
        + "x: 1\n",
    ),
    (
        "file",
        "alias bomb",
        "description",
        _text
        + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
        + "description: *a8\n",
    ),
    ("file", "recursive alias", "description", _text + "description: &r [*r]\n"),
    ("file", "two documents", "(yaml)", _text + "---\ncampaign: b\n"),
]
# The alias bomb's first refusal is where it grows past the limit, not necessarily on
# description: its own key names it.
FILES = [(c, i, "x" if i == "alias bomb" else k, t) for c, i, k, t in FILES]


def _structure(atoms: Atoms | list[Atoms], name: str = "start.xyz") -> Callable[[Path], None]:
    def write_files(folder: Path) -> None:
        write(folder / name, atoms, format="extxyz")
        data = changed("systems.0", {"name": "water", "structure": name})
        (folder / "bad.yaml").write_text(dumped(data))

    return write_files


def _overlapping() -> Atoms:
    atoms = molecule("H2O")
    atoms.positions[1] = atoms.positions[0] + [0.1, 0.0, 0.0]
    return atoms


def _nan_positions() -> Atoms:
    atoms = molecule("H2O")
    atoms.positions[2, 1] = NAN
    return atoms


def _structure_dir(folder: Path) -> None:
    (folder / "geo").mkdir()
    (folder / "bad.yaml").write_text(
        dumped(changed("systems.0", {"name": "w", "structure": "geo"}))
    )


STRUCTURES = [
    ("structure", "overlap", "systems.0.structure", _structure(_overlapping())),
    ("structure", "NaN coordinate", "systems.0.structure", _structure(_nan_positions())),
    (
        "structure",
        "overlap in frame 1",
        "systems.0.structure",
        _structure([molecule("H2O"), _overlapping()]),
    ),
    ("structure", "directory as structure", "systems.0.structure", _structure_dir),
    (
        "structure",
        "empty molecule",
        "systems.0.molecule",
        dumped(changed("systems.0.molecule", "")),
    ),
    (
        "structure",
        "empty structure",
        "systems.0.structure",
        dumped(changed("systems.0", {"name": "w", "structure": ""})),
    ),
    (
        "structure",
        "missing structure",
        "systems.0.structure",
        dumped(changed("systems.0", {"name": "w", "structure": "nowhere.xyz"})),
    ),
]

CASES: list[Case] = (
    NON_FINITE + ABSURD + BOOLEANS + SEEDS + CHARGES + NAMES + DUPLICATES + FILES + STRUCTURES
)


def _write(folder: Path, content: object) -> Path:
    path = folder / "bad.yaml"
    if callable(content):
        content(folder)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(str(content))
    return path


def test_there_are_enough_cases():
    assert len(CASES) >= 60
    assert len({c[1] + c[0] for c in CASES}) == len(CASES)  # each case is a distinct one


def test_the_base_is_valid(tmp_path):
    path = _write(tmp_path, dumped(BASE))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("category", "name", "key", "content"), CASES, ids=[c[0] + ":" + c[1] for c in CASES]
)
def test_malformed_file_is_refused_on_one_line_naming_the_key(
    tmp_path, category, name, key, content
):
    path = _write(tmp_path, content)
    result = runner.invoke(app, ["validate", str(path)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {key}"), lines[0]
    assert "Traceback" not in result.output


#: The ones that hang, crash or print a traceback in a real process if anything is wrong.
IN_PROCESS = ["FIFO", "very deep list", "latin-1 byte", "seed -1", "overlap"]


def _subprocess_case(folder: Path, name: str) -> tuple[Path, str]:
    if name == "FIFO":
        _fifo(folder)
        return folder / "bad.yaml", "(file)"
    if name == "seed -1":
        return _write(folder, dumped(changed("initial.seed", -1))), "initial.seed"
    case = next(c for c in CASES if c[1] == name)
    return _write(folder, case[3]), case[2]


@pytest.mark.parametrize("name", IN_PROCESS)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_refused_in_a_real_process_without_hanging(tmp_path, name, command):
    path, key = _subprocess_case(tmp_path, name)
    env = {**os.environ, "ALOOP_DB_URI": f"embedded://{tmp_path / 'db'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "aloop", command, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{path}: {key}"), lines
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "db").exists()  # refused before anything was started
