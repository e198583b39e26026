"""Loading campaign files: safe YAML with marks, the model built from them, and bad input."""

from __future__ import annotations

import tempfile
import time as clock
from datetime import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.campaign import LoadResult, is_secret_key, load_campaign
from runner.model import Window
from runner.yamlload import Marks, load_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "campaigns").glob("*.yaml"))

BASE = """\
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


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> LoadResult:
    return load_campaign(write(tmp_path, text))


def errors(result: LoadResult) -> list[tuple[int | None, int | None, str]]:
    return [(d.line, d.col, d.message) for d in result.diagnostics if d.severity == "error"]


# --- the shipped examples ------------------------------------------------------------------------

def test_there_are_at_least_four_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"diwali-flash.yaml", "dlt-template.yaml", "eu-otp.yaml",
            "personalised.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_without_diagnostics(path: Path) -> None:
    result = load_campaign(path)
    assert result.diagnostics == []
    assert result.campaign is not None
    assert result.campaign.recipients.source.is_file()
    assert all(p.is_file() for p in result.campaign.recipients.exclude)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_names_the_schema_for_editors(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/campaign.schema.json"
    assert (path.parent / "../schemas/campaign.schema.json").resolve().is_file()


def test_diwali_example_is_an_indian_flash_mkt_campaign_inside_trai_hours() -> None:
    campaign = load_campaign(ROOT / "campaigns" / "diwali-flash.yaml").campaign
    assert campaign is not None
    assert (campaign.account.region, campaign.message.type) == ("IN", "MKT")
    assert campaign.message.flash is True
    assert campaign.sending.window == Window(time(9), time(21), "Asia/Kolkata")


# --- the model -----------------------------------------------------------------------------------

def test_paths_are_resolved_against_the_campaign_folder(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the git work tree is the campaign's root: .. may stay in it
    sub = tmp_path / "sub"
    sub.mkdir()
    text = BASE.replace("  source: data/r.csv", "  source: data/r.csv\n  exclude: out.csv")
    result = load_campaign(write(sub, text + "report: ../reports/x.csv\n"))
    assert result.campaign is not None
    assert result.campaign.recipients.source == sub / "data" / "r.csv"
    assert result.campaign.recipients.exclude == (sub / "out.csv",)
    assert result.campaign.report == sub / "../reports/x.csv"


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    campaign = load(tmp_path, BASE).campaign
    assert campaign is not None
    assert campaign.account.api_key_env == "KALEYRA_API_KEY"
    assert campaign.message.flash is False
    assert campaign.recipients.phone_column == "phone"
    assert campaign.sending.batch_size == 100
    assert campaign.sending.window is None  # only IN + MKT gets a window by default
    assert campaign.report is None


@pytest.mark.parametrize(("written", "flash"), [("true", True), ("1", True), ("0", False),
                                                ("false", False), ("True", True)])
def test_flash_is_a_boolean_and_accepts_0_and_1(tmp_path: Path, written: str,
                                                flash: bool) -> None:
    text = BASE.replace("  body: Hello", f"  body: Hello\n  flash: {written}")
    campaign = load(tmp_path, text).campaign
    assert campaign is not None
    assert campaign.message.flash is flash


@pytest.mark.parametrize("written", ["yes", "no", "on", "off"])
def test_yaml_1_1_booleans_are_refused_as_editors_refuse_them(tmp_path: Path,
                                                             written: str) -> None:
    text = BASE.replace("  body: Hello", f"  body: Hello\n  flash: {written}")
    loaded = load(tmp_path, text)
    assert loaded.campaign is None
    assert any(d.field == "message.flash" for d in loaded.diagnostics)


def test_india_mkt_without_a_window_gets_trai_hours(tmp_path: Path) -> None:
    text = BASE.replace("region: SG", "region: IN").replace("type: DEFAULT", "type: MKT")
    campaign = load(tmp_path, text).campaign
    assert campaign is not None
    assert campaign.sending.window == Window(time(9), time(21), "Asia/Kolkata", implied=True)


def test_window_always_means_no_window(tmp_path: Path) -> None:
    text = BASE.replace("region: SG", "region: IN").replace("type: DEFAULT", "type: MKT")
    campaign = load(tmp_path, text + "sending:\n  window: always\n").campaign
    assert campaign is not None
    assert campaign.sending.window is None


def test_unquoted_times_are_read_as_clock_times_not_sexagesimal_numbers(tmp_path: Path) -> None:
    text = BASE + "sending:\n  window: {start: 21:30, end: 9:15, timezone: Europe/London}\n"
    campaign = load(tmp_path, text).campaign
    assert campaign is not None
    assert campaign.sending.window == Window(time(21, 30), time(9, 15), "Europe/London")


def test_unquoted_ids_and_country_codes_keep_their_text(tmp_path: Path) -> None:
    text = (BASE.replace("  sender: ACME", "  sender: 123456")
            .replace("  body: Hello", "  template_id: 1107161234567890123\n  entity_id: 0012")
            .replace("  source: data/r.csv", "  source: data/r.csv\n  default_country: no"))
    campaign = load(tmp_path, text.replace("  region: SG", "  region: SG\n  sid: 0x12")).campaign
    assert campaign is not None
    assert campaign.message.sender == "123456"
    assert campaign.message.template_id == "1107161234567890123"
    assert campaign.message.entity_id == "0012"
    assert campaign.account.sid == "0x12"
    assert campaign.recipients.default_country == "NO"


def test_sending_settings_reach_the_model(tmp_path: Path) -> None:
    text = BASE + ("sending:\n  batch_size: 50\n  requests_per_second: 2.5\n  concurrency: 8\n"
                   "  max_attempts: 3\n  on_ambiguous: retry\n  timeout: 12\n"
                   "  max_duration: 60\n  encoding: form\n")
    campaign = load(tmp_path, text).campaign
    assert campaign is not None
    s = campaign.sending
    assert (s.batch_size, s.requests_per_second, s.concurrency, s.max_attempts) == (50, 2.5, 8, 3)
    assert (s.on_ambiguous, s.timeout, s.max_duration, s.encoding) == ("retry", 12.0, 60.0,
                                                                        "form")


def test_max_duration_defaults_to_300_s_in_the_schema_and_the_code_alike(tmp_path: Path) -> None:
    import json
    from importlib.resources import files

    schema = json.loads(files("runner").joinpath("campaign.schema.json").read_text("utf-8"))
    documented = schema["properties"]["sending"]["properties"]["max_duration"]["default"]
    campaign = load(tmp_path, BASE).campaign
    assert campaign is not None
    assert campaign.sending.max_duration == documented == 300


# --- bad files -----------------------------------------------------------------------------------

def test_a_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    result = load_campaign(tmp_path / "nope.yaml")
    assert result.campaign is None
    assert [d.message for d in result.diagnostics] == ["file not found"]


def test_a_folder_is_a_diagnostic(tmp_path: Path) -> None:
    result = load_campaign(tmp_path)
    assert result.campaign is None
    assert "folder" in result.diagnostics[0].message


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("# only a comment\n", "empty"),
    ("- a\n- b\n", "must be a mapping of keys"),
    ("hello\n", "must be a mapping of keys"),
])
def test_a_file_that_is_not_a_mapping_is_told_so(tmp_path: Path, text: str,
                                                 message: str) -> None:
    result = load(tmp_path, text)
    assert result.campaign is None
    assert len(result.diagnostics) == 1
    assert message in result.diagnostics[0].message


def test_a_file_that_is_not_utf8_gets_the_place_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(BASE.replace("Hello", "Caf\xe9").encode("latin-1"))
    result = load_campaign(path)
    assert errors(result) == [(8, 12, "the file is not UTF-8 text (byte 0xe9)")]


def test_a_yaml_syntax_error_is_located_at_the_problem(tmp_path: Path) -> None:
    result = load(tmp_path, BASE.replace("  sender: ACME", "  sender: ACME: Ltd"))
    assert errors(result) == [(6, 15, "YAML syntax error: mapping values are not allowed here")]


def test_an_unclosed_flow_mapping_names_where_it_began(tmp_path: Path) -> None:
    result = load(tmp_path, BASE + "sending: {batch_size: 5\n")
    [(line, _col, message)] = errors(result)
    assert line == 12
    assert "at line 11, column 10" in message


def test_duplicate_keys_are_rejected_naming_both_places(tmp_path: Path) -> None:
    result = load(tmp_path, BASE.replace("  type: DEFAULT", "  type: DEFAULT\n  sender: ACME2"))
    assert errors(result) == [
        (8, 3, "duplicate key 'sender' under message (first at line 6, column 3)")]


def test_yaml_tags_that_build_objects_are_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = BASE.replace("  body: Hello",
                        f"  body: !!python/object/apply:os.system ['touch {marker}']")
    result = load(tmp_path, text)
    assert not marker.exists()
    assert result.campaign is None
    assert any("tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed" in m
               for _l, _c, m in errors(result))


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    text = BASE + "defaults: &d {batch_size: 5}\nsending:\n  <<: *d\n"
    result = load(tmp_path, text)
    assert (13, 3, "YAML merge keys (<<) are not supported: write the keys out") in errors(result)


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    started = clock.perf_counter()
    result = load(tmp_path, "\n".join(lines) + "\n")
    assert clock.perf_counter() - started < 5
    assert "more than a campaign can hold" in result.diagnostics[0].message


def test_schema_and_value_errors_are_all_reported_together(tmp_path: Path) -> None:
    text = (BASE.replace("  source: data/r.csv", "  source: data/r.csv\n  default_country: XX")
            + "sending:\n  batch_size: 250\n"
            + "  window: {start: '09:00', end: '17:00', timezone: Asia/Kolkatta}\n")
    result = load(tmp_path, text)
    assert result.campaign is None
    assert errors(result) == [
        (11, 20, "default_country 'XX' is not a known country code"),
        (13, 15, "batch_size 250 is above the API's limit of 100"),
        (14, 52, "unknown time zone 'Asia/Kolkatta' (did you mean 'Asia/Kolkata'?)"),
    ]
    assert result.diagnostics[-1].field == "sending.window.timezone"


def test_diagnostics_use_the_display_path(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, BASE.replace("version: 1", "version: 3"))
    result = load_campaign(tmp_path / "c.yaml")
    assert [d.path for d in result.diagnostics] == ["c.yaml"]


# --- secrets -------------------------------------------------------------------------------------

SECRET = "sk_live_A1b2C3d4E5f6G7h8"


@pytest.mark.parametrize(("where", "line", "col", "field"), [
    ("  region: SG", 5, 3, "account.api_key"),
    ("  body: Hello", 9, 3, "message.api_key"),
])
def test_a_secret_in_the_file_is_an_error_that_never_echoes_it(
        tmp_path: Path, where: str, line: int, col: int, field: str) -> None:
    result = load(tmp_path, BASE.replace(where, f"{where}\n  api_key: {SECRET}"))
    assert result.campaign is None
    [diagnostic] = result.diagnostics
    assert (diagnostic.line, diagnostic.col, diagnostic.field) == (line, col, field)
    assert "KALEYRA_API_KEY" in diagnostic.message
    assert SECRET not in repr(result)
    assert SECRET not in repr(result.marks)


def test_a_secret_points_at_the_variable_the_file_names(tmp_path: Path) -> None:
    text = BASE.replace("  region: SG", "  region: SG\n  api_key_env: ACME_SMS_KEY\n"
                                        "  password: 12345678")
    result = load(tmp_path, text)
    [diagnostic] = result.diagnostics
    assert "ACME_SMS_KEY" in diagnostic.message
    assert "12345678" not in repr(result)


def test_a_secret_in_a_syntax_error_line_is_not_quoted(tmp_path: Path) -> None:
    result = load(tmp_path, BASE.replace("  region: SG", f"  region: SG\n  token: {SECRET}: x"))
    assert result.diagnostics
    assert SECRET not in repr(result)


@pytest.mark.parametrize("key", ["api_key", "apiKey", "API-KEY", "password", "secret",
                                 "auth_token", "token", "client_secret", "key"])
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["api_key_env", "sender", "template_id", "phone_column",
                                 "batch_size", "timezone"])
def test_ordinary_keys_are_not_secrets(key: str) -> None:
    assert not is_secret_key(key)


# --- marks ---------------------------------------------------------------------------------------

def test_marks_locate_values_keys_and_fall_back_to_the_parent() -> None:
    doc = load_yaml("a:\n  b: 1\n  c: [x, 'y z']\n", "m.yaml")
    marks = doc.marks
    assert marks.at(("a", "b")) == (2, 6)
    assert marks.key_at(("a", "b")) == (2, 3)
    assert marks.at(("a", "c", 1)) == (3, 10)
    assert marks.at(("a", "nope", "deeper")) == marks.at(("a",)) == (2, 3)
    assert ("a", "c") in marks
    assert ("a", "d") not in marks
    assert Marks().at(("a",)) is None


def test_marks_locate_characters_inside_single_line_text() -> None:
    doc = load_yaml("plain: ab{c}\nquoted: \"ab{c}\"\nfolded: >\n  ab{c}\n", "m.yaml")
    assert doc.marks.offset_at(("plain",), 2) == (1, 10)
    assert doc.marks.offset_at(("quoted",), 2) == (2, 12)
    # Multi-line text: only the start of the value is known.
    assert doc.marks.offset_at(("folded",), 2) == (3, 9)


# --- no input gives a traceback ------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from([*BASE, "\t", "&", "*", "!", "[", "{", "'", '"', "-",
                                         "?", "|", ">", "%", "@", "\x00"]), max_size=300))
def test_any_text_gives_diagnostics_or_a_campaign_never_an_exception(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        result = load_campaign(write(Path(folder), text))
    assert (result.campaign is None) == any(d.severity == "error" for d in result.diagnostics)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(BASE) - 1), st.integers(0, 40), st.text(max_size=8))
def test_any_edit_of_a_valid_campaign_gives_diagnostics_or_a_campaign(
        at: int, cut: int, insert: str) -> None:
    text = BASE[:at] + insert + BASE[at + cut:]
    with tempfile.TemporaryDirectory() as folder:
        result = load_campaign(write(Path(folder), text))
    assert (result.campaign is None) == any(d.severity == "error" for d in result.diagnostics)
    assert all(d.line is None or d.line >= 1 for d in result.diagnostics)


def test_a_control_character_is_located(tmp_path: Path) -> None:
    result = load(tmp_path, BASE.replace("Hello", "Hel\x08lo"))
    assert errors(result) == [(8, 12, "the character U+0008 is not allowed in YAML")]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_not_a_number_is_refused_where_bounds_cannot_see_it(tmp_path: Path, value: str) -> None:
    result = load(tmp_path, BASE + f"sending:\n  requests_per_second: {value}\n")
    assert result.campaign is None
    assert any(line == 12 and "requests_per_second must be a finite number" in message
               for line, _, message in errors(result))
