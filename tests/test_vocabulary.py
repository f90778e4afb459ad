"""The loop's vocabulary is spelt once: no verdict, origin, status or stage as a string
literal in production code outside aloop/vocabulary.py, and no reason parsed back."""

from __future__ import annotations

import ast
from enum import StrEnum
from pathlib import Path

import pytest

from aloop import vocabulary

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("aloop", "dft", "db", "flows", "dashboard")
#: A line that uses one of these words in another sense says so with this marker.
PRAGMA = "# not vocabulary"

VALUES = {
    member.value
    for obj in vars(vocabulary).values()
    if isinstance(obj, type) and issubclass(obj, StrEnum) and obj is not StrEnum
    for member in obj
}


def _production_files() -> list[Path]:
    return sorted(
        p
        for top in PRODUCTION
        for p in (ROOT / top).rglob("*.py")
        if p != ROOT / "aloop" / "vocabulary.py"
    )


def _keys_and_docstrings(tree: ast.AST) -> set[int]:
    """Ids of constants that name a field rather than say a value: dict keys, subscripts,
    docstrings."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            skip.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Subscript):
            skip.add(id(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            skip.add(id(node.args[0]))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
    return skip


def vocabulary_literals(path: Path) -> list[str]:
    """``file:line: 'value'`` for each vocabulary value written as a literal in ``path``."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    skip = _keys_and_docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in VALUES
            and id(node) not in skip
            and PRAGMA not in lines[node.lineno - 1]
        ):
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append(f"{where}:{node.lineno}: {node.value!r}")
    return found


def test_no_vocabulary_literal_outside_the_enum_module():
    found = [hit for path in _production_files() for hit in vocabulary_literals(path)]
    assert not found, "spell these with aloop.vocabulary's enums:\n" + "\n".join(found)


def test_no_reason_is_parsed_back():
    found = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in _production_files()
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "reason" in line and ".startswith(" in line
    ]
    assert not found, "reasons are words for people; use a typed kind:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("code", "hits"),
    [
        ('if rec.status == "ok":\n    pass\n', 1),
        ('set_stage(it, "train", status="running")\n', 2),
        ('VERDICTS = ("accurate", "candidate")\n', 2),
        ('stats = {"selected": 3}\nn = stats["failed"] + stats.get("done", 0)\n', 0),
        ('def f():\n    """ok"""\n', 0),
        ('SPLITS = ("train", "valid")  # not vocabulary: dataset splits\n', 0),
    ],
)
def test_the_check_finds_literals_and_spares_keys(tmp_path, code, hits):
    path = tmp_path / "probe.py"
    path.write_text(code)
    assert len(vocabulary_literals(path)) == hits
