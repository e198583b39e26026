"""The validation baseline a user would write: csv.DictReader, phonenumbers, a set."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat


@dataclass(frozen=True, slots=True)
class Verdicts:
    valid: int  # first row of each valid number
    invalid: int
    duplicate: int

    @property
    def total(self) -> int:
        return self.valid + self.invalid + self.duplicate


def naive_verdicts(path: Path, column: str = "phone", region: str = "IN") -> Verdicts:
    """parse + is_valid_number + E.164 into a set; the first row of a number wins."""
    seen: set[str] = set()
    valid = invalid = duplicate = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                number = phonenumbers.parse(row[column], region)
            except phonenumbers.NumberParseException:
                invalid += 1
                continue
            if not phonenumbers.is_valid_number(number):
                invalid += 1
                continue
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            if e164 in seen:
                duplicate += 1
            else:
                seen.add(e164)
                valid += 1
    return Verdicts(valid, invalid, duplicate)


def valid_numbers(path: Path, column: str = "phone", region: str = "IN") -> list[str]:
    """The distinct valid numbers in E.164, in first-seen order (what a send would post)."""
    seen: dict[str, None] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                number = phonenumbers.parse(row[column], region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                seen.setdefault(phonenumbers.format_number(number, PhoneNumberFormat.E164), None)
    return list(seen)
