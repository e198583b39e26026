"""libphonenumber's metadata, compiled for the fast path of ``runner.phones``.

Per region (``REGIONS``) and per country calling code (``COUNTRIES``), built on first use: the
prefixes ``parse`` would strip, the possible lengths, and validity as ``is_valid_number`` decides
it (the region's general pattern and the pattern of some number type), one regex per length.
``Unsure`` is the fast path's "cannot decide": the caller then takes the slow path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

MAX_NSN: Final = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
CC_TEXT: Final = frozenset(str(cc) for cc in COUNTRY_CODE_TO_REGION_CODE)


class Unsure:
    """The fast path cannot decide: fall back to the slow path."""


UNSURE: Final = Unsure()
Verdict = str | None | Unsure


class Meta:
    """What the fast path needs from one region's metadata, precompiled."""

    __slots__ = ("cc_text", "general", "idd", "lengths", "local", "national_prefix",
                 "transform")

    def __init__(self, md: Any) -> None:
        self.cc_text = str(md.country_code)
        self.idd = _compile(md.international_prefix)
        self.national_prefix = _compile(md.national_prefix_for_parsing)
        self.transform = bool(md.national_prefix_transform_rule)
        self.general = _compile(md.general_desc.national_number_pattern)
        self.lengths: tuple[int, ...] = tuple(md.general_desc.possible_length)
        self.local = frozenset(md.general_desc.possible_length_local_only)

    def length_allows_stripping(self, n: int) -> bool:
        # parse strips only when its length test says IS_POSSIBLE or TOO_LONG.
        lengths = self.lengths
        if n in self.local or not lengths:
            return False
        return n == lengths[0] or (n > lengths[0] and (n > lengths[-1] or n in lengths[1:]))


class Country:
    """One country calling code: its main region's metadata and a validity check."""

    __slots__ = ("meta", "plus", "size", "valid")

    def __init__(self, cc: int) -> None:
        main = phonenumbers.region_code_for_country_code(cc)
        self.meta = Meta(PhoneMetadata.metadata_for_region_or_calling_code(cc, main))
        self.plus = f"+{cc}"
        self.size = len(str(cc))
        self.valid = _build_validator(cc)

    def finish(self, nsn: Verdict) -> Verdict:
        if not isinstance(nsn, str):
            return nsn
        if len(nsn) > MAX_NSN:
            return None
        # parse keeps a national number's leading zeros, so the NSN is the digits as written.
        return self.plus + nsn if self.valid(nsn) else None


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


class _Regions(dict[str, "Meta | None"]):
    """Region code -> precompiled metadata, built on first use (None: no such region)."""

    def __missing__(self, region: str) -> Meta | None:
        md = PhoneMetadata.metadata_for_region(region, None)
        meta = self[region] = Meta(md) if md is not None else None
        return meta


class _Countries(dict[str, "Country | None"]):
    """Leading digits -> the country code they spell (None when they spell none)."""

    def __missing__(self, digits: str) -> Country | None:
        country = self[digits] = Country(int(digits)) if digits in CC_TEXT else None
        return country


REGIONS: Final = _Regions()
COUNTRIES: Final = _Countries()


# Validity as is_valid_number decides it: the number fits the region's general pattern and the
# pattern of some number type. Both become one regex per length, compiled on first use.

_TYPE_FIELDS: Final = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                       "pager", "uan", "voicemail", "fixed_line")
_Validator = Callable[[str], bool]


def _build_validator(cc: int) -> _Validator:
    regions = COUNTRY_CODE_TO_REGION_CODE[cc]
    if len(regions) == 1:
        md = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        return _region_validator(md) if md is not None else _never
    # Several regions share the code: the first whose leading digits match, or failing that
    # the first that knows the number's type, decides (region_code_for_number).
    order: list[tuple[re.Pattern[str] | None, _Validator]] = []
    for region in regions:
        md = PhoneMetadata.metadata_for_region(region.upper(), None)
        if md is not None:
            order.append((_compile(md.leading_digits), _region_validator(md)))

    def check(nsn: str) -> bool:
        for leading, valid in order:
            if leading is not None:
                if leading.match(nsn):
                    return valid(nsn)
            elif valid(nsn):
                return True
        return False

    return check


def _never(nsn: str) -> bool:
    return False


def _region_validator(md: Any) -> _Validator:
    general = md.general_desc
    descs = [getattr(md, name) for name in _TYPE_FIELDS]
    if not md.same_mobile_and_fixed_line_pattern:
        descs.append(md.mobile)  # with the same pattern, only fixed_line is consulted
    descs = [d for d in descs if d is not None and d.national_number_pattern]
    by_length: dict[int, re.Pattern[str] | None] = {}

    def compile_for(n: int) -> re.Pattern[str] | None:
        if not general.national_number_pattern:
            return None
        if general.possible_length and n not in general.possible_length:
            return None
        types = [d.national_number_pattern for d in descs
                 if not d.possible_length or n in d.possible_length]
        if not types:
            return None
        either = "|".join(f"(?:{t})" for t in types)
        return re.compile(f"(?=(?:{general.national_number_pattern})\\Z)(?:{either})")

    def check(nsn: str) -> bool:
        n = len(nsn)
        try:
            pattern = by_length[n]
        except KeyError:
            pattern = by_length[n] = compile_for(n)
        return pattern is not None and pattern.fullmatch(nsn) is not None

    return check
