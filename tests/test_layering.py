"""The layers of DESIGN.md, checked on the source: what each layer may not import.

ruff's banned-api (pyproject.toml) stops prefect, mongoengine, pymongo and flows outside
the outer layers at lint time; this test also covers what one banned list cannot say
(aloop/ and dft/ do not import db/, while dashboard/ does), imports through importlib or
``__import__``, and any ``# noqa`` that would silence the lint rule.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_DATABASE = {"mongoengine", "pymongo", "bson", "gridfs"}

#: layer -> (its files, relative to the root; the modules it may not import).
LAYERS: dict[str, tuple[str, set[str]]] = {
    # The science core: no orchestrator, no database, no outer layer.
    "aloop": ("aloop", {"prefect", *_DATABASE, "db", "flows", "dft", "dashboard", "aloop.cli"}),
    "dft": ("dft", {"prefect", *_DATABASE, "db", "flows", "dashboard", "aloop.cli"}),
    # Read-only monitor: it reads through db/ only.
    "dashboard": ("dashboard", {"prefect", *_DATABASE, "flows"}),
}

#: The command line is the one part of aloop/ that may import the outer layers, and
#: ``python -m aloop`` runs it.
EXEMPT = ("aloop/cli/", "aloop/__main__.py")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from ... import``, relative ones included."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic_import(node: ast.Call) -> str | None:
    """The module of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, wherever it stands (functions,
    ``TYPE_CHECKING`` blocks, ``try``), with ``from a import b`` giving ``a`` and ``a.b``."""
    module = _module_name(path, root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            found.append((node.lineno, base))
            found += [
                (node.lineno, f"{base}.{a.name}" if base else a.name)
                for a in node.names
                if a.name != "*"
            ]
        elif isinstance(node, ast.Call) and (name := _dynamic_import(node)):
            found.append((node.lineno, name))
    return found


def violations(root: Path, layer: str) -> list[str]:
    """``path:line: imports module`` for every import ``layer`` may not make under ``root``."""
    folder, banned = LAYERS[layer]
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(EXEMPT):
            continue
        for line, name in imports(path, root):
            if any(name == b or name.startswith(f"{b}.") for b in banned):
                found.append(f"{rel}:{line}: imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_imports_only_what_it_may(layer):
    assert (ROOT / LAYERS[layer][0]).is_dir()
    assert violations(ROOT, layer) == []


#: Each a way to break the layering, with the module the check must name.
BREAKS = [
    ("import prefect.artifacts", "prefect.artifacts"),
    ("from prefect.x import y", "prefect.x"),
    ("import mongoengine.connection", "mongoengine.connection"),
    ("from pymongo import MongoClient  # noqa: TID251", "pymongo"),
    ("from db import repository", "db"),
    ("from .cli import app", "aloop.cli"),
    ("from aloop import cli", "aloop.cli"),
    ("import flows.campaign", "flows.campaign"),
    ("import importlib\nimportlib.import_module('prefect')", "prefect"),
    ("m = __import__('dashboard.app')", "dashboard.app"),
]


def _copy_with(tmp_path: Path, rel: str, added: str) -> Path:
    """A copy of the tree's ``rel`` under ``tmp_path`` with ``added`` appended in a function
    (the way the code base imports heavy modules)."""
    target = tmp_path / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / rel, target)
    body = "".join(f"    {line}\n" for line in added.splitlines())
    with target.open("a") as f:
        f.write(f"\n\ndef _deliberate_violation():\n{body}")
    return target


@pytest.mark.parametrize(("added", "named"), BREAKS, ids=[b[0] for b in BREAKS])
def test_a_deliberate_violation_in_a_copy_is_caught(tmp_path, added, named):
    rel = "aloop/convergence.py"
    (tmp_path / "aloop").mkdir()
    assert violations(tmp_path, "aloop") == []  # nothing there yet
    _copy_with(tmp_path, rel, added)
    caught = violations(tmp_path, "aloop")
    assert len(caught) >= 1 and all(c.startswith(f"{rel}:") for c in caught), caught
    assert any(c.endswith(f"imports {named}") for c in caught), caught


def test_dashboard_may_read_db_but_not_the_database_driver(tmp_path):
    rel = "dashboard/app.py"
    _copy_with(tmp_path, rel, "from db import views")
    assert violations(tmp_path, "dashboard") == []
    _copy_with(tmp_path, rel, "from bson import ObjectId")
    assert [c.split(": ", 1)[1] for c in violations(tmp_path, "dashboard")] == [
        "imports bson",
        "imports bson.ObjectId",
    ]


def test_the_cli_is_exempt(tmp_path):
    _copy_with(tmp_path, "aloop/cli/run.py", "import prefect")
    assert violations(tmp_path, "aloop") == []


def test_ruff_rejects_the_banned_imports_too():
    """The lint rule (``make test`` runs ``ruff check .`` first) on a file in aloop/."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed beside this Python")
    source = (
        "from __future__ import annotations\n\n"
        "import mongoengine.connection\nimport prefect.artifacts\nimport pymongo\n"
        "from flows.campaign import campaign_flow\nfrom prefect.x import y\n\n"
        "print(mongoengine, prefect, pymongo, campaign_flow, y)\n"
    )

    def check(filename: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ruff), "check", "--select", "TID251", "--stdin-filename", filename],
            input=source,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    core = check("aloop/convergence.py")
    assert core.returncode == 1
    for name in ("mongoengine", "prefect", "pymongo", "flows"):
        assert f"`{name}` is banned" in core.stdout, name
    assert core.stdout.count("TID251") == 5
    assert check("aloop/cli/run.py").returncode == 0
