"""`campaign status`: delivery columns from the sandbox after a real send, and the polling rules
(100 ids a request, the campaign's rate limit, retries, refusals) on virtual time."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

import runner.delivery
import runner.kaleyra
import runner.poller
from runner.answers import StatusOutcome
from runner.cli import cmd_status, main
from runner.cliparser import add_status_arguments
from runner.delivery import (
    DELIVERY_COLUMNS,
    NOT_IN_ANSWER,
    check_delivery,
    verdict,
)
from runner.endpoint import Endpoint
from runner.journal import Journal, journal_path
from runner.report import ReportRow, write_report
from runner.reportread import read_report
from runner.sandbox import SANDBOX_SID
from runner.sandbox_thread import SandboxThread

KEY = "sk-live-7f3a9c41d2e8b6a0"  # distinctive, so a leak is easy to spot
CAMPAIGN = """\
version: 1
name: status-test
account:
  region: SG
  sid: SANDBOX
message:
  sender: ACME
  type: DEFAULT
  body: Hello
recipients:
  source: people.csv
  default_country: SG
sending:
  requests_per_second: 1000
  window: always
"""


def status(argv: Sequence[str]) -> tuple[int, str, str]:
    """`campaign status ...` through the argument parser the CLI will use."""
    parser = argparse.ArgumentParser(prog="campaign status")
    add_status_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = cmd_status(parser.parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def rows(report: Path) -> list[dict[str, str]]:
    return list(read_report(report))


def numbers(count: int) -> list[str]:
    return [f"+659100{i:04d}" for i in range(count)]


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxThread]:
    with SandboxThread(region="SG", api_key=KEY, sid=SANDBOX_SID) as thread:
        monkeypatch.setenv("KALEYRA_BASE_URL", thread.base_url)
        monkeypatch.setenv("KALEYRA_API_KEY", KEY)
        yield thread


def send(tmp_path: Path, phones: Sequence[str]) -> Path:
    """A real `campaign send` to the sandbox; returns the report."""
    (tmp_path / "people.csv").write_text("phone\n" + "\n".join(phones) + "\n")
    (tmp_path / "c.yaml").write_text(CAMPAIGN)
    report = tmp_path / "report.csv"
    out, err = io.StringIO(), io.StringIO()
    code = main(["send", str(tmp_path / "c.yaml"), "--report", str(report)], stdout=out,
                stderr=err)
    assert code in (0, 3), err.getvalue()
    return report


class Spy:
    """Wraps get_status to see the ids each request asked for."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.asked: list[list[str]] = []

    async def __call__(self, session: aiohttp.ClientSession, endpoint: Endpoint,
                       ids: Sequence[str], *, timeout: float) -> StatusOutcome:
        self.asked.append(list(ids))
        result: StatusOutcome = await self.real(session, endpoint, ids, timeout=timeout)
        return result


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    found = Spy(runner.kaleyra.get_status)
    monkeypatch.setattr(runner.poller, "get_status", found)
    return found


# --- against the sandbox, after a real send ------------------------------------------------------


def test_status_fills_delivery_columns_from_the_sandbox(tmp_path: Path, sandbox: SandboxThread,
                                                        spy: Spy) -> None:
    phones = [*numbers(150), "12345", numbers(1)[0]]  # and an invalid row and a duplicate
    report = send(tmp_path, phones)
    before = rows(report)

    code, out, err = status([str(report)])

    after = rows(report)
    assert code == 3  # the sandbox does not deliver numbers ending in 7
    assert "report.csv" in out and "15 UnDelivered" in err and "135 Delivered" in err
    assert [max(map(len, spy.asked)), sum(map(len, spy.asked))] == [100, 150]
    assert len(after) == len(before) == 152
    for old, new in zip(before, after, strict=True):
        assert {k: new[k] for k in old} == old  # the send's columns are untouched
        if old["status"] != "sent":
            assert [new[c] for c in DELIVERY_COLUMNS] == ["", "", ""]
        elif old["phone"].endswith("7"):
            assert (new["delivery_status"], new["delivery_detail"]) == ("UnDelivered", "MOB-OFF")
        else:
            assert (new["delivery_status"], new["delivery_detail"]) == ("Delivered", "DELIVERED")
    assert all(r["checked_at"].endswith("+00:00") for r in after if r["status"] == "sent")


def test_all_delivered_exits_0_and_final_rows_are_not_asked_again(
        tmp_path: Path, sandbox: SandboxThread, spy: Spy) -> None:
    report = send(tmp_path, numbers(5))
    assert status([str(report)])[0] == 0
    first = rows(report)

    code, _, err = status([str(report)])

    assert code == 0 and len(spy.asked) == 1  # nothing asked the second time
    assert "nothing asked; 5 already final" in err
    assert rows(report) == first
    assert status([str(report), "--recheck"])[0] == 0
    assert len(spy.asked) == 2


def test_delivery_columns_survive_with_other_extra_columns(tmp_path: Path,
                                                           sandbox: SandboxThread) -> None:
    report = send(tmp_path, numbers(3))
    records = [ReportRow(int(r["row"]), r["phone"], "sent", r["message_id"], r["batch_id"],
                         attempts=1, extra={"note": "=vip"}) for r in rows(report)]
    write_report(report, records, extra_columns=["note"])

    assert status([str(report)])[0] == 0

    assert [(r["note"], r["delivery_status"]) for r in rows(report)] == [("=vip", "Delivered")] * 3


def test_a_refused_key_is_an_error_that_never_shows_the_key(tmp_path: Path,
                                                            sandbox: SandboxThread,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    report = send(tmp_path, numbers(3))
    before = report.read_bytes()
    wrong = KEY[::-1]
    monkeypatch.setenv("KALEYRA_API_KEY", wrong)

    code, out, err = status([str(report)])

    assert code == 1 and "refused" in err and "401" in err
    assert wrong not in out + err and KEY not in out + err
    assert report.read_bytes() == before  # nothing learnt, nothing rewritten


# --- bad input -----------------------------------------------------------------------------------


def test_a_missing_report(tmp_path: Path) -> None:
    code, _, err = status([str(tmp_path / "nope.csv")])
    assert code == 1 and "nope.csv" in err and "Traceback" not in err


def test_a_csv_that_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("phone,name\n+6591000000,A\n")
    code, _, err = status([str(tmp_path / "people.csv")])
    assert code == 1 and "people.csv:1: not a delivery report" in err


def test_a_dry_run_report_has_no_journal(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("phone\n+6591000000\n")
    (tmp_path / "c.yaml").write_text(CAMPAIGN)
    report = tmp_path / "dry.csv"
    assert main(["send", str(tmp_path / "c.yaml"), "--dry-run", "--report", str(report)],
                stdout=io.StringIO(), stderr=io.StringIO()) == 0

    code, _, err = status([str(report)])

    assert code == 1 and "no journal" in err and "dry.csv.journal" in err


def test_a_bad_cell_names_the_line_and_field(tmp_path: Path) -> None:
    report = hand_made_run(tmp_path, ["a:1", "a:2"])
    report.write_bytes(report.read_bytes().replace(b"\r\n3,", b"\r\nthree,"))
    code, _, err = status([str(report)])
    assert code == 1 and "report.csv:3: row 'three' is not a whole number" in err


def test_the_key_variable_must_be_set(tmp_path: Path) -> None:
    report = hand_made_run(tmp_path, ["a:1"], api_key_env="PROMO_KEY")
    code, _, err = status([str(report)])
    assert code == 1 and "PROMO_KEY is not set" in err and "c.yaml" in err


def test_a_journal_with_odd_settings(tmp_path: Path) -> None:
    report = hand_made_run(tmp_path, ["a:1"], region="MARS")
    code, _, err = status([str(report)])
    assert code == 1 and "'region'" in err and "MARS" in err


def test_a_report_with_nothing_sent_needs_no_key(tmp_path: Path) -> None:
    report = hand_made_run(tmp_path, [])
    code, _, err = status([str(report)])
    assert code == 0 and "nothing to check" in err


# --- polling rules on virtual time, with a mocked API --------------------------------------------


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


STATUS_URL = re.compile(r"^https://api\.ap\.kaleyra\.io/v1/SID1/sms/status\?")


def hand_made_run(tmp_path: Path, ids: Sequence[str], **settings: object) -> Path:
    """A report of sent rows and its journal, as `campaign send` leaves them."""
    report = tmp_path / "report.csv"
    write_report(report, [ReportRow(i + 2, f"+659100{i:04d}", "sent", mid, "r1-b1", attempts=1,
                                    sent_at="2026-01-01T00:00:00+00:00")
                          for i, mid in enumerate(ids)])
    stored: dict[str, object] = {
        "campaign": str(tmp_path / "c.yaml"), "region": "SG", "sid": "SID1",
        "api_key_env": "KALEYRA_API_KEY", "requests_per_second": 100, "concurrency": 2,
        "max_attempts": 3, "timeout": 5} | settings
    Journal.open(journal_path(report), "fingerprint", settings=stored).close()
    return report


class _Response(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer``: supply a stub
    where aiohttp takes one (older releases refuse the argument)."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


def answer(**kwargs: Any) -> CallbackResult:
    return CallbackResult(response_class=_Response, **kwargs)


class FakeKaleyra:
    """Answers status requests: first ``failures`` answers, then every id Delivered."""

    def __init__(self, time: VirtualTime, failures: Sequence[CallbackResult] = (),
                 leave_out: frozenset[str] = frozenset()) -> None:
        self.time, self.failures, self.leave_out = time, list(failures), leave_out
        self.calls: list[tuple[float, list[str]]] = []

    def __call__(self, url: URL, **kwargs: Any) -> CallbackResult:
        ids = url.query["message_ids"].split(",")
        self.calls.append((self.time.now, ids))
        if self.failures:
            return self.failures.pop(0)
        data = [{"message_id": i, "status": "Delivered", "status_details": "DELIVERED"}
                for i in ids if i not in self.leave_out]
        return answer(status=200, payload={"data": data, "error": {}})


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    monkeypatch.setenv("KALEYRA_API_KEY", KEY)
    with aioresponses() as mocked:
        yield mocked


def run(report: Path, api: aioresponses, fake: FakeKaleyra) -> runner.delivery.StatusResult:
    api.get(STATUS_URL, callback=fake, repeat=True, response_class=_Response)
    return check_delivery(report, {"KALEYRA_API_KEY": KEY}, clock=fake.time.clock,
                          sleep=fake.time.sleep, now=lambda: "2026-01-02T00:00:00+00:00")


def test_requests_keep_to_the_campaigns_rate(tmp_path: Path, api: aioresponses) -> None:
    ids = [f"m:{i}" for i in range(450)]
    report = hand_made_run(tmp_path, ids, requests_per_second=2)
    fake = FakeKaleyra(VirtualTime())

    result = run(report, api, fake)

    assert [len(asked) for _, asked in fake.calls] == [100, 100, 100, 100, 50]
    assert [at for at, _ in fake.calls] == [0.0, 0.0, 1.0, 1.0, 2.0]  # 2 a second
    assert result.verdicts == {"delivered": 450}


def test_transient_answers_are_retried_honouring_retry_after(tmp_path: Path,
                                                             api: aioresponses) -> None:
    report = hand_made_run(tmp_path, ["m:1", "m:2"])
    time = VirtualTime()
    fake = FakeKaleyra(time, [answer(status=429, headers={"Retry-After": "7"}),
                              answer(status=503, body="busy")])

    result = run(report, api, fake)

    assert len(fake.calls) == 3 and result.retries == 2
    assert time.sleeps[0] >= 7  # Retry-After, not the short backoff
    assert [r["delivery_status"] for r in rows(report)] == ["Delivered", "Delivered"]
    assert [r["checked_at"] for r in rows(report)] == ["2026-01-02T00:00:00+00:00"] * 2


def test_ids_still_failing_after_every_attempt_stay_unchecked(tmp_path: Path,
                                                              api: aioresponses) -> None:
    report = hand_made_run(tmp_path, ["m:1"])
    before = report.read_bytes()
    fake = FakeKaleyra(VirtualTime(), [answer(status=502, body="bad gateway")] * 3)

    result = run(report, api, fake)

    assert len(fake.calls) == 3  # max_attempts from the journal
    assert (result.unchecked, result.verdicts["pending"]) == (1, 1)
    assert report.read_bytes() == before  # nothing learnt: the report is left as it was
    err = io.StringIO()
    assert runner.delivery.finish_status(result, io.StringIO(), err) == 3
    assert "could not be checked" in err.getvalue()


@pytest.mark.parametrize("retry_after", ["999999", "Thu, 01 Jan 2099 00:00:00 GMT", "86400"])
def test_a_retry_after_of_hours_stops_asking_instead_of_waiting(
        tmp_path: Path, api: aioresponses, retry_after: str) -> None:
    ids = [f"m:{i}" for i in range(250)]
    report = hand_made_run(tmp_path, ids, concurrency=1)
    time = VirtualTime()
    fake = FakeKaleyra(time, [answer(status=503, headers={"Retry-After": retry_after})])

    result = run(report, api, fake)

    assert len(fake.calls) == 1  # the other chunks are not asked: they would be told the same
    assert max(time.sleeps, default=0.0) < 1.0  # not a day, not 73 years
    assert result.unchecked == 250 and result.rerun_after is not None
    assert result.rerun_after >= 86400
    err = io.StringIO()
    assert runner.delivery.finish_status(result, io.StringIO(), err) == 3
    assert "Kaleyra asked to wait" in err.getvalue() and "again after" in err.getvalue()


def test_a_wait_past_the_deadline_leaves_the_chunk_unchecked(tmp_path: Path,
                                                             api: aioresponses) -> None:
    report = hand_made_run(tmp_path, ["m:1"], max_attempts=10)
    time = VirtualTime()
    fake = FakeKaleyra(time, [answer(status=429, headers={"Retry-After": "200"})] * 2)

    result = run(report, api, fake)

    assert len(fake.calls) == 2  # 200 s, then another 200 s would pass 300 s: stop asking
    assert sum(time.sleeps) <= 300
    assert result.unchecked == 1


def test_ids_missing_from_the_answer_are_pending(tmp_path: Path, api: aioresponses) -> None:
    report = hand_made_run(tmp_path, ["m:1", "m:2"])
    fake = FakeKaleyra(VirtualTime(), leave_out=frozenset({"m:2"}))

    result = run(report, api, fake)

    got = [(r["delivery_status"], r["delivery_detail"]) for r in rows(report)]
    assert got == [("Delivered", "DELIVERED"), ("", NOT_IN_ANSWER)]
    assert result.verdicts == {"delivered": 1, "pending": 1}
    assert runner.delivery.finish_status(result, io.StringIO(), io.StringIO()) == 3


@pytest.mark.parametrize(("word", "expected"), [
    ("Delivered", "delivered"), ("DELIVERED", "delivered"), ("UnDelivered", "undelivered"),
    ("Undelivered", "undelivered"), ("Failed", "undelivered"), ("NotSent", "undelivered"),
    ("Not Sent", "undelivered"), ("Sent", "pending"), ("", "pending"), ("Queued", "pending"),
])
def test_which_statuses_are_final(word: str, expected: str) -> None:
    assert verdict(word) == expected
