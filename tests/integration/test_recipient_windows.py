"""Recipient-local send windows against the sandbox, in-process with an injected clock.

Area codes: 212 is Manhattan (America/New_York), 312 Chicago (America/Chicago), 213 Los Angeles
(America/Los_Angeles); libphonenumber maps each to that one zone (asserted below).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.checker import check_campaign
from runner.endpoint import Endpoint, Secret
from runner.exitcodes import EXIT_OK, EXIT_STOPPED
from runner.observer import RunObserver
from runner.render import send_lines
from runner.reportread import read_report
from runner.results import RunOutcome
from runner.run import SendOptions, send_campaign
from runner.summary import run_summary
from runner.zones import ZoneLookup
from tests.integration.helpers import TEST_API_KEY, assert_at_most_once, sandbox

NEW_YORK = [f"+1212555{i:04d}" for i in range(120)]
CHICAGO = [f"+1312555{i:04d}" for i in range(130)]
LOS_ANGELES = [f"+1213555{i:04d}" for i in range(70)]
AT_0230_UTC = datetime(2026, 12, 2, 2, 30, tzinfo=UTC)  # NY 21:30, Chicago 20:30, LA 18:30


def _campaign(folder: Path, phones: list[str], *, window: str = "us-tcpa",
              extra: str = "") -> Path:
    (folder / "us.csv").write_text("phone,name\n" + "".join(
        f"{p},person{i}\n" for i, p in enumerate(phones)), encoding="utf-8")
    path = folder / "campaign.yaml"
    path.write_text(
        "version: 1\nname: us-tcpa-test\naccount:\n  region: NA\nmessage:\n  sender: ACME\n"
        "  type: DEFAULT\n  body: \"Hello, the sale ends tonight.\"\nrecipients:\n"
        "  source: us.csv\n  default_country: US\nsending:\n  batch_size: 50\n"
        f"  requests_per_second: 100\n  window: {window}\n{extra}report: report.csv\n",
        encoding="utf-8")
    return path


def _send(path: Path, base_url: str, now: Callable[[], datetime], *, wait: bool = False,
          sleep: Callable[[float], object] | None = None,
          observer: RunObserver | None = None) -> RunOutcome:
    check = check_campaign(path)
    assert check.ok and check.campaign is not None and check.summary is not None, \
        check.diagnostics
    endpoint = Endpoint(base_url, "SANDBOX", Secret(TEST_API_KEY))
    kwargs = {} if sleep is None else {"sleep": sleep}
    return send_campaign(check.campaign, endpoint,
                         SendOptions(report=path.parent / "report.csv", wait=wait),
                         to_send=check.summary.valid, now=now, observer=observer,
                         **kwargs)  # type: ignore[arg-type]


def _by_phone(path: Path) -> dict[str, str]:
    return {r["phone"]: r["status"] for r in read_report(path.parent / "report.csv")}


def test_the_area_codes_map_to_one_zone_each() -> None:
    lookup = ZoneLookup()
    assert lookup.zones(NEW_YORK[0][1:]) == ("America/New_York",)
    assert lookup.zones(CHICAGO[0][1:]) == ("America/Chicago",)
    assert lookup.zones(LOS_ANGELES[0][1:]) == ("America/Los_Angeles",)


def test_us_tcpa_at_0230_utc_sends_chicago_and_la_and_leaves_new_york_pending(
        tmp_path: Path) -> None:
    phones = [p for trio in zip(NEW_YORK, CHICAGO, LOS_ANGELES, strict=False) for p in trio]
    phones += CHICAGO[len(LOS_ANGELES):] + NEW_YORK[len(LOS_ANGELES):]
    path = _campaign(tmp_path, phones)
    with sandbox(region="NA") as sb:
        outcome = _send(path, sb.base_url, lambda: AT_0230_UTC)
        got = assert_at_most_once(sb.record)
        batches = [set(r.numbers) for r in sb.record.accepted]
    assert outcome.exit_code == EXIT_STOPPED
    status = _by_phone(path)
    assert {status[p] for p in CHICAGO + LOS_ANGELES} == {"sent"}
    assert {status[p] for p in NEW_YORK} == {"pending"}
    assert set(got) == set(CHICAGO + LOS_ANGELES)
    # A batch holds one zone's rows, in batches of up to 50 as usual.
    for numbers in batches:
        assert numbers <= set(CHICAGO) or numbers <= set(LOS_ANGELES)
        assert len(numbers) <= 50
    assert len(batches) == 3 + 2  # 130 Chicago rows, 70 LA rows
    # The outcome says when New York opens: 08:00 EST is 13:00 UTC.
    assert outcome.next_opening is not None
    assert outcome.next_opening.zones == ("America/New_York",)
    assert outcome.next_opening.at == datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    assert outcome.next_opening.rows == len(NEW_YORK)
    _, err = send_lines(outcome)
    assert any("America/New_York" in line and "--wait" in line for line in err), err
    document = run_summary(outcome, started_at=AT_0230_UTC, file="campaign.yaml")
    assert document["next_opening"] == {"at": "2026-12-02T13:00:00+00:00",
                                        "zones": ["America/New_York"], "rows": len(NEW_YORK)}

    # A rerun once New York has opened sends only New York, once.
    with sandbox(region="NA") as sb:
        rerun = _send(path, sb.base_url, lambda: datetime(2026, 12, 2, 13, 5, tzinfo=UTC))
        again = assert_at_most_once(sb.record)
    assert rerun.exit_code == EXIT_OK
    assert set(again) == set(NEW_YORK)
    assert set(_by_phone(path).values()) == {"sent"}


class _Clock:
    """A fake wall clock that a fake sleep moves on: the test never sleeps."""

    def __init__(self, start: datetime) -> None:
        self.at = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)


class _Watcher(RunObserver):
    def __init__(self) -> None:
        self.waits: list[tuple[str, datetime]] = []

    def waiting_for_window(self, window: object, opens_at: datetime) -> None:
        self.waits.append((getattr(window, "timezone", ""), opens_at))


def test_wait_sends_zone_by_zone_as_each_opens(tmp_path: Path) -> None:
    # 06:00 UTC: 01:00 in New York, 00:00 in Chicago, 22:00 in Los Angeles: all closed.
    clock = _Clock(datetime(2026, 12, 2, 6, 0, tzinfo=UTC))
    path = _campaign(tmp_path, NEW_YORK[:20] + CHICAGO[:20] + LOS_ANGELES[:20])
    watcher = _Watcher()
    with sandbox(region="NA") as sb:
        outcome = _send(path, sb.base_url, clock.now, wait=True, sleep=clock.sleep,
                        observer=watcher)
        order = [r.numbers[0][:5] for r in sb.record.accepted]
        assert_at_most_once(sb.record)
    assert outcome.exit_code == EXIT_OK
    assert Counter(_by_phone(path).values()) == Counter(sent=60)
    # New York opens at 13:00 UTC, Chicago at 14:00, Los Angeles at 16:00: one after another.
    assert watcher.waits == [
        ("America/New_York", datetime(2026, 12, 2, 13, 0, tzinfo=UTC)),
        ("America/Chicago", datetime(2026, 12, 2, 14, 0, tzinfo=UTC)),
        ("America/Los_Angeles", datetime(2026, 12, 2, 16, 0, tzinfo=UTC)),
    ]
    assert clock.slept == [7 * 3600.0, 3600.0, 2 * 3600.0]
    assert order == ["+1212", "+1312", "+1213"]


def test_a_zone_whose_window_closes_mid_run_gets_no_more_batches(tmp_path: Path) -> None:
    # A clock one second later at each look: Chicago is first seen at 20:59:58, its first batch
    # taken at 20:59:59, and its second would be taken at 21:00:00, when its window has closed.
    looks = [0]

    def now() -> datetime:
        looks[0] += 1
        return datetime(2026, 12, 2, 2, 59, 57, tzinfo=UTC) + timedelta(seconds=looks[0])

    path = _campaign(tmp_path, CHICAGO[:100] + LOS_ANGELES[:50])
    with sandbox(region="NA") as sb:
        outcome = _send(path, sb.base_url, now)
        got = assert_at_most_once(sb.record)
    status = _by_phone(path)
    sent_chicago = [p for p in CHICAGO[:100] if status[p] == "sent"]
    assert len(sent_chicago) == 50  # the first batch only
    assert {status[p] for p in CHICAGO[50:100]} == {"pending"}
    assert {status[p] for p in LOS_ANGELES[:50]} == {"sent"}  # 18:00 there: still open
    assert set(got) == set(sent_chicago) | set(LOS_ANGELES[:50])
    assert outcome.exit_code == EXIT_STOPPED
    assert outcome.next_opening is not None
    assert outcome.next_opening.zones == ("America/Chicago",)


def test_numbers_with_no_known_zone_use_the_fallback_or_stay_pending(tmp_path: Path) -> None:
    satellite = ["+870301234567"]  # Inmarsat: libphonenumber knows no zone for it
    path = _campaign(tmp_path, CHICAGO[:3] + satellite)
    with sandbox(region="NA") as sb:
        outcome = _send(path, sb.base_url, lambda: AT_0230_UTC)
    assert _by_phone(path)["+870301234567"] == "pending"
    assert outcome.exit_code == EXIT_STOPPED and outcome.next_opening is None
    assert outcome.never_open == 1
    _, err = send_lines(outcome)
    assert any("fallback_timezone" in line for line in err), err

    fallback = tmp_path / "with-fallback"
    fallback.mkdir()
    path = _campaign(fallback, CHICAGO[:3] + satellite,
                     extra="  fallback_timezone: America/Chicago\n")
    with sandbox(region="NA") as sb:
        outcome = _send(path, sb.base_url, lambda: AT_0230_UTC)
    assert outcome.exit_code == EXIT_OK
    assert set(_by_phone(path).values()) == {"sent"}
