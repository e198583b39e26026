"""The campaign JSON Schema: its shape, and schema errors in plain words at the right place."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from runner.cli import main
from runner.errors import Diagnostic
from runner.schema import coerce_strings, load_schema, validate
from runner.yamlload import load_yaml

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
version: 1
name: test-campaign
account:
  region: SG
message:
  sender: ACME
  type: DEFAULT
  body: Hello
recipients:
  source: data/r.csv
"""


def subschemas(schema: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema reachable from ``schema``: properties, items and anyOf/oneOf branches."""
    yield where or "(root)", schema
    for name, sub in schema.get("properties", {}).items():
        yield from subschemas(sub, f"{where}.{name}" if where else name)
    if "items" in schema:
        yield from subschemas(schema["items"], f"{where}[]")
    for key in ("anyOf", "oneOf"):
        for i, branch in enumerate(schema.get(key, ())):
            yield from subschemas(branch, f"{where}<{key}{i}>")


def properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, sub in subschemas(schema):
        for name, prop in sub.get("properties", {}).items():
            yield f"{where}.{name}", prop


def check(text: str) -> list[Diagnostic]:
    doc = load_yaml(text, "c.yaml")
    assert doc.diagnostics == []
    return validate(coerce_strings(doc.data, doc.marks), doc.marks, "c.yaml")


def with_lines(*extra: str) -> str:
    return VALID + "".join(line + "\n" for line in extra)


# --- the schema itself ---------------------------------------------------------------------------

def test_schema_is_valid_draft_07_with_an_id() -> None:
    # Draft-07: what yaml-language-server (the YAML extension of most editors) reads.
    schema = load_schema()
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"]


def test_every_property_has_a_description() -> None:
    missing = [where for where, prop in properties(load_schema()) if not prop.get("description")]
    assert missing == []


def test_every_object_rejects_unknown_keys() -> None:
    loose = [where for where, sub in subschemas(load_schema())
             if sub.get("type") == "object" and sub.get("additionalProperties") is not False]
    assert loose == []


def test_the_top_level_schema_is_a_real_file_identical_to_the_packaged_one() -> None:
    # A real file, not a symlink: a checkout without symlinks would make a link a one-line file.
    # After editing runner/campaign.schema.json: `campaign schema > schemas/campaign.schema.json`.
    copy = ROOT / "schemas" / "campaign.schema.json"
    assert not copy.is_symlink()
    packaged = ROOT / "runner" / "campaign.schema.json"
    assert copy.read_bytes() == packaged.read_bytes(), (
        "schemas/campaign.schema.json differs from runner/campaign.schema.json: run "
        "`campaign schema > schemas/campaign.schema.json`")


def test_campaign_schema_prints_the_packaged_schema_byte_for_byte() -> None:
    out = io.StringIO()
    assert main(["schema"], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == (ROOT / "runner" / "campaign.schema.json").read_text(encoding="utf-8")
    assert json.loads(out.getvalue()) == load_schema()


def test_a_valid_campaign_has_no_errors() -> None:
    assert check(VALID) == []


# --- keeping text as written ---------------------------------------------------------------------

@pytest.mark.parametrize(("line", "key_path", "expected"), [
    ("  sender: 123456", ("message", "sender"), "123456"),
    ("  template_id: 1107161234567890123", ("message", "template_id"), "1107161234567890123"),
    ("  sid: 0x12", ("account", "sid"), "0x12"),
    ("  unicode: 1", ("message", "unicode"), "1"),
])
def test_plain_scalars_stay_text_where_the_schema_wants_text(
        line: str, key_path: tuple[str, ...], expected: str) -> None:
    text = VALID.replace("  sender: ACME\n", "  sender: ACME\n" if "sender" not in line else "")
    section = key_path[0]
    text = text.replace(f"{section}:\n", f"{section}:\n{line}\n", 1)
    doc = load_yaml(text, "c.yaml")
    data = coerce_strings(doc.data, doc.marks)
    assert data[key_path[0]][key_path[1]] == expected


def test_times_and_country_codes_that_yaml_1_1_misreads_are_kept_as_written() -> None:
    doc = load_yaml(with_lines(
        "sending:",
        "  window: {start: 21:00, end: 09:00, timezone: UTC}",
    ).replace("  source: data/r.csv", "  source: data/r.csv\n  default_country: NO"), "c.yaml")
    data = coerce_strings(doc.data, doc.marks)
    assert data["sending"]["window"] == {"start": "21:00", "end": "09:00", "timezone": "UTC"}
    assert data["recipients"]["default_country"] == "NO"  # Norway, not false


def test_numbers_and_booleans_stay_numbers_where_the_schema_wants_them() -> None:
    doc = load_yaml(with_lines("sending:", "  batch_size: 50", "  timeout: 2.5")
                    .replace("  body: Hello", "  body: Hello\n  flash: yes"), "c.yaml")
    data = coerce_strings(doc.data, doc.marks)
    assert data["sending"] == {"batch_size": 50, "timeout": 2.5}
    # yes is a boolean to YAML 1.1 only: kept as the text, which the schema refuses as editors do
    assert data["message"]["flash"] == "yes"
    doc = load_yaml(with_lines().replace("  body: Hello", "  body: Hello\n  flash: true"),
                    "c.yaml")
    assert coerce_strings(doc.data, doc.marks)["message"]["flash"] is True


# --- errors in words, at the key or value --------------------------------------------------------

@pytest.mark.parametrize(("extra", "line", "col", "message"), [
    (("sending:", "  batch_size: 250"), 12, 15, "batch_size 250 is above the API's limit of 100"),
    (("sending:", "  batch_size: 0"), 12, 15, "batch_size 0 is below the minimum of 1"),
    (("sending:", "  concurrency: 65"), 12, 16, "concurrency 65 is above the maximum of 64"),
    (("sending:", "  requests_per_second: 0"), 12, 24, "requests_per_second 0 must be more than 0"),
    (("sending:", "  requests_per_second: 20000"), 12, 24,
     "requests_per_second 20000 is above the maximum of 10000"),
    (("sending:", "  max_attempts: 21"), 12, 17, "max_attempts 21 is above the maximum of 20"),
    (("sending:", "  batch_size: ten"), 12, 15,
     "batch_size must be a whole number, found the text 'ten'"),
    (("sending:", "  on_ambiguous: maybe"), 12, 17,
     "on_ambiguous 'maybe' is not one of 'mark_unknown', 'retry'"),
    (("sending:", "  encoding: xml"), 12, 13, "encoding 'xml' is not one of 'json', 'form'"),
    (("sending:", "  window: sometimes"), 12, 11,
     "window 'sometimes' is not one of 'always', 'us-tcpa', 'in-trai'"),
    (("sending:", "  window: {start: '09:00', end: '21:00'}"), 12, 3,
     "missing required key 'timezone' under sending.window"),
    (("sending:", "  window: {start: '25:00', end: '21:00', timezone: UTC}"), 12, 19,
     "start '25:00' must be a time written HH:MM"),
    (("sending:", "  retries: 3"), 12, 3,
     "unknown key 'retries' under sending (expected one of: adaptive, batch_size, concurrency"),
    (("sending:", "  batchsize: 3"), 12, 3,
     "unknown key 'batchsize' under sending (did you mean 'batch_size'?)"),
    (("report: [a.csv]",), 11, 9, "report must be text, found a list"),
    (("colour: red",), 11, 1, "unknown key 'colour' at the top level"),
    (("sending:",), 11, 9, "sending must be a mapping of keys, found an empty value"),
])
def test_schema_errors_are_plain_words_at_the_offending_place(
        extra: tuple[str, ...], line: int, col: int, message: str) -> None:
    found = check(with_lines(*extra))
    assert [(d.line, d.col) for d in found] == [(line, col)], found
    assert found[0].message.startswith(message), found[0].message
    assert found[0].severity == "error"
    assert found[0].path == "c.yaml"


@pytest.mark.parametrize(("old", "new", "line", "col", "message", "field"), [
    ("  region: SG", "  region: XX", 4, 11, "region 'XX' is not one of 'IN', 'SG', 'EU', 'NA'",
     "account.region"),
    ("  type: DEFAULT", "  type: PROMO", 7, 9, "type 'PROMO' is not one of", "message.type"),
    ("  sender: ACME", "  sender: ACME-LTD", 6, 11,
     "sender 'ACME-LTD' must be up to 11 letters and digits", "message.sender"),
    ("name: test-campaign", "name: test campaign", 2, 7,
     "name 'test campaign' may only contain letters, digits, _ and -", "name"),
    ("version: 1", "version: 2", 1, 10, "version must be 1, found 2", "version"),
    ("  body: Hello", "  body: Hello\n  flash: 2", 9, 10,
     "flash 2 is not one of true, false, 0, 1", "message.flash"),
    ("  body: Hello", "  template_id: '123'", 8, 16, "template_id '123' must be 12 to 30 digits",
     "message.template_id"),
    ("  body: Hello", "  body: ''", 8, 9, "body must not be empty", "message.body"),
    ("  body: Hello", "  flash: true", 5, 1, "message needs a body or a template_id", "message"),
    ("  sender: ACME\n", "", 5, 1, "missing required key 'sender' under message", "message"),
    ("version: 1\n", "", 1, 1, "missing required key 'version' at the top level", None),
    ("  sender: ACME", "  sendr: ACME", 6, 3,
     "unknown key 'sendr' under message (did you mean 'sender'?)", "message.sendr"),
    ("  source: data/r.csv", "  source: data/r.csv\n  exclude: [{a: b}]", 11, 13,
     "recipients.exclude[0] must be text, found a mapping", "recipients.exclude[0]"),
    ("  source: data/r.csv", "  source: data/r.csv\n  max_invalid_ratio: 1.5", 11, 22,
     "max_invalid_ratio 1.5 is above the maximum of 1", "recipients.max_invalid_ratio"),
    ("  source: data/r.csv", "  source: data/r.csv\n  default_country: India", 11, 20,
     "default_country 'India' must be a two-letter country code", "recipients.default_country"),
])
def test_each_field_error_names_its_field(old: str, new: str, line: int, col: int,
                                          message: str, field: str | None) -> None:
    assert old in VALID
    found = check(VALID.replace(old, new))
    assert [(d.line, d.col, d.field) for d in found] == [(line, col, field)], found
    assert found[0].message.startswith(message), found[0].message


def test_a_misspelt_required_key_is_reported_once() -> None:
    found = check(VALID.replace("  sender: ACME", "  sendr: ACME"))
    assert len(found) == 1
    assert "did you mean 'sender'" in found[0].message


def test_a_misspelt_body_is_not_also_reported_as_no_body() -> None:
    found = check(VALID.replace("  body: Hello", "  bdy: Hello"))
    assert [d.message for d in found] == ["unknown key 'bdy' under message (did you mean "
                                          "'body'?)"]


def test_other_missing_keys_are_still_reported_beside_a_misspelt_one() -> None:
    found = check(VALID.replace("  sender: ACME\n  type: DEFAULT", "  sendr: ACME"))
    assert [d.message for d in found] == [
        "missing required key 'type' under message",
        "unknown key 'sendr' under message (did you mean 'sender'?)",
    ]


def test_a_value_of_the_wrong_type_gets_one_error_not_one_per_rule() -> None:
    found = check(VALID.replace("  sender: ACME", "  sender: [A, B]"))
    assert [d.message for d in found] == ["sender must be text, found a list"]


def test_valid_alternatives_pass() -> None:
    assert check(with_lines("sending:", "  window: always")) == []
    assert check(VALID.replace("  body: Hello", "  body: Hello\n  flash: 0")) == []
    assert check(VALID.replace("  source: data/r.csv",
                               "  source: data/r.csv\n  exclude: data/out.csv")) == []
    assert check(VALID.replace("  body: Hello", "  template_id: 1107161234567890123")) == []


def test_errors_come_in_file_order() -> None:
    found = check(VALID.replace("name: test-campaign", "name: a b")
                  .replace("  region: SG", "  region: XX") + "sending:\n  batch_size: 0\n")
    assert [d.line for d in found] == [2, 4, 12]
