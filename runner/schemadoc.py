"""The campaign-format reference, generated from the JSON Schema so the two never disagree.

    python -m runner.schemadoc            write docs/campaign-format.md
    python -m runner.schemadoc --check    exit 1 when the file is not what the schema gives

Every property gets its dotted path, type, whether it is required, default, allowed values,
bounds, pattern, description and examples. Properties inside ``anyOf``/``oneOf`` branches (the
object form of ``sending.window``) are listed under their parent. A property without a
description is an error here, not a gap in the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.schema import json_type, load_schema

DEFAULT_OUTPUT = Path("docs/campaign-format.md")
COMMAND = "python -m runner.schemadoc"
Schema = dict[str, Any]


class SchemaDocError(ValueError):
    """The schema cannot be documented as it is (a property without a description)."""


@dataclass(frozen=True, slots=True)
class Prop:
    path: str  # dotted, e.g. "sending.window.start"
    schema: Schema
    required: bool
    depth: int  # 0 for top-level keys


def iter_props(schema: Schema, prefix: str = "", depth: int = 0) -> Iterator[Prop]:
    """Every property, parents before children, in the schema's order."""
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        if not sub.get("description"):
            raise SchemaDocError(f"property {path} has no description")
        yield Prop(path, sub, name in required, depth)
        yield from _children(sub, path, depth + 1)


def _children(sub: Schema, path: str, depth: int) -> Iterator[Prop]:
    yield from iter_props(sub, path, depth)
    if "items" in sub:
        yield from _children(sub["items"], f"{path}[]", depth)
    for key in ("anyOf", "oneOf"):
        for branch in sub.get(key, ()):
            yield from _children(branch, path, depth)


# --- one property in words -------------------------------------------------------------------


def code(value: str) -> str:
    """Inline code that survives backticks in the value."""
    fence = "``" if "`" in value else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def literal(value: object) -> str:
    """A value as it is written in YAML (JSON is valid YAML), in code."""
    return code(json.dumps(value, ensure_ascii=False))


def type_of(sub: Schema) -> str:
    if "const" in sub:
        return literal(sub["const"])
    branches = sub.get("anyOf") or sub.get("oneOf")
    if branches and "type" not in sub:
        return " or ".join(type_of(b) for b in branches)
    kind = sub.get("type")
    if kind is None and "enum" in sub:
        kinds = sorted({json_type(v) for v in sub["enum"]})
        return " or ".join(kinds)
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    words = [f"array of {type_of(sub['items'])}" if k == "array" and "items" in sub else k
             for k in kinds]
    return " or ".join(words) or "any"



def bounds(sub: Schema) -> str:
    """'1 to 100', 'above 0, up to 10000', 'length 1 to 64', or ''."""
    low = (f"above {_num(sub['exclusiveMinimum'])}" if "exclusiveMinimum" in sub
           else f"at least {_num(sub['minimum'])}" if "minimum" in sub else "")
    high = (f"below {_num(sub['exclusiveMaximum'])}" if "exclusiveMaximum" in sub
            else f"up to {_num(sub['maximum'])}" if "maximum" in sub else "")
    if "minimum" in sub and "maximum" in sub:
        value = f"{_num(sub['minimum'])} to {_num(sub['maximum'])}"
    else:
        value = ", ".join(p for p in (low, high) if p)
    length = _range(sub.get("minLength"), sub.get("maxLength"), "characters")
    items = _range(sub.get("minItems"), sub.get("maxItems"), "items")
    return "; ".join(p for p in (value, length, items) if p)


def _range(low: int | None, high: int | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low} to {high} {unit}"
    if high is not None:
        return f"up to {high} {unit}"
    if low is not None and low > 0:
        return f"at least {low} {unit[:-1] if low == 1 else unit}"
    return ""


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def details(prop: Prop) -> list[str]:
    sub = prop.schema
    required = "no"
    if prop.required:  # a nested key is required only where its parent is used
        parent = prop.path.rpartition(".")[0]
        required = f"yes, in {code(parent)}" if parent else "yes"
    lines = [f"- **Type:** {type_of(sub)}", f"- **Required:** {required}"]
    if "default" in sub:
        lines.append(f"- **Default:** {literal(sub['default'])}")
    if "enum" in sub:
        lines.append("- **Allowed values:** " + ", ".join(literal(v) for v in sub["enum"]))
    if text := bounds(sub):
        lines.append(f"- **Bounds:** {text}")
    if "pattern" in sub:
        lines.append(f"- **Pattern:** {code(sub['pattern'])}")
    for key in ("anyOf", "oneOf"):
        lines += _alternatives(sub.get(key, ()), exactly=key == "oneOf")
    if examples := sub.get("examples"):
        word = "Example" if len(examples) == 1 else "Examples"
        lines.append(f"- **{word}:** " + ", ".join(literal(e) for e in examples))
    return lines


def _alternatives(branches: Sequence[Schema], *, exactly: bool) -> list[str]:
    if not branches:
        return []
    if all(set(b) == {"required"} for b in branches):  # a rule on keys, not a choice of forms
        keys = " or ".join(code(k) for b in branches for k in b["required"])
        return [f"- **Needs:** {'exactly one of ' if exactly else ''}{keys}"
                + ("" if exactly else " (or both)" if len(branches) == 2 else "")]
    lines = ["- **One of:**"]
    for b in branches:
        note = f": {prose(b['description'])}" if b.get("description") else ""
        lines.append(f"  - {type_of(b)}{note}")
    return lines


def prose(text: str) -> str:
    """Schema text as Markdown: <name> must show as written, not vanish as an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the page ----------------------------------------------------------------------------------


def _anchor(path: str) -> str:
    return path.replace(".", "-").replace("[]", "")


def render(schema: Schema) -> str:
    props = list(iter_props(schema))
    out = [
        f"# {schema.get('title', 'Campaign file format')}",
        "",
        f"<!-- Generated from runner/campaign.schema.json by `{COMMAND}`. Do not edit by hand: "
        "change the schema and regenerate. -->",
        "",
        prose(schema.get("description", "")),
        "",
        "Editors that use the YAML language server check and complete a campaign file against "
        "the schema when its first line is:",
        "",
        "```yaml",
        "# yaml-language-server: $schema=../schemas/campaign.schema.json",
        "```",
        "",
        "Unknown keys are errors. `campaign validate` reports every problem with its file, line "
        "and column.",
        "",
        "## Overview",
        "",
        "| key | type | required | default |",
        "| --- | --- | --- | --- |",
    ]
    for p in props:
        default = literal(p.schema["default"]) if "default" in p.schema else ""
        type_text = type_of(p.schema).replace("|", "\\|")
        out.append(f"| [{code(p.path)}](#{_anchor(p.path)}) | {type_text} | "
                   f"{'yes' if p.required else 'no'} | {default} |")
    out += ["", "## Keys"]
    for p in props:
        level = "#" * min(3 + p.depth, 6)
        out += ["", f'<a id="{_anchor(p.path)}"></a>', "", f"{level} {code(p.path)}", "",
                prose(p.schema["description"]), "", *details(p)]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the reference (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--check", action="store_true",
                        help="only check that the file is current; exit 1 when it is not")
    args = parser.parse_args(argv)
    try:
        text = render(load_schema())
    except SchemaDocError as exc:
        print(f"runner/campaign.schema.json: error: {exc}", file=sys.stderr)
        return 1
    path: Path = args.output
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            print(f"{path} is out of date with the schema: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        print(f"{path}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
