"""DLT templates: the portal's export as read, and messages matched the way operators scrub."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.dlt import load_templates
from runner.dltmatch import WILD, Matcher

ORDER = "Your order {#var#} has shipped and will reach you in {#var#} days. - KLRHXA"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the templates file ----------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    "Template ID,Template Content,Template Type,Header,Status",
    "template_id,content,type,headers,status",
    "TEMPLATE_ID,TEMPLATE_CONTENT,TEMPLATE TYPE,SENDER ID,STATUS",
    "templateId,templateContent,Template_Type,Headers,template status",
])
def test_the_portals_column_spellings_are_all_read(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "t.csv", f"{header}\n1107160000000000001,"
                 f'"{ORDER}",Service Implicit,"KLRHXA; KLRSAL|KLRABC",Approved\n')
    loaded = load_templates(path)
    assert loaded.diagnostics == ()
    template = loaded.templates["1107160000000000001"]
    assert template.content == ORDER
    assert template.category == "Service Implicit"
    assert template.headers == ("KLRHXA", "KLRSAL", "KLRABC")
    assert template.usable


@pytest.mark.parametrize(("status", "usable"), [
    ("Approved", True), ("ACTIVE", True), ("Rejected", False), ("Pending", False),
    ("Inactive", False)])
def test_only_approved_or_active_templates_are_usable(tmp_path: Path, status: str,
                                                      usable: bool) -> None:
    path = write(tmp_path / "t.csv",
                 f"Template ID,Content,Status\n110716000000000001,Hi,{status}\n")
    assert load_templates(path).templates["110716000000000001"].usable is usable


def test_a_file_without_a_content_column_names_what_it_found(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "Template ID,Name\n110716000000000001,Hi\n")
    [problem] = load_templates(path).diagnostics
    assert problem.severity == "error"
    assert problem.path.endswith("t.csv") and problem.line == 1
    assert "no a template content column" in problem.message
    assert "Template ID, Name" in problem.message


def test_row_problems_name_the_line_and_the_column(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "Template ID,Template Content,Template Type\n"
                 "110716000000000001,Hi {#var#},Promo\n"
                 "1.10716E+18,Hello,Promotional\n")
    loaded = load_templates(path)
    [rounded] = loaded.diagnostics  # about the file: that row cannot be used at all
    assert (rounded.line, rounded.col, rounded.field) == (3, 1, "Template ID")
    assert "rounded by a spreadsheet" in rounded.message
    [kind] = loaded.row_problems["110716000000000001"]  # told when a campaign uses it
    assert (kind.line, kind.col, kind.field) == (2, 3, "Template Type")
    assert "'Promo' is not one of Promotional" in kind.message


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "id,content\n110716000000000001,Hi\n")
    assert load_templates(path).templates["110716000000000001"].content == "Hi"
    time.sleep(0)  # the cache is keyed by modification time and size: a new size suffices
    write(path, "id,content\n110716000000000001,Hello\n")
    assert load_templates(path).templates["110716000000000001"].content == "Hello"


# --- matching --------------------------------------------------------------------------------

def test_a_variable_stands_for_one_to_max_characters() -> None:
    m = Matcher("Your code is {#var#}.", 6)
    assert m.matches("Your code is 123456.")
    assert m.matches("Your code is 1.")
    assert not m.matches("Your code is .")  # at least one character
    assert not m.matches("Your code is 1234567.")  # at most six


def test_whitespace_runs_match_whitespace_runs_and_the_rest_is_literal() -> None:
    m = Matcher("Hi {#var#},\n your order   is ready.", 30)
    assert m.matches("Hi Asha, your order is ready.")
    assert m.matches("  Hi Asha,\t\tyour\norder is ready.  ")
    assert not m.matches("Hi Asha, your Order is ready.")  # case counts
    assert not m.matches("Hi Asha, your order is ready!")
    assert not m.matches("Hi Asha,your order is ready.")  # whitespace must be there


def test_typed_variables_count_as_variables() -> None:
    m = Matcher("Track at {#url#} or call {#cbn#}", 30)
    assert m.matches("Track at example.com/t/1 or call 18001234")


def test_a_value_too_long_is_explained() -> None:
    m = Matcher(ORDER, 30)
    text = "Your order " + "X" * 34 + " has shipped and will reach you in 2-3 days. - KLRHXA"
    assert not m.matches(text)
    reason = m.explain(text, "1107")
    assert "(34 characters) stands for {#var#} 1 of template 1107: at most 30" in reason


def test_a_text_that_differs_is_explained_with_the_words_that_differ() -> None:
    m = Matcher(ORDER, 30)
    reason = m.explain("Your order 1 has shipped and will arrive in 2 days. - KLRHXA", "1107")
    assert "'arrive in" in reason and "'reach you in'" in reason


def test_a_body_that_can_match_is_no_difference() -> None:
    m = Matcher(ORDER, 30)
    body = [*"Your order ", WILD, *" has shipped and will reach you in 2-3 days. - KLRHXA"]
    assert m.first_difference(body) is None
    # Fixed text may fill a variable, and a placeholder may share one with fixed text.
    assert m.first_difference([*"Your order ", WILD, *" has shipped and will reach you in 3 days"
                               ". - KLRHXA"]) is None
    assert m.first_difference([*"Your order #", WILD, *" has shipped and will reach you in ",
                               WILD, *" days. - KLRHXA"]) is None
    # But a placeholder never stands for the template's fixed text.
    assert m.first_difference([*"Your order ", WILD, *" days. - KLRHXA"]) is not None


def test_a_body_that_cannot_match_names_the_first_fixed_text_that_differs() -> None:
    m = Matcher(ORDER, 30)
    body = [*"Your parcel ", WILD, *" has shipped and will reach you in 2-3 days. - KLRHXA"]
    found = m.first_difference(body)
    assert found is not None
    assert found.offset == 5  # the first character of "parcel"
    assert (found.body_text, found.template_text) == ("parcel", "order")


def test_a_body_that_stops_early_says_so() -> None:
    found = Matcher("Hi {#var#}, bye", 30).first_difference([*"Hi ", WILD, ","])
    assert found is not None and found.body_text == "" and found.template_text == "bye"


def test_the_fixed_share_counts_variables_at_their_longest() -> None:
    assert Matcher("Code {#var#}", 30).fixed_share == pytest.approx(5 / 35)
    assert Matcher("No variables", 30).fixed_share == 1.0


TEMPLATES = st.sampled_from([
    "{#var#} {#var#} {#var#} end", "{#var#},{#var#}, {#var#}", "Hi {#var#}{#var#} x {#var#} y",
    "{#var#}", "a {#var#} b", "x, {#var#} ,{#var#} ,{#var#}. ", "{#var#}{#var#}"])


@settings(max_examples=400, deadline=None)
@given(template=TEMPLATES, limit=st.integers(1, 5),
       text=st.text(alphabet="ab ,xyend.\t", max_size=25))
def test_the_piecewise_matcher_agrees_with_the_regex(template: str, limit: int,
                                                     text: str) -> None:
    m = Matcher(template, limit)
    assert m._by_pieces(text) == m._fullmatch(text)


def test_many_variables_apart_by_spaces_do_not_hang_a_text_that_fails() -> None:
    # The regex alone would try every split of the text: minutes for this one row.
    m = Matcher(" ".join(["{#var#}"] * 12) + " end", 30)
    assert m.risky
    assert not m.matches("a " * 75)
    assert m.matches("a " * 11 + "a end")
