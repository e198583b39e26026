"""Phone numbers to E.164, with a fast path that gives the same verdicts as phonenumbers.

``normalise_slow`` is the reference: ``phonenumbers.parse`` with the default country, then
``is_valid_number``, then E.164 formatting. Surrounding whitespace is ignored. Numbers written
with ``00`` need no default country: when that reading is not valid, ``00`` is read as ``+``.

``normalise`` gives exactly the same answers, faster. Most recipient lists hold numbers that are
already E.164 or in a plain national form, written with digits and a little punctuation
(spaces, ``-``, ``.``, parentheses). For those it replays the few steps of ``parse`` that matter
(country code, international and national prefixes, leading zeros) straight from the library's
own metadata, and checks validity with one precompiled pattern per region and length instead of
walking every number type. Anything else (letters, extensions, odd prefixes, rare metadata
rules) goes the slow way. A hypothesis test holds the two paths to the same verdicts. The
metadata, compiled once per region and country code, is ``runner.phonemeta``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import phonenumbers
from phonenumbers import PhoneNumberFormat

from runner.phonemeta import CC_TEXT, COUNTRIES, MAX_NSN, REGIONS, UNSURE, Meta, Unsure, Verdict

__all__ = ["explain", "normalise", "normalise_slow", "normaliser"]

_NON_GEO: Final = "001"
_ANY_DIGIT: Final = re.compile(r"\d")  # Unicode digits, as phonenumbers' own patterns
_LETTER: Final = re.compile(r"[^\W\d_]")  # any letter, in any script

# --- the reference -----------------------------------------------------------------------


def _parse_valid(text: str, region: str | None) -> Any:
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return num if phonenumbers.is_valid_number(num) else None


def normalise_slow(raw: str, default_country: str | None) -> str | None:
    """E.164 for a valid number, else None: phonenumbers all the way."""
    region = default_country.upper() if default_country else None
    text = raw.strip()
    if _LETTER.search(text):
        # phonenumbers reads letters as a keypad (1-800-FLOWERS): for a recipient list that
        # turns a typo into a stranger's number, so a number with letters is invalid.
        return None
    num = _parse_valid(text, region)
    if num is None and text.startswith("00"):
        num = _parse_valid("+" + text[2:], None)
    if num is None:
        return None
    return str(phonenumbers.format_number(num, PhoneNumberFormat.E164))


def normalise(raw: str, default_country: str | None) -> str | None:
    """E.164 for a valid number, else None; the same verdicts as ``normalise_slow``."""
    region = default_country.upper() if default_country else None
    text = raw.strip()
    verdict = _fast(text, region)
    if isinstance(verdict, Unsure):
        # Without a digit parse can only fail (it wants two at least): skip its cost.
        return normalise_slow(text, region) if _ANY_DIGIT.search(text) else None
    return verdict


def normaliser(default_country: str | None) -> Callable[[str], str | None]:
    """``normalise`` with the default country bound once, for loops over many numbers."""
    region = default_country.upper() if default_country else None
    fast, slow, any_digit = _fast, normalise_slow, _ANY_DIGIT.search

    def bound(raw: str) -> str | None:
        text = raw.strip()
        verdict = fast(text, region)
        if isinstance(verdict, Unsure):
            return slow(text, region) if any_digit(text) else None
        return verdict

    return bound


def explain(raw: str, default_country: str | None) -> str:
    """Why ``raw`` is not a valid number, in words for a person (for invalid rows only)."""
    text = raw.strip()
    if _LETTER.search(text) and _ANY_DIGIT.search(text):
        return f"{text!r} has letters in it: a phone number has only digits"
    if not text:
        return "no phone number"
    shown = repr(text)
    if not _ANY_DIGIT.search(text):
        return f"{shown} is not a phone number"
    region = default_country.upper() if default_country else None
    quick = _quick_region(text, region)
    if quick is not None:
        return f"{shown} is not a valid number for {quick}"
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return _explain_parse_error(shown, text, region, exc.error_type)
    where = phonenumbers.region_code_for_country_code(num.country_code or 0)
    if where in (_NON_GEO, "ZZ"):
        return f"{shown} is not a valid number"
    return f"{shown} is not a valid number for {where}"


def _quick_region(text: str, region: str | None) -> str | None:
    """The region parse would name, for plainly written numbers; None when unsure."""
    if not 6 <= len(text) <= 40:
        return None
    plus = text[0] == "+"
    digits = (text[1:] if plus else text).translate(_PUNCT)
    if not (6 <= len(digits) <= MAX_NSN and digits.isascii() and digits.isdigit()):
        return None
    if plus:
        for size in (1, 2, 3):
            if digits[:size] in CC_TEXT:
                where = phonenumbers.region_code_for_country_code(int(digits[:size]))
                return str(where) if where not in (_NON_GEO, "ZZ") else None
        return None
    meta = REGIONS[region] if region is not None else None
    if meta is None or digits.startswith(("00", meta.cc_text)):
        return None
    if meta.idd is not None and meta.idd.match(digits):
        return None
    return region


def _explain_parse_error(shown: str, text: str, region: str | None, kind: int) -> str:
    npe = phonenumbers.NumberParseException
    if kind == npe.INVALID_COUNTRY_CODE:
        if region is None and not text.startswith(("+", "00")):
            return f"{shown} has no country code (write it with + or set default_country)"
        return f"{shown} does not start with a known country code"
    if kind in (npe.TOO_SHORT_NSN, npe.TOO_SHORT_AFTER_IDD):
        return f"{shown} is too short to be a phone number"
    if kind == npe.TOO_LONG:
        return f"{shown} is too long to be a phone number"
    return f"{shown} is not a phone number"


# --- the fast path -----------------------------------------------------------------------

_PUNCT: Final = str.maketrans("", "", " -.()")


def _fast(text: str, region: str | None) -> Verdict:
    if not 3 <= len(text) <= 40:
        return UNSURE
    plus = text[0] == "+"
    digits = text[1:] if plus else text
    if not digits.isdigit():
        digits = digits.translate(_PUNCT)
        if not digits.isdigit():
            return UNSURE  # letters, extensions, other punctuation: parse knows them all
    # parse wants three digits to call it a number; isdigit() also passes non-ASCII digits.
    if len(digits) < 3 or not digits.isascii():
        return UNSURE
    if plus:
        return _international(digits)
    verdict = _national(digits, region)
    if verdict is None and text.startswith("00"):
        return _international(digits[2:])
    return verdict


def _international(digits: str) -> Verdict:
    """Digits written after + (or an international prefix): country code, then the rest."""
    if len(digits) <= 2:
        return None  # TOO_SHORT_AFTER_IDD
    # Country codes are prefix-free; none starts with 0 (parse retries those oddly: let it).
    country = COUNTRIES[digits[:1]] or COUNTRIES[digits[:2]] or COUNTRIES[digits[:3]]
    if country is None:
        return UNSURE
    rest = digits[country.size :]
    if len(rest) < 2:
        return None  # TOO_SHORT_NSN
    meta = country.meta
    if meta.national_prefix is not None and meta.national_prefix.match(rest):
        return country.finish(_strip_national_prefix(rest, meta))
    return country.finish(rest)


def _national(digits: str, region: str | None) -> Verdict:
    """Digits written without +: the default region's prefixes decide how to read them."""
    if region is None:
        return None  # parse wants a default region here; _fast tries "00" as "+" itself
    meta = REGIONS[region]
    if meta is None:
        return UNSURE
    idd = meta.idd
    if idd is not None:
        m = idd.match(digits)
        if m is not None:
            rest = digits[m.end() :]
            if not rest.startswith("0"):
                return _international(rest)
    country = COUNTRIES[meta.cc_text]
    if country is None:
        return UNSURE
    if digits.startswith(meta.cc_text):
        # parse may read the region's country code even without a +.
        national = _country_code_without_plus(digits, meta)
        if isinstance(national, Unsure):
            return national
        if national is not None:
            if len(national) < 2:
                return None  # TOO_SHORT_NSN
            return country.finish(_strip_national_prefix(national, country.meta))
    return country.finish(_strip_national_prefix(digits, meta))


def _strip_national_prefix(number: str, meta: Meta) -> Verdict:
    """parse's national-prefix step: strip it only when what remains has a possible length."""
    stripped = _without_national_prefix(number, meta)
    if stripped is number or not isinstance(stripped, str):
        return stripped
    return stripped if meta.length_allows_stripping(len(stripped)) else number


def _without_national_prefix(number: str, meta: Meta) -> Verdict:
    """phonenumbers' _maybe_strip_national_prefix_carrier_code, for prefixes without rewrites."""
    prefix = meta.national_prefix
    if prefix is None:
        return number
    m = prefix.match(number)
    if m is None:
        return number
    if meta.transform:
        groups = m.groups()
        if not groups or groups[-1] is not None:
            return UNSURE  # a carrier-code rewrite: rare, leave it to parse
    general = meta.general
    stripped = number[m.end() :]
    if general is not None and general.fullmatch(number) and not general.fullmatch(stripped):
        return number
    return stripped


def _country_code_without_plus(digits: str, meta: Meta) -> Verdict:
    """National digits that begin with the region's own country code: does parse take it so?

    The national number after the code when parse reads the code, None when it does not.
    """
    potential = _without_national_prefix(digits[len(meta.cc_text) :], meta)
    if not isinstance(potential, str):
        return potential
    general = meta.general
    if general is not None and not general.fullmatch(digits) and general.fullmatch(potential):
        return potential
    lengths = meta.lengths
    if not lengths:
        return UNSURE
    n = len(digits)
    too_long = n not in meta.local and n > lengths[0] and n > lengths[-1]
    return potential if too_long else None
