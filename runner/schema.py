"""The packaged JSON Schema of a campaign, validation, and errors told in plain words.

``validate`` runs the draft-07 schema (``runner/campaign.schema.json``, draft-07 because that is
what yaml-language-server reads; ``campaign schema`` prints it and ``schemas/campaign.schema.json``
is a copy) over data read by ``runner.yamlload`` and returns one
``Diagnostic`` per problem, at the offending key (unknown or missing keys) or value (everything
else). The common validators are told in words ("batch_size 250 is above the API's limit of
100"); anything rarer falls back to jsonschema's own message.

``coerce_strings`` first gives text fields the text the user wrote where YAML 1.1 read a
number, boolean or date (``sender: 123456``, ``start: 21:00``, ``default_country: NO``). A field
may allow a number as well as text (``template_id: 1107161234567890123``): the schema says so, for
editors and check-jsonschema, and here it still gets the text, so the digits are checked as
written (a 19-digit number is no float, and ``0011`` keeps its zeros).

The route types per region are in the schema too (``allOf``/``if``/``then``), for editors;
``runner.rules`` words that rule itself, so its schema errors are left out here.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

# jsonschema ships no type information (no stubs installed here).
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from runner.errors import Diagnostic, error, quote
from runner.yamlload import KeyPath, Marks, dotted

SCHEMA_RESOURCE = "campaign.schema.json"

# Patterns explained, by field name.
_PATTERN_WORDS: dict[str, str] = {
    "name": "may only contain letters, digits, _ and -",
    "sid": "may only contain letters, digits, _ and - (up to 64)",
    "api_key_env": "must be the name of an environment variable (capital letters, digits and "
                   "_, such as KALEYRA_API_KEY), not the key itself",
    "sender": "must be up to 11 letters and digits, or a number of up to 15 digits",
    "template_id": "must be 12 to 30 digits",
    "entity_id": "must be digits only",
    "default_country": "must be a two-letter country code such as IN, DE or GB",
    "start": "must be a time written HH:MM, such as \"09:00\"",
    "end": "must be a time written HH:MM, such as \"21:00\"",
}
# What an anyOf / oneOf at this path wants, when no single branch fits.
_ALTERNATIVES: dict[KeyPath, str] = {
    ("message",): "message needs a body or a template_id (or both)",
    ("sending", "window"): "window must be 'always', a preset (us-tcpa, in-trai) "
                          "or a mapping with start, end and timezone",
    ("recipients", "exclude"): "exclude must be a file name or a list of file names",
}
# Values never quoted back: a key pasted where a variable's name belongs must not reach a log.
_NEVER_ECHO = {"api_key_env"}
# Limits worth a reason.
_LIMIT_REASONS: dict[str, str] = {"batch_size": "the API's limit of"}
_TYPE_WORDS: dict[str, str] = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping of keys",
    "array": "a list",
    "null": "empty",
}
# When a value is of the wrong type, that error says it all.
_SHADOWED_BY_TYPE = {"enum", "const", "pattern", "minLength", "maxLength", "minimum", "maximum",
                     "exclusiveMinimum", "exclusiveMaximum"}


@cache
def load_schema() -> dict[str, Any]:
    """The campaign schema, as shipped inside the package."""
    text = resources.files("runner").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft7Validator:
    schema = load_schema()
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


# --- giving text fields the text as written -----------------------------------------------------

def coerce_strings(data: Any, marks: Marks, schema: Mapping[str, Any] | None = None) -> Any:
    """A copy of ``data`` where plain scalars that the schema wants as text are the raw text."""
    return _coerce(data, (), marks, load_schema() if schema is None else schema)


def _coerce(value: Any, key_path: KeyPath, marks: Marks, schema: Mapping[str, Any]) -> Any:
    branches = _branches(schema)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = _first(b.get("properties", {}).get(key) for b in branches)
            out[key] = _coerce(item, (*key_path, key), marks, sub) if sub is not None else item
        return out
    if isinstance(value, list):
        items = _first(b.get("items") for b in branches)
        if items is None:
            return value
        return [_coerce(item, (*key_path, i), marks, items) for i, item in enumerate(value)]
    raw = marks.raw.get(key_path)
    if raw is not None and _wants_text_only(branches, value):
        return raw
    if isinstance(value, bool) and raw is not None and raw.lower() not in ("true", "false"):
        # yes/no/on/off are booleans to YAML 1.1 (PyYAML) but text to YAML 1.2, which editors
        # and check-jsonschema read: keep the text, so validate refuses what they refuse.
        return raw
    return value


def _branches(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [schema]
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, ()):
            found.extend(_branches(branch))
    return found


def _first(candidates: Iterable[Any]) -> Any:
    return next((c for c in candidates if c is not None), None)


def _allowed_types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    literals = [schema["const"]] if "const" in schema else list(schema.get("enum", ()))
    return {json_type(v) for v in literals}


def _wants_text_only(branches: list[Mapping[str, Any]], value: Any) -> bool:
    types: set[str] = set()
    for branch in branches:
        types |= _allowed_types(branch)
    # Where text is allowed, a plain scalar is the text as written, even if a number is too.
    return "string" in types and json_type(value) != "string"


def json_type(value: Any) -> str:
    """The JSON Schema type name of a loaded YAML/JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # dates and the like


# --- validation ----------------------------------------------------------------------------------

def validate(data: Any, marks: Marks, path: str) -> list[Diagnostic]:
    """Schema problems of ``data`` (already coerced), located with ``marks``, sorted by place."""
    # The region/type rule (under "then") is told by runner.rules, in better words.
    errors = [e for e in _validator().iter_errors(data) if "then" not in e.absolute_schema_path]
    typed = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    # Unknown keys near a known one: "did you mean" already covers the key as missing.
    guessed = {(tuple(e.absolute_path), near) for e in errors
               if e.validator == "additionalProperties" for _, near in _unknown(e)}
    out: list[Diagnostic] = []
    for err in errors:
        key_path = tuple(err.absolute_path)
        if err.validator in _SHADOWED_BY_TYPE and key_path in typed:
            continue
        if err.validator in ("anyOf", "oneOf") and _requires_a_guessed_key(err, guessed):
            continue  # "message needs a body" after "'bdy' (did you mean 'body'?)"
        out.extend(_diagnose(err, marks, path, guessed))
    return sort_diagnostics(_unique(out))


def _requires_a_guessed_key(err: ValidationError, guessed: set[tuple[KeyPath, str | None]]
                            ) -> bool:
    key_path = tuple(err.absolute_path)
    subs = list(err.context or ())
    return bool(subs) and all(s.validator == "required" for s in subs) and any(
        (key_path, key) in guessed for s in subs for key in _missing_keys(s))


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (d.path, d.line or 0, d.col or 0, d.message))


def _unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return list(dict.fromkeys(diagnostics))


def _diagnose(err: ValidationError, marks: Marks, path: str,
              guessed: set[tuple[KeyPath, str | None]]) -> Iterator[Diagnostic]:
    key_path: KeyPath = tuple(err.absolute_path)
    validator = str(err.validator)
    if validator == "additionalProperties":
        yield from _unknown_keys(err, key_path, marks, path)
        return
    if validator == "required":
        for key in _missing_keys(err):
            if (key_path, key) in guessed:
                continue  # a misspelt key is one problem, not also a missing one
            yield _at_key(f"missing required key '{key}' {_where(key_path)}",
                          key_path, marks, path, "missing-key")
        return
    if validator in ("anyOf", "oneOf"):
        branch = _fitting_branch(err)
        if branch is not None:
            for sub in branch:
                yield from _diagnose(sub, marks, path, guessed)
            return
        words = _ALTERNATIVES.get(key_path) or f"{_name(key_path)} {err.message}"
        if key_path == ("message",):
            yield _at_key(words, key_path, marks, path, "schema-alternatives")
        else:
            yield _at_value(words, key_path, marks, path, "schema-alternatives")
        return
    yield _at_value(_words(err, key_path), key_path, marks, path,
                    _CODES.get(validator, "schema"))


# Stable names of the schema's rules (docs/diagnostics.md).
_CODES = {"type": "wrong-type", "enum": "not-allowed-value", "const": "wrong-value",
          "pattern": "bad-format", "maximum": "too-large", "exclusiveMaximum": "too-large",
          "minimum": "too-small", "exclusiveMinimum": "too-small", "minLength": "too-short",
          "maxLength": "too-long", "minItems": "too-few-items", "maxItems": "too-many-items",
          "uniqueItems": "duplicate-items"}


def _known_keys(err: ValidationError) -> list[str]:
    return sorted(err.schema.get("properties", {})) if isinstance(err.schema, dict) else []


def _unknown(err: ValidationError) -> Iterator[tuple[str, str | None]]:
    """Each unknown key of a mapping, with the known key it is nearest to (if any)."""
    known = _known_keys(err)
    instance = err.instance if isinstance(err.instance, dict) else {}
    for key in instance:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            yield key, near[0] if near else None


def _unknown_keys(err: ValidationError, key_path: KeyPath, marks: Marks,
                  path: str) -> Iterator[Diagnostic]:
    for key, near in _unknown(err):
        message = f"unknown key {quote(key)} {_where(key_path)}"
        if near is not None:
            message += f" (did you mean '{near}'?)"
        else:
            message += f" (expected one of: {', '.join(_known_keys(err))})"
        yield _at_key(message, (*key_path, key), marks, path, "unknown-key")


def _missing_keys(err: ValidationError) -> list[str]:
    wanted = err.validator_value if isinstance(err.validator_value, list) else []
    have = err.instance if isinstance(err.instance, dict) else {}
    return [str(k) for k in wanted if k not in have]


def _fitting_branch(err: ValidationError) -> list[ValidationError] | None:
    """The errors of the one alternative whose type fits the value, if exactly one does."""
    by_branch: dict[object, list[ValidationError]] = {}
    for sub in err.context or ():
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [subs for subs in by_branch.values()
               if not any(s.validator in ("type", "const") and not s.relative_path
                          for s in subs)]
    return fitting[0] if len(fitting) == 1 else None


def _words(err: ValidationError, key_path: KeyPath) -> str:
    name = _name(key_path)
    if name in _NEVER_ECHO:
        return f"{name} {_PATTERN_WORDS[name]} (the value is not shown)"
    value = err.instance
    limit = err.validator_value
    match str(err.validator):
        case "type":
            # A number is allowed where text is only because YAML reads digits as one.
            wanted = "string" if "string" in limit else limit
            return f"{name} must be {_expected(wanted)}, found {_describe(value)}"
        case "enum":
            return f"{name} {_show(value)} is not one of {', '.join(_show(v) for v in limit)}"
        case "const":
            return f"{name} must be {_show(limit)}, found {_show(value)}"
        case "pattern":
            rule = _PATTERN_WORDS.get(name, f"must match {limit}")
            return f"{name} {_show(value)} {rule}"
        case "maximum":
            reason = _LIMIT_REASONS.get(name, "the maximum of")
            return f"{name} {_show(value)} is above {reason} {_show(limit)}"
        case "exclusiveMaximum":
            return f"{name} {_show(value)} must be below {_show(limit)}"
        case "minimum":
            return f"{name} {_show(value)} is below the minimum of {_show(limit)}"
        case "exclusiveMinimum":
            return f"{name} {_show(value)} must be more than {_show(limit)}"
        case "minLength":
            if limit == 1:
                return f"{name} must not be empty"
            return f"{name} must be at least {limit} characters long"
        case "maxLength":
            return f"{name} is longer than {limit} characters"
    return f"{name}: {err.message}"


def _expected(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(t, t) for t in names)


def _describe(value: Any) -> str:
    kind = json_type(value)
    if kind == "null":
        return "an empty value"
    if kind in ("object", "array"):
        return _TYPE_WORDS[kind]
    if kind == "string":
        return f"the text {_show(value)}"
    return f"{_TYPE_WORDS.get(kind, kind)} {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"'{text}'"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _name(key_path: KeyPath) -> str:
    if not key_path:
        return "the campaign"
    # The key's own name reads best; list items need the whole path.
    return key_path[-1] if isinstance(key_path[-1], str) else dotted(key_path)


def _where(key_path: KeyPath) -> str:
    return f"under {dotted(key_path)}" if key_path else "at the top level"


def _at_key(message: str, key_path: KeyPath, marks: Marks, path: str, code: str) -> Diagnostic:
    line, col = marks.key_at(key_path) or (1, 1)
    return error(message, path, line, col, dotted(key_path) or None, code=code)


def _at_value(message: str, key_path: KeyPath, marks: Marks, path: str, code: str
              ) -> Diagnostic:
    line, col = marks.at(key_path) or (1, 1)
    return error(message, path, line, col, dotted(key_path) or None, code=code)
