"""YAML with marks: safe loading that remembers where every key and value was written.

``load_yaml`` composes the document with a ``yaml.SafeLoader`` subclass (plain YAML tags only,
never Python objects) and builds plain dicts, lists and scalars itself, so that it can:

- reject duplicate keys, naming both places;
- record the 1-based line and column of every key and value (``Marks``);
- keep the text of plain scalars that YAML 1.1 reads as something else (``sender: 123456``,
  ``start: 21:00`` is the sexagesimal 1260, ``default_country: NO`` is false), so that a schema
  that wants text can get the text as written (``Marks.raw``);
- leave out the values of keys that must never be read (secrets), keeping only where they were.

Problems are returned as ``Diagnostic`` values, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import Diagnostic, error

KeyPath: TypeAlias = tuple[str | int, ...]
Position: TypeAlias = tuple[int, int]  # 1-based line, column

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAX_NODES = 100_000  # a campaign has a few dozen; this stops alias bombs
_MAX_DEPTH = 64
MAX_BYTES = 1_000_000


class MarkedLoader(yaml.SafeLoader):
    """SafeLoader whose constructor knows only the plain YAML scalar types."""


@dataclass(frozen=True, slots=True)
class Marks:
    """Where each key and value of a YAML document was written (1-based line, column)."""

    values: Mapping[KeyPath, Position] = field(default_factory=dict)
    keys: Mapping[KeyPath, Position] = field(default_factory=dict)
    # Plain scalars that YAML read as a number, boolean or date: the text as written.
    raw: Mapping[KeyPath, str] = field(default_factory=dict)
    # Single-line scalars whose value appears verbatim in the source: offset of its first
    # character from the value's mark (0 plain, 1 quoted), so offsets inside it can be located.
    verbatim: Mapping[KeyPath, int] = field(default_factory=dict)

    def __contains__(self, key_path: object) -> bool:
        return key_path in self.values

    def at(self, key_path: KeyPath) -> Position | None:
        """Where the value at ``key_path`` starts, else where its nearest parent's does."""
        for end in range(len(key_path), -1, -1):
            found = self.values.get(key_path[:end])
            if found is not None:
                return found
        return None

    def key_at(self, key_path: KeyPath) -> Position | None:
        """Where the key of ``key_path`` was written (list items: the item); else as ``at``."""
        return self.keys.get(key_path) or self.at(key_path)

    def offset_at(self, key_path: KeyPath, offset: int) -> Position | None:
        """The position of character ``offset`` of a text value, when it can be known."""
        start = self.values.get(key_path)
        shift = self.verbatim.get(key_path)
        if start is None or shift is None:
            return self.at(key_path)
        return start[0], start[1] + shift + offset


@dataclass(frozen=True, slots=True)
class YamlDoc:
    data: Any  # None when the document could not be read
    marks: Marks
    diagnostics: list[Diagnostic]
    secret_paths: tuple[KeyPath, ...] = ()  # keys whose values were left out (see load_yaml)


def _pos(mark: yaml.Mark) -> Position:
    return mark.line + 1, mark.column + 1


def dotted(key_path: KeyPath) -> str:
    """``("recipients", "exclude", 0)`` -> ``"recipients.exclude[0]"``."""
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _where(key_path: KeyPath) -> str:
    return f"under {dotted(key_path)}" if key_path else "at the top level"


class _Builder:
    """Turns a composed node tree into plain data, collecting marks and problems."""

    def __init__(self, loader: MarkedLoader, path: str, lines: list[str],
                 is_secret_key: Callable[[str], bool]) -> None:
        self.loader = loader
        self.path = path
        self.lines = lines
        self.is_secret_key = is_secret_key
        self.values: dict[KeyPath, Position] = {}
        self.keys: dict[KeyPath, Position] = {}
        self.raw: dict[KeyPath, str] = {}
        self.verbatim: dict[KeyPath, int] = {}
        self.diagnostics: list[Diagnostic] = []
        self.secret_paths: list[KeyPath] = []
        self.count = 0

    def fail(self, message: str, pos: Position, key_path: KeyPath, code: str) -> None:
        self.diagnostics.append(error(message, self.path, pos[0], pos[1], dotted(key_path) or None,
                                      code=code))

    def build(self, node: Node, key_path: KeyPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES or len(key_path) > _MAX_DEPTH:
            raise _TooBig
        self.values[key_path] = _pos(node.start_mark)
        if isinstance(node, MappingNode):
            return self.mapping(node, key_path)
        if isinstance(node, SequenceNode):
            self.check_tag(node, _TAG + "seq", key_path)
            return [self.build(item, (*key_path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self.scalar(node, key_path)

    def check_tag(self, node: Node, expected: str, key_path: KeyPath) -> None:
        if node.tag != expected:
            self.fail(f"YAML tag '{node.tag}' is not allowed in a campaign file (plain YAML only)",
                      _pos(node.start_mark), key_path, "yaml-tag")

    def mapping(self, node: MappingNode, key_path: KeyPath) -> dict[str, Any]:
        self.check_tag(node, _TAG + "map", key_path)
        out: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key_pos = _pos(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.fail(f"a key {_where(key_path)} is not a plain name", key_pos, key_path,
                          "yaml-key")
                continue
            if key_node.tag == _TAG + "merge":
                self.fail("YAML merge keys (<<) are not supported: write the keys out",
                          key_pos, key_path, "yaml-merge-key")
                continue
            # Keys are names: keep them as written ("on", "1" and "yes" stay text).
            key = str(key_node.value)
            child = (*key_path, key)
            if key in first_seen:
                line, col = first_seen[key]
                self.fail(f"duplicate key '{key}' {_where(key_path)} (first at line {line}, "
                          f"column {col})", key_pos, child, "duplicate-key")
                continue
            first_seen[key] = key_pos
            self.keys[child] = key_pos
            if self.is_secret_key(key):
                # Never read a secret's value: remember only where it was.
                self.values[child] = _pos(value_node.start_mark)
                self.secret_paths.append(child)
                continue
            out[key] = self.build(value_node, child)
        return out

    def scalar(self, node: ScalarNode, key_path: KeyPath) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.check_tag(node, _TAG + "str", key_path)
            return None
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            self.fail(f"cannot read '{node.value}' as {node.tag.removeprefix(_TAG)}",
                      _pos(node.start_mark), key_path, "yaml-value")
            return None
        if node.style is None and node.tag not in (_TAG + "str", _TAG + "null"):
            self.raw[key_path] = str(node.value)
        if isinstance(value, str):
            self.note_verbatim(node, value, key_path)
        return value

    def note_verbatim(self, node: ScalarNode, value: str, key_path: KeyPath) -> None:
        start, end = node.start_mark, node.end_mark
        if start.line != end.line or start.line >= len(self.lines):
            return
        shift = 0 if node.style is None else 1
        line = self.lines[start.line]
        if line[start.column + shift:start.column + shift + len(value)] == value:
            self.verbatim[key_path] = shift


class _TooBig(Exception):
    """The document expands to more nodes (aliases) or depth than a campaign can need."""


def _never_secret(_key: str) -> bool:
    return False


def load_yaml(text: str, path: str, *,
              is_secret_key: Callable[[str], bool] = _never_secret) -> YamlDoc:
    """Read one YAML document. ``path`` is the display path used in diagnostics.

    Keys for which ``is_secret_key`` is true are left out of the data; their paths are listed in
    ``secret_paths`` and their positions kept in the marks, so a caller can point at them without
    ever holding the value.
    """
    try:
        loader = MarkedLoader(text)  # the reader checks every character here already
    except yaml.reader.ReaderError as exc:
        return YamlDoc(None, Marks(), [_reader_error(exc, text, path)])
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            return YamlDoc(None, Marks(), [_syntax_error(exc, path)])
        except yaml.reader.ReaderError as exc:
            return YamlDoc(None, Marks(), [_reader_error(exc, text, path)])
        except RecursionError:
            return YamlDoc(None, Marks(), [error("the YAML is nested too deeply", path, 1, 1,
                                                code="yaml-too-deep")])
        if node is None:
            return YamlDoc(None, Marks(), [error("the file is empty", path, 1, 1,
                                                 code="empty-file")])
        builder = _Builder(loader, path, text.splitlines(), is_secret_key)
        try:
            data = builder.build(node, ())
        except _TooBig:
            pos = _pos(node.start_mark)
            return YamlDoc(None, Marks(), [error(
                "the YAML expands to more than a campaign can hold (aliases or nesting)",
                path, pos[0], pos[1], code="yaml-too-big")])
        marks = Marks(builder.values, builder.keys, builder.raw, builder.verbatim)
        return YamlDoc(data, marks, builder.diagnostics, tuple(builder.secret_paths))
    finally:
        loader.dispose()


def _syntax_error(exc: yaml.MarkedYAMLError, path: str) -> Diagnostic:
    # Never str(exc): it quotes the source line, which might hold a secret.
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "cannot read this YAML"
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        cline, ccol = _pos(exc.context_mark)
        message += f" ({exc.context} at line {cline}, column {ccol})"
    elif exc.context:
        message += f" ({exc.context})"
    if mark is None:
        return error(message, path, code="yaml-syntax")
    line, col = _pos(mark)
    return error(message, path, line, col, code="yaml-syntax")


def _reader_error(exc: yaml.reader.ReaderError, text: str, path: str) -> Diagnostic:
    line, col = _offset_to_pos(text, exc.position)
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return error(f"the character U+{code:04X} is not allowed in YAML", path, line, col,
                 code="yaml-character")


def _offset_to_pos(text: str, offset: int) -> Position:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1
