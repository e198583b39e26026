"""Recipient CSVs and campaign files for the benchmarks (written under benchmarks/data/).

The numbers mix the ways people write them: E.164, E.164 with spaces, national with the trunk 0,
bare national digits, dashes and dots, the country code without ``+``, a few foreign numbers
(GB, US, SG, DE, AE) and some invalid cells (too short, too long, letters, an impossible
prefix, empty). About 4% of the rows repeat an earlier number written another way. Nothing here
is meant to trip the CSV reader (no ragged rows, no blank lines, no ``00`` prefixes, no
suppression list), so that the naive baseline and the runner must reach the same verdicts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GENERATOR_VERSION = 2  # bump when the mix changes: cached files are keyed by it
SEED = 20261125
DEFAULT_COUNTRY = "IN"
FIRST_NAMES = ("Aarav", "Diya", "Vihaan", "Ananya", "Ishaan", "Kavya", "Arjun", "Meera",
               "Rohan", "Saanvi", "Kabir", "Tara")
FIXED_BODY = "Your order has shipped and will reach you in 2-3 days. - KLRHXA"
TEMPLATE_ID = "1107161234567890123"
CITIES = ("Mumbai", "Pune", "Delhi", "Chennai", "Kolkata", "Bengaluru", "Hyderabad", "Jaipur")


class _Draws:
    """``random.Random``'s own draws (``choice``, ``randrange``, ``random``) with the method
    lookups and argument checks taken out: the same numbers for the same seed, so cached files
    stay valid, at about twice the speed (a 10M-row file is generated once, but once matters)."""

    def __init__(self, rng: random.Random) -> None:
        self.bits = rng.getrandbits
        self.random = rng.random

    def below(self, n: int) -> int:
        """``rng.randrange(n)``: ``Random._randbelow_with_getrandbits`` inlined."""
        bits, k = self.bits, n.bit_length()
        r = bits(k)
        while r >= n:
            r = bits(k)
        return r

    def choice(self, seq: Sequence[str]) -> str:
        return seq[self.below(len(seq))]


def _indian_mobile(d: _Draws) -> str:
    """Ten national digits: every 6-9 prefix is a valid Indian mobile range in phonenumbers."""
    return f"{d.choice('6789')}{d.below(10 ** 9):09d}"


def _written(national: str, d: _Draws) -> str:
    """One way a person writes the Indian mobile ``national`` (ten digits)."""
    pick = d.random()
    if pick < 0.35:
        return f"+91{national}"
    if pick < 0.50:
        return f"+91 {national[:5]} {national[5:]}"
    if pick < 0.65:
        return f"0{national}"
    if pick < 0.75:
        return national
    if pick < 0.82:
        return f"{national[:3]}-{national[3:6]}-{national[6:]}"
    if pick < 0.86:
        return f"0{national[:5]} {national[5:]}"
    if pick < 0.90:
        return f"{national[:5]}.{national[5:]}"
    if pick < 0.95:
        return f"91{national}"
    return f"+91-{national[:5]}-{national[5:]}"


def _foreign(d: _Draws) -> str:
    pick = d.below(5)
    if pick == 0:
        return f"+44 7{d.below(10 ** 9):09d}"
    if pick == 1:
        area, exchange = 200 + d.below(800), 200 + d.below(800)
        return f"+1 {area} {exchange} {d.below(10 ** 4):04d}"
    if pick == 2:
        return f"+65 {d.choice('89')}{d.below(10 ** 7):07d}"
    if pick == 3:
        return f"+49 15{d.below(10 ** 9):09d}"
    return f"+971 5{d.below(10 ** 8):08d}"


def _invalid(d: _Draws) -> str:
    pick = d.below(6)
    if pick == 0:
        return f"{d.below(10 ** 5):05d}"  # too short
    if pick == 1:
        return f"+91{_indian_mobile(d)}{d.below(10)}"  # one digit too many
    if pick == 2:
        return "call me"
    if pick == 3:
        return f"+91 1{d.below(10 ** 9):09d}"  # 1... is not an Indian range
    if pick == 4:
        return ""
    return f"98x{d.below(10 ** 7):07d}"


def phone_cells(rows: int, seed: int = SEED) -> Iterator[str]:
    """The phone column of a generated file: deterministic for (rows, seed)."""
    d = _Draws(random.Random(seed * 1_000_003 + rows))
    draw, below = d.random, d.below
    recent: list[str] = []  # national digits of earlier rows, for duplicates
    for _ in range(rows):
        pick = draw()
        if pick < 0.04 and recent:
            yield _written(recent[below(len(recent))], d)  # the same number, maybe otherwise
        elif pick < 0.085:
            yield _invalid(d)
        elif pick < 0.135:
            yield _foreign(d)
        else:
            national = _indian_mobile(d)
            if len(recent) < 50_000:
                recent.append(national)
            else:
                recent[below(len(recent))] = national
            yield _written(national, d)


def write_csv(path: Path, rows: int, seed: int = SEED) -> None:
    """No cell needs quoting (no commas, quotes or line ends), so lines are joined by hand:
    what csv.writer would write, byte for byte, a few thousand lines a write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    d = _Draws(random.Random(seed))
    choice = d.choice
    partial = path.with_name(path.name + ".part")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        handle.write("phone,name,city\n")
        lines: list[str] = []
        for phone in phone_cells(rows, seed):
            lines.append(f"{phone},{choice(FIRST_NAMES)},{choice(CITIES)}\n")
            if len(lines) >= 8192:
                handle.writelines(lines)
                lines.clear()
        handle.writelines(lines)
    partial.replace(path)


def recipients_csv(data_dir: Path, rows: int) -> Path:
    """The cached CSV of ``rows`` rows, generated on first use."""
    path = data_dir / f"recipients-{rows}-v{GENERATOR_VERSION}.csv"
    if not path.exists():
        write_csv(path, rows)
    return path


def distinct_csv(data_dir: Path, rows: int) -> Path:
    """``rows`` distinct valid Indian mobiles in E.164, nothing else (for the rate runs)."""
    path = data_dir / f"distinct-{rows}-v{GENERATOR_VERSION}.csv"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        with partial.open("w", encoding="utf-8", newline="") as handle:
            handle.write("phone,name\n")
            handle.writelines(f"+91{9_000_000_000 + i},p{i}\n" for i in range(rows))
        partial.replace(path)
    return path


@dataclass(frozen=True, slots=True)
class CampaignFile:
    yaml: Path
    csv: Path
    report: Path


def _inside(folder: Path, source: Path) -> str:
    """``source`` as a campaign in ``folder`` may name it: a campaign's files stay inside its
    root, so a data file kept elsewhere is hard-linked (else copied) beside the campaign."""
    try:
        return source.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        pass
    beside = folder / source.name
    if not (beside.exists() and os.path.samefile(beside, source)):
        beside.unlink(missing_ok=True)
        try:
            os.link(source, beside)
        except OSError:
            shutil.copyfile(source, beside)
    return beside.name


def write_campaign(
    folder: Path,
    name: str,
    source: Path,
    *,
    sending: Mapping[str, object] | None = None,
    stem: str | None = None,
    body: str | None = None,
    dlt_templates: str | None = None,
) -> CampaignFile:
    """An IN/TXN campaign (no implied send window) over ``source``, as ``folder/<stem>.yaml``.

    ``stem`` defaults to ``name``; two files with the same ``name`` and different ``sending``
    settings are the same run to the journal (rate and concurrency are not in its fingerprint).
    ``body`` replaces the fixed text (placeholders name ``source``'s columns);
    ``dlt_templates`` names a DLT template export in ``folder`` (``TEMPLATE_ID`` must be in it).
    A ``sending`` value that is a mapping (a window) is written as a JSON (YAML flow) mapping.
    """
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {"batch_size": 100, "requests_per_second": 10000,
                                   "concurrency": 8, "max_attempts": 5, "window": "always"}
    settings.update(sending or {})
    lines = [
        "version: 1",
        f"name: {name}",
        "account:",
        "  region: IN",
        "message:",
        "  sender: KLRHXA",
        "  type: TXN",
        f"  body: {json.dumps(body or FIXED_BODY)}",
        f'  template_id: "{TEMPLATE_ID}"',
        '  entity_id: "1101456789012345678"',
        "recipients:",
        f'  source: "{_inside(folder, source)}"',
        "  default_country: IN",
        "  max_invalid_ratio: 0.2",
        *([f"dlt: {{templates: {json.dumps(dlt_templates)}}}"] if dlt_templates else []),
        "sending:",
        *(f"  {key}: {json.dumps(value) if isinstance(value, Mapping) else value}"
          for key, value in settings.items()),
    ]
    yaml = folder / f"{stem or name}.yaml"
    yaml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CampaignFile(yaml, source, folder / f"{name}.csv")
