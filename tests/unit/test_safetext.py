"""Text safe to send, and URLs and cells as diagnostics may show them."""

from __future__ import annotations

import pytest

from runner.compose import ComposedRows, Composer
from runner.endpoint import masked_url
from runner.errors import quote
from runner.recipients import MAX_ROW_DIAGNOSTICS, Recipient, RecipientStats
from runner.safetext import message_problem, parts_problem, unsafe_character


@pytest.mark.parametrize(("text", "offset", "code"), [
    ("a\x00b", 1, "U+0000"), ("ab\r\n", 2, "U+000D"), ("\x1b[31m", 0, "U+001B"),
    ("x\x7f", 1, "U+007F"), ("x\x85", 1, "U+0085"), ("half \ud83d", 5, "U+D83D"),
    ("bad byte \udcff", 9, "U+DCFF"),
])
def test_control_characters_and_lone_surrogates_are_found(text: str, offset: int,
                                                          code: str) -> None:
    found = unsafe_character(text)
    assert found is not None and found[0] == offset and found[1].startswith(code)


@pytest.mark.parametrize("text", ["line one\nline two\tend", "emoji \U0001f600 ok", "€ and ü", ""])
def test_newline_tab_and_printable_text_are_safe(text: str) -> None:
    assert unsafe_character(text) is None
    assert message_problem(text, 10) is None


def test_max_parts_counts_parts_as_sent() -> None:
    assert parts_problem("x" * 153 * 10, 10) is None
    too_long = parts_problem("x" * (153 * 10 + 1), 10)
    assert too_long is not None and "11 SMS parts" in too_long
    assert parts_problem("ü" * 67 * 3 + "ш", 3) is not None  # UCS-2: 67 a part


def test_rows_past_the_warning_limit_are_counted_not_listed() -> None:
    rows = [Recipient(i + 2, f"+9198{i:08d}", f"+9198{i:08d}", "ok", {"name": "a\x07"})
            for i in range(MAX_ROW_DIAGNOSTICS + 5)]

    class Stream:
        source_display = "people.csv"
        stats = RecipientStats(total=len(rows), ok=len(rows))

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(rows)

    judged = ComposedRows(Stream(), Composer("Hi {name}"))
    out = list(judged)
    assert all(text is None and r.status == "invalid" for r, text in out)
    assert "U+0007" in out[0][0].reason
    found = judged.diagnostics
    assert len(found) == MAX_ROW_DIAGNOSTICS + 1 and found[-1].message.startswith("5 more rows")
    stats = judged.stats
    assert (stats.ok, stats.invalid, stats.first_invalid_rows) == (0, 25, (2, 3, 4, 5, 6))


@pytest.mark.parametrize(("url", "shown"), [
    ("https://u:pw@h.io:1/p?k=v#f", "https://***@h.io:1/p?***#***"),
    ("https://h.io/v1", "https://h.io/v1"),
    ("h.io?x", "h.io?***"),
])
def test_urls_are_shown_without_userinfo_query_or_fragment(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_a_cell_is_quoted_cut_at_40_characters() -> None:
    assert quote("a" * 40) == repr("a" * 40)
    assert quote("b" * 41) == repr("b" * 40 + "...")
