"""Recipient-local windows: a number's zones, a zone set's window, presets and their checks."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as tz

from runner.campaign import load_campaign
from runner.checker import check_campaign
from runner.model import Window
from runner.plan import Batch
from runner.zoneplan import ZoneBatcher
from runner.zones import ZoneClock, ZoneLookup, set_state

TCPA = Window(time(8), time(21), "recipient", preset="us-tcpa")


def _examples() -> list[str]:
    """A valid example number of every type of every region, and of the non-geographic codes."""
    found = []
    types = [getattr(PhoneNumberType, n) for n in dir(PhoneNumberType) if n.isupper()]
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in types:
            num = phonenumbers.example_number_for_type(region, kind)
            if num is not None and phonenumbers.is_valid_number(num):
                found.append(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        num = phonenumbers.example_number_for_non_geo_entity(code)
        if num is not None:
            found.append(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))
    return found


def test_the_cached_lookup_agrees_with_libphonenumber_for_every_kind_of_number() -> None:
    lookup = ZoneLookup()
    numbers = _examples()
    assert len(numbers) > 1000
    for e164 in numbers:
        expected = tuple(sorted(tz.time_zones_for_number(phonenumbers.parse(e164))))
        if expected == ("Etc/Unknown",):
            expected = ()
        # Twice: the second answer comes from the cache.
        assert lookup.zones(e164[1:]) == expected, e164
        assert lookup.zones(e164[1:]) == expected, e164


def test_the_lookup_agrees_with_libphonenumber_for_numbers_near_every_example() -> None:
    # Each example number with its last digits changed: the type patterns that decide whether
    # a number is geographic often look deep into it (North America's personal numbers do).
    rng = random.Random(13)
    lookup = ZoneLookup()
    checked = 0
    for e164 in _examples():
        for _ in range(8):
            cut = rng.randint(1, min(6, len(e164) - 4))
            candidate = e164[:-cut] + "".join(rng.choice("0123456789") for _ in range(cut))
            num = phonenumbers.parse(candidate)
            if not phonenumbers.is_valid_number(num):
                continue
            expected = tuple(sorted(tz.time_zones_for_number(num)))
            assert lookup.zones(candidate[1:]) == (() if expected == ("Etc/Unknown",)
                                                  else expected), candidate
            checked += 1
    assert checked > 5000


def test_a_toll_free_number_has_every_zone_of_its_plan_and_a_geographic_one_its_own() -> None:
    lookup = ZoneLookup()
    assert lookup.zones("12125550100") == ("America/New_York",)
    toll_free = lookup.zones("18005550123")  # same first digits as no area: the type decides
    assert "America/New_York" in toll_free and "Pacific/Honolulu" in toll_free
    assert lookup.zones("919876500000") == ("Asia/Calcutta",)


def test_an_unknown_zone_uses_the_fallback_or_none() -> None:
    assert ZoneLookup().zones("870301234567") == ()
    assert ZoneLookup("America/Chicago").zones("870301234567") == ("America/Chicago",)


def test_a_zone_set_is_open_only_while_every_zone_is() -> None:
    zones = ("America/Chicago", "America/New_York")
    # 13:30 UTC: 08:30 New York (open), 07:30 Chicago (closed): the set opens with Chicago.
    state = set_state(TCPA, zones, datetime(2026, 12, 2, 13, 30, tzinfo=UTC))
    assert not state.open and state.opens_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    # 20:00 UTC: both open; it closes when New York does (21:00 EST = 02:00 UTC).
    state = set_state(TCPA, zones, datetime(2026, 12, 2, 20, 0, tzinfo=UTC))
    assert state.open and state.closes_at == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def test_zones_never_open_at_once_never_open() -> None:
    hour = Window(time(8), time(9), "recipient")
    # UTC+14 and UTC-11: the same hour of the day is 25 hours apart, so never together.
    state = set_state(hour, ("Pacific/Kiritimati", "Pacific/Pago_Pago"),
                      datetime(2026, 12, 2, tzinfo=UTC))
    assert not state.open and state.opens_at is None
    assert set_state(TCPA, (), datetime(2026, 12, 2, tzinfo=UTC)).opens_at is None


def test_the_clock_remembers_a_state_only_until_it_changes() -> None:
    lookup = ZoneLookup()
    chicago = lookup.index("13125550100")
    clock = ZoneClock(TCPA, lookup.sets)
    assert clock.is_open(chicago, datetime(2026, 12, 3, 2, 59, 59, tzinfo=UTC))
    assert not clock.is_open(chicago, datetime(2026, 12, 3, 3, 0, tzinfo=UTC))
    assert clock.is_open(chicago, datetime(2026, 12, 3, 14, 0, tzinfo=UTC))
    assert not clock.is_open(chicago, datetime(2026, 12, 3, 13, 59, tzinfo=UTC))  # back in time


def test_batches_hold_one_zone_set_each_and_skip_closed_zones() -> None:
    at = datetime(2026, 12, 2, 2, 30, tzinfo=UTC)  # NY closed, Chicago and LA open
    batcher = ZoneBatcher(TCPA, None, size=2, now=lambda: at, id_prefix="r1-b")
    rows = [(i + 2, digits, "hi") for i, digits in enumerate(
        ["12125550100", "13125550100", "12135550100", "13125550101", "12135550101",
         "13125550102", "870301234567"])]
    batches: list[Batch] = list(batcher.batches(rows))
    assert [b.numbers for b in batches] == [
        ("+13125550100", "+13125550101"), ("+12135550100", "+12135550101"), ("+13125550102",)]
    assert [b.id for b in batches] == ["r1-b000001", "r1-b000002", "r1-b000003"]
    opening = batcher.next_opening(at)
    assert opening is not None and opening.zones == ("America/New_York",)
    assert batcher.never(at) == 1
    assert list(batcher.batches(rows)) == []  # a second pass never repeats a row


def _write(folder: Path, sending: str, phones: str = "+12125550100\n+870301234567\n") -> Path:
    (folder / "r.csv").write_text("phone\n" + phones, encoding="utf-8")
    path = folder / "c.yaml"
    path.write_text("version: 1\nname: t\naccount:\n  region: NA\nmessage:\n  sender: ACME\n"
                    "  type: DEFAULT\n  body: hello\nrecipients:\n  source: r.csv\n"
                    f"sending:\n{sending}", encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "start", "zone"), [
    ("  window: us-tcpa\n", time(8), "recipient"),
    ("  window: in-trai\n", time(9), "Asia/Kolkata"),
    ('  window: {start: "08:30", end: "20:00", timezone: recipient}\n', time(8, 30), "recipient"),
])
def test_presets_and_the_recipient_zone_load(tmp_path: Path, text: str, start: time,
                                             zone: str) -> None:
    loaded = load_campaign(_write(tmp_path, text))
    assert loaded.campaign is not None, loaded.diagnostics
    window = loaded.campaign.sending.window
    assert window is not None and (window.start, window.timezone) == (start, zone)


def test_a_bad_fallback_zone_is_an_error_at_its_line(tmp_path: Path) -> None:
    loaded = load_campaign(_write(tmp_path, "  window: us-tcpa\n"
                                            "  fallback_timezone: America/New_Yrok\n"))
    assert loaded.campaign is None
    [problem] = loaded.diagnostics
    assert (problem.line, problem.field) == (13, "sending.fallback_timezone")
    assert "did you mean 'America/New_York'" in problem.message


def test_an_unknown_preset_is_an_error(tmp_path: Path) -> None:
    loaded = load_campaign(_write(tmp_path, "  window: us-tcpaa\n"))
    assert loaded.campaign is None
    [problem] = loaded.diagnostics
    assert (problem.line, problem.field) == (12, "sending.window")
    assert "is not one of 'always', 'us-tcpa', 'in-trai'" in problem.message


def test_validate_warns_with_the_count_of_numbers_without_a_zone(tmp_path: Path) -> None:
    check = check_campaign(_write(tmp_path, "  window: us-tcpa\n",
                                  "+12125550100\n+870301234567\n+870301234568\n"))
    assert check.ok
    warnings = [d.message for d in check.diagnostics if d.severity == "warning"]
    assert any(m.startswith("2 numbers have no known time zone") for m in warnings), warnings
    with_fallback = tmp_path / "f"
    with_fallback.mkdir()
    check = check_campaign(_write(with_fallback, "  window: us-tcpa\n"
                                                 "  fallback_timezone: America/Chicago\n"))
    assert not [d for d in check.diagnostics if "time zone" in d.message]


def test_a_fallback_without_a_recipient_window_is_warned(tmp_path: Path) -> None:
    check = check_campaign(_write(tmp_path, "  window: always\n"
                                            "  fallback_timezone: America/Chicago\n"))
    assert any("fallback_timezone is used only" in d.message for d in check.diagnostics)


def test_the_dry_run_lists_the_zones_their_rows_and_when_each_opens(tmp_path: Path) -> None:
    path = _write(tmp_path, "  window: us-tcpa\n",
                  "+12125550100\n+12125550101\n+13125550100\n+870301234567\n")
    done = subprocess.run([sys.executable, "-m", "runner", "send", str(path), "--dry-run"],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    window = next(i for i, line in enumerate(lines) if line.strip().startswith("window"))
    assert "in each recipient's time zone (us-tcpa)" in lines[window]
    zones = [line.split("  ") for line in lines[window + 1:window + 4]]
    assert [[part.strip() for part in z if part.strip()][:2] for z in zones] == [
        ["America/New_York", "2 rows"], ["America/Chicago", "1 row"],
        ["no known time zone", "1 row"]]
    assert all("open now" in line or "opens in" in line or "never" in line
               for line in lines[window + 1:window + 4])
    assert "never" in lines[window + 3] and "fallback_timezone" in lines[window + 3]


def test_a_text_s_own_batch_size_holds_under_a_recipient_window() -> None:
    # parts_per_second gives each text its own size (runner.plan.text_sizes): the zoned send
    # must batch as the check planned, never more parts in a request than a second allows.
    at = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)  # noon in New York: open
    batcher = ZoneBatcher(TCPA, None, size=10, now=lambda: at, id_prefix="r1-b",
                          size_of=lambda text: 3 if text == "long" else 10)
    rows = [(i + 2, f"1212555{i:04d}", "long") for i in range(7)]
    sizes = [len(b.rows) for b in batcher.batches(rows)]
    assert sizes == [3, 3, 1]


def test_the_check_pass_keeps_the_csv_hash_under_a_recipient_window() -> None:
    from runner.checker import check_file, check_recipients
    from runner.verdicts import CheckedRows

    repo = Path(__file__).resolve().parents[2]
    kept = CheckedRows()
    try:
        check = check_recipients(check_file(repo / "campaigns" / "us-tcpa.yaml"), observer=kept)
        assert check.ok and kept.source_sha256  # what the send proves it sends
    finally:
        kept.close()
