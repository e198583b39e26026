from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.message import (
    GSM_BASIC,
    GSM_EXTENSION,
    TemplateError,
    count_segments,
    placeholders,
    render,
)

# --- placeholders -------------------------------------------------------------------------


def test_placeholders_are_unique_and_in_order() -> None:
    body = "Hi {name}, your code is {code}. Bye {name}! {first-name} {col_2}"
    assert placeholders(body) == ("name", "code", "first-name", "col_2")


def test_body_without_placeholders() -> None:
    assert placeholders("The sale ends at midnight.") == ()


def test_doubled_braces_are_literal() -> None:
    body = "Use {{code}} literally, {name}; }} too"
    assert placeholders(body) == ("name",)
    assert render(body, {"name": "Asha"}) == "Use {code} literally, Asha; } too"


def test_unicode_letters_are_allowed_in_names() -> None:
    assert placeholders("Privet {имя}") == ("имя",)


@pytest.mark.parametrize(
    ("body", "offset", "words"),
    [
        ("Hi {name", 3, "never closed"),
        ("Hi {} there", 3, "empty placeholder"),
        ("50% off} now", 7, "single '}'"),
        ("Hi {first name}", 3, "letters, digits, _ and -"),
        ("{a}{", 3, "never closed"),
    ],
)
def test_malformed_bodies_name_the_offset(body: str, offset: int, words: str) -> None:
    with pytest.raises(TemplateError) as info:
        placeholders(body)
    assert info.value.column == offset
    assert words in str(info.value)
    assert info.value.message == str(info.value)


def test_render_fills_every_placeholder() -> None:
    body = "Hi {name}, {name}! Code {code}."
    assert render(body, {"name": "Ravi", "code": "X1", "other": "unused"}) == (
        "Hi Ravi, Ravi! Code X1."
    )


def test_render_does_not_reinterpret_field_values() -> None:
    # A value containing braces is data, not template syntax.
    assert render("Hi {name}", {"name": "{code}}"}) == "Hi {code}}"


def test_render_missing_field_is_a_template_error() -> None:
    with pytest.raises(TemplateError) as info:
        render("Hi {name}, {code}", {"name": "Ravi"})
    assert info.value.column == 11
    assert "code" in str(info.value)


def test_render_of_malformed_body_raises() -> None:
    with pytest.raises(TemplateError):
        render("Hi {name", {"name": "Ravi"})


names = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=8)
literals = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=10)


@given(st.lists(st.tuples(literals, names), max_size=5), literals)
def test_render_round_trips_generated_templates(pairs: list[tuple[str, str]], tail: str) -> None:
    body = "".join(lit.replace("x", "{{x}}") + "{" + name + "}" for lit, name in pairs) + tail
    fields = {name: f"<{name}>" for _, name in pairs}
    expected = "".join(lit.replace("x", "{x}") + f"<{name}>" for lit, name in pairs) + tail
    assert render(body, fields) == expected
    assert placeholders(body) == tuple(dict.fromkeys(name for _, name in pairs))


# --- segments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units", "parts"),
    [
        ("", 0, 1),
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 306, 306, 2),
        ("a" * 307, 307, 3),
    ],
)
def test_gsm7_part_boundaries(text: str, units: int, parts: int) -> None:
    seg = count_segments(text)
    assert (seg.encoding, seg.units, seg.parts, seg.limit) == ("GSM-7", units, parts, 160)


@pytest.mark.parametrize("char", sorted(GSM_EXTENSION))
def test_extension_characters_count_two(char: str) -> None:
    assert count_segments("a" * 158 + char).units == 160
    assert count_segments("a" * 158 + char).parts == 1
    seg = count_segments("a" * 159 + char)
    assert (seg.encoding, seg.units, seg.parts) == ("GSM-7", 161, 2)


def test_euro_signs_fill_a_single_part_at_eighty() -> None:
    assert count_segments("€" * 80).parts == 1
    assert count_segments("€" * 81).parts == 2


def test_escape_pair_is_not_split_across_parts() -> None:
    # 152 septets then '€': 154 units fit ceil(154/153)=2 parts either way, but with 306 units
    # the escape pair would straddle the boundary, so a third part is needed.
    text = "a" * 152 + "€" + "a" * 152
    seg = count_segments(text)
    assert seg.units == 306
    assert seg.parts == 3


def test_accented_gsm_letters_stay_gsm7() -> None:
    seg = count_segments("Café à Paris: 5€, Ñandù, ÄÖÜ ß")
    assert seg.encoding == "GSM-7"


@pytest.mark.parametrize(
    ("text", "units", "parts"),
    [
        ("ж" * 70, 70, 1),
        ("ж" * 71, 71, 2),
        ("ж" * 134, 134, 2),
        ("ж" * 135, 135, 3),
    ],
)
def test_ucs2_part_boundaries(text: str, units: int, parts: int) -> None:
    seg = count_segments(text)
    assert (seg.encoding, seg.units, seg.parts, seg.limit) == ("UCS-2", units, parts, 70)


def test_one_non_gsm_character_makes_the_whole_message_ucs2() -> None:
    seg = count_segments("a" * 69 + "ç")  # lower-case c-cedilla is not in GSM 03.38
    assert seg.encoding == "UCS-2"
    assert seg.units == 70
    assert count_segments("a" * 70 + "`").parts == 2  # backtick is not GSM either


def test_emoji_count_two_utf16_units() -> None:
    assert count_segments("😀" * 35).units == 70
    assert count_segments("😀" * 35).parts == 1
    assert count_segments("a" + "😀" * 35).parts == 2


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = "a" * 66 + "😀" + "a" * 66  # 134 units, but the emoji straddles unit 67
    seg = count_segments(text)
    assert seg.units == 134
    assert seg.parts == 3


@given(st.text(alphabet=sorted(GSM_BASIC), max_size=500))
def test_basic_gsm_text_counts_one_septet_per_character(text: str) -> None:
    seg = count_segments(text)
    assert seg.encoding == "GSM-7"
    assert seg.units == len(text)
    assert seg.parts == (1 if len(text) <= 160 else -(-len(text) // 153))


@given(st.text(max_size=300))
def test_parts_never_fewer_than_the_plain_formula(text: str) -> None:
    seg = count_segments(text)
    part = 153 if seg.encoding == "GSM-7" else 67
    assert seg.parts >= (1 if seg.units <= seg.limit else -(-seg.units // part))
    if seg.encoding == "UCS-2":
        assert seg.units == len(text.encode("utf-16-le")) // 2
