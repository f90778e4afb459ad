"""Reading a campaign file: a regular UTF-8 file of bounded size, YAML without duplicated
keys, aliases or nesting beyond what a campaign needs.

:func:`read_campaign_yaml` is what :func:`aloop.config.load_config` parses; every refusal
is a :class:`CampaignFileError` whose message starts with the key path it concerns (or
``(file)`` / ``(yaml)`` when there is none), so the user reads one line that says where.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

#: A campaign file is a few kilobytes; anything this large is not one.
MAX_BYTES = 1 << 20
#: The schema nests five levels deep; twice that and more is a mistake or an attack.
MAX_DEPTH = 12
#: Values a file may expand to, aliases included (a "billion laughs" file stops here).
MAX_VALUES = 100_000

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class CampaignFileError(ValueError):
    """A campaign file that cannot be read as one; the message names where."""


def read_campaign_yaml(path: Path) -> Any:
    """The data of the YAML campaign file at ``path``.

    Raises
    ------
    CampaignFileError
        Not a regular file (checked before opening: a FIFO would block), too large,
        not UTF-8, not YAML, a duplicated key, nesting deeper than :data:`MAX_DEPTH` or
        more than :data:`MAX_VALUES` values.
    """
    return _parse(_read_text(path))


def _read_text(path: Path) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise CampaignFileError(f"(file): cannot read file: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise CampaignFileError(f"(file): is {kind}, not a campaign file")
    if info.st_size > MAX_BYTES:
        raise CampaignFileError(
            f"(file): {info.st_size} bytes; a campaign file is at most {MAX_BYTES} bytes"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CampaignFileError(f"(file): cannot read file: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CampaignFileError(
            f"(file): not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line}"
        ) from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than :data:`MAX_DEPTH` while it
    composes (so a deep file cannot exhaust the recursion limit)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.path: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        key = index.value if isinstance(index, yaml.ScalarNode) else index
        self.path.append("?" if key is None else str(key))
        if len(self.path) > MAX_DEPTH:
            where = ".".join(self.path[1 : MAX_DEPTH + 1])
            raise CampaignFileError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.path.pop()


def _parse(text: str) -> Any:
    try:
        loader = _Loader(text)  # its reader already refuses control characters
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node(node, [], {})
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError) -> CampaignFileError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark else ""
    if isinstance(exc, yaml.reader.ReaderError):
        return CampaignFileError(f"(yaml) character {exc.character!r} is not allowed in YAML")
    problem = getattr(exc, "problem", None) or str(exc)
    return CampaignFileError(" ".join(f"(yaml) {where}{problem}".split()))


def _check_node(node: yaml.Node, path: list[str], seen: dict[int, tuple[int, int]]) -> int:
    """Values under ``node``, aliases counted each time they are used (``seen``: id ->
    (values, depth) of the nodes done). Refuses a key given twice in one mapping, an
    alias that contains itself, nesting deeper than :data:`MAX_DEPTH` through aliases
    and more than :data:`MAX_VALUES` values."""
    size, _ = _walk(node, path, seen)
    return size


def _walk(node: yaml.Node, path: list[str], seen: dict[int, tuple[int, int]]) -> tuple[int, int]:
    where = ".".join(path) or "(top level)"
    if id(node) in seen:
        if seen[id(node)][0] < 0:
            raise CampaignFileError(f"{where}: a YAML alias that contains itself")
        return seen[id(node)]
    seen[id(node)] = (-1, 0)
    size, depth = 1, 0
    for name, child in _children(node, path):
        child_size, child_depth = _walk(child, [*path, name], seen)
        size, depth = size + child_size, max(depth, child_depth + 1)
        if len(path) + depth > MAX_DEPTH:
            raise CampaignFileError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if size > MAX_VALUES:
            raise CampaignFileError(f"{where}: expands to more than {MAX_VALUES} values")
    seen[id(node)] = (size, depth)
    return size, depth


def _children(node: yaml.Node, path: list[str]) -> list[tuple[str, yaml.Node]]:
    """(key, node) under a mapping or sequence node; a duplicated key is refused."""
    if isinstance(node, yaml.SequenceNode):
        return [(str(i), item) for i, item in enumerate(node.value)]
    if not isinstance(node, yaml.MappingNode):
        return []
    lines: dict[str, int] = {}
    out = []
    for key, value in node.value:
        name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
        line = key.start_mark.line + 1
        if name in lines and name != "<<":
            raise CampaignFileError(
                f"{'.'.join([*path, name])}: duplicated key (lines {lines[name]} and {line}); "
                "the second would silently replace the first"
            )
        lines[name] = line
        out.append((name, value))
    return out
