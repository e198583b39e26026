from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType

from runner.phones import explain, normalise, normalise_slow, normaliser

REGIONS = ("IN", "DE", "GB", "US", "SG", "IT", "FR", "BR")
TYPES = (
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.VOIP,
    PhoneNumberType.SHARED_COST,
)


def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    found = []
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append((region, number))
    return found


EXAMPLES = _examples()


@st.composite
def digit_edits(draw: st.DrawFn, digits: str) -> str:
    """The digits with a few replaced, inserted or deleted: near-valid numbers."""
    out = list(digits)
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        digit = draw(st.sampled_from("0123456789"))
        if op == "replace" and out:
            out[at] = digit
        elif op == "insert":
            out.insert(at, digit)
        elif out:
            del out[at]
    return "".join(out)


@st.composite
def punctuated(draw: st.DrawFn, text: str) -> str:
    """Spaces, dashes, dots and parentheses sprinkled between the characters."""
    out = []
    for ch in text:
        if draw(st.integers(0, 6)) == 0:
            out.append(draw(st.sampled_from([" ", "-", ".", "(", ")", " - ", ") ", "  "])))
        out.append(ch)
    return "".join(out)


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    region, number = draw(st.sampled_from(EXAMPLES))
    cc = str(number.country_code)
    nsn = draw(digit_edits(phonenumbers.national_significant_number(number)))
    meta = PhoneMetadata.metadata_for_region(region)
    trunk = (meta.national_prefix or "0") if meta is not None else "0"
    form = draw(st.sampled_from([
        "e164", "international", "national", "plain", "trunk", "idd00", "idd011", "cc_no_plus",
        "random_digits", "garbage",
    ]))
    if form == "e164":
        text = f"+{cc}{nsn}"
    elif form == "international":
        text = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    elif form == "national":
        text = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    elif form == "plain":
        text = nsn
    elif form == "trunk":
        text = draw(st.sampled_from([trunk, "0", "1", "90", "00"])) + nsn
    elif form == "idd00":
        text = f"00{cc}{nsn}"
    elif form == "idd011":
        text = f"011{cc}{nsn}"
    elif form == "cc_no_plus":
        text = f"{cc}{nsn}"
    elif form == "random_digits":
        text = draw(st.text(alphabet="0123456789", min_size=0, max_size=18))
    else:
        text = draw(st.text(alphabet="0123456789+-() .x#,;abcEXT٣", max_size=24))
    if draw(st.booleans()):
        text = draw(punctuated(text))
    if draw(st.integers(0, 4)) == 0:
        text = f" {text} "
    return text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written_numbers(), st.sampled_from([*REGIONS, None]))
def test_fast_path_gives_the_same_verdict_as_phonenumbers(raw: str, country: str | None) -> None:
    assert normalise(raw, country) == normalise_slow(raw, country)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from([*REGIONS, None]))
def test_any_text_gives_the_same_verdict(raw: str, country: str | None) -> None:
    assert normalise(raw, country) == normalise_slow(raw, country)


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+919812345678", "IN", "+919812345678"),
        ("+91 98123 45678", None, "+919812345678"),
        ("98123-45678", "IN", "+919812345678"),
        ("098123 45678", "IN", "+919812345678"),
        ("919812345678", "IN", "+919812345678"),  # the country code without +
        ("0091 98123 45678", "IN", "+919812345678"),
        ("0091 98123 45678", None, "+919812345678"),  # 00 needs no default country
        ("0049 30 123456", "US", "+4930123456"),  # nor when the default's IDD is 011
        ("030 123456", "DE", "+4930123456"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("1 (415) 555-0123", "US", "+14155550123"),  # the US trunk prefix 1
        ("(415) 555-012", "US", None),
        ("+39 06 6982 1234", None, "+390669821234"),  # Italy keeps the leading zero
        ("06 6982 1234", "IT", "+390669821234"),
        ("+44 (0)20 7946 0000", None, "+442079460000"),
        ("020 7946 0000", "gb", "+442079460000"),  # the default country in lower case
        ("+91 5012 345678", "IN", None),
        ("98123 45678", None, None),  # no country code and no default
        ("", "IN", None),
        ("call me", "IN", None),
        ("+", "IN", None),
    ],
)
def test_normalise_examples(raw: str, country: str | None, expected: str | None) -> None:
    assert normalise(raw, country) == expected
    assert normalise_slow(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("0800 01 23 45", "IM"),  # stripping the trunk 0 would leave an impossible length
        ("+0091 98123 45678", "IN"),  # + then an international prefix
        ("9198123456789", "IN"),  # starts with the country code, one digit too many
        ("91 12345", "IN"),
        ("0 11 98765 4321", "BR"),  # Brazil's carrier-code prefixes
        ("+1 1 415 555 0123", None),
        ("011 44 20 7946 0000", "US"),
        ("001 415 555 0123", "SG"),
    ],
)
def test_tricky_inputs_agree_with_phonenumbers(raw: str, country: str | None) -> None:
    assert normalise(raw, country) == normalise_slow(raw, country)


def test_normaliser_binds_the_country() -> None:
    to_e164 = normaliser("IN")
    assert to_e164("098123 45678") == "+919812345678"
    assert to_e164("+44 20 7946 0000") == "+442079460000"
    assert to_e164("nope") is None


@pytest.mark.parametrize(
    ("raw", "country", "words"),
    [
        ("+91 5012 345678", "IN", "'+91 5012 345678' is not a valid number for IN"),
        ("5012 345678", "IN", "'5012 345678' is not a valid number for IN"),
        ("+44 20 7946", None, "'+44 20 7946' is not a valid number for GB"),
        ("98123 45678", None, "'98123 45678' has no country code"),
        ("n/a", "IN", "'n/a' is not a phone number"),
        ("   ", "IN", "no phone number"),
        ("+999 1234 5678", None, "does not start with a known country code"),
        ("1", "IN", "is not a phone number"),
    ],
)
def test_explain_says_why_in_words(raw: str, country: str | None, words: str) -> None:
    assert words in explain(raw, country)
