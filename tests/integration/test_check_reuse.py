"""A rerun of the very same inputs reuses the check pass's verdicts (runner.checkcache): it
sends what the first pass found, says the same warnings, and checks again whenever anything the
verdicts depend on changed or the kept file does not read back whole."""

from __future__ import annotations

import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import runner
import runner.api
from runner.checkcache import cache_path
from runner.checker import check_recipients
from runner.errors import CampaignInvalid, JournalError
from runner.reportread import read_report
from tests.integration.helpers import CampaignFiles, make_campaign, sandbox, send_env, statuses

CAPPED = {"batch_size": 10, "max_messages_per_hour": 10}


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The campaigns the check pass read, one entry a pass."""
    seen: list[str] = []

    def counted(check: runner.checker.CampaignCheck, **kwargs: object
                ) -> runner.checker.CampaignCheck:
        seen.append(check.path)
        return check_recipients(check, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner.api, "check_recipients", counted)
    yield seen


def capped_campaign(folder: Path) -> CampaignFiles:
    """30 numbers, an invalid row and a duplicate; an hourly cap of 10 stops the first run."""
    files = make_campaign(folder, 30, sending=CAPPED, extra_lines=["12ab,bad", "+919876500001,x"])
    return files


def test_a_stopped_run_keeps_its_verdicts_and_the_rerun_uses_them(
        tmp_path: Path, passes: list[str]) -> None:
    files = capped_campaign(tmp_path)
    first = runner.send(files.yaml, sandbox=True)
    assert first.stopped and first.counts == Counter(sent=10, pending=20, invalid=1,
                                                     duplicate=1)
    kept = cache_path(first.report)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # it holds numbers, like the journal
    assert len(passes) == 1

    again = runner.send(files.yaml, sandbox=True)
    assert len(passes) == 1  # no second pass over the CSV
    assert again.counts == first.counts
    assert again.check is not None and first.check is not None
    assert again.check.diagnostics == first.check.diagnostics  # the same warnings, said again
    assert again.check.summary == first.check.summary
    assert statuses(read_report(again.report)) == first.counts  # the report still whole

    # Lifting the cap and raising the rate change how fast, not what: the verdicts still
    # hold (the journal's fingerprint leaves pacing out too), and the run finishes.
    text = files.yaml.read_text().replace("  max_messages_per_hour: 10\n", "")
    files.yaml.write_text(text.replace("requests_per_second: 50", "requests_per_second: 80"))
    done = runner.send(files.yaml, sandbox=True)
    assert len(passes) == 1
    assert done.exit_code == 0 and done.counts == Counter(sent=30, invalid=1, duplicate=1)
    assert not kept.exists()  # nothing left to send: the verdicts are not kept


def test_a_cap_that_changes_the_batches_checks_again(tmp_path: Path, passes: list[str]) -> None:
    files = make_campaign(tmp_path, 30, sending={"batch_size": 10, "max_messages_per_hour": 20})
    assert runner.send(files.yaml, sandbox=True).counts == Counter(sent=20, pending=10)
    # A cap of 5 an hour makes batches of 5: a new pass plans them, not the kept verdicts
    # (and the journal, which holds batches of 10, refuses the change).
    files.yaml.write_text(files.yaml.read_text().replace("max_messages_per_hour: 20",
                                                         "max_messages_per_hour: 5"))
    with pytest.raises(JournalError, match="changed since this run started"):
        runner.send(files.yaml, sandbox=True)
    assert len(passes) == 2


def test_a_lowered_budget_is_judged_on_the_reuse(tmp_path: Path, passes: list[str]) -> None:
    files = capped_campaign(tmp_path)
    runner.send(files.yaml, sandbox=True)
    files.yaml.write_text(files.yaml.read_text() + "budget:\n  max_parts: 20\n")
    with pytest.raises(CampaignInvalid) as refused:
        runner.send(files.yaml, sandbox=True)
    assert len(passes) == 1  # the kept verdicts, but the budget judged on the file as it is now
    assert any(d.field == "budget.max_parts" and d.line is not None
               for d in refused.value.diagnostics)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_kept_file_only_costs_a_pass(tmp_path: Path, passes: list[str],
                                               damage: str) -> None:
    files = capped_campaign(tmp_path)
    first = runner.send(files.yaml, sandbox=True)
    kept = cache_path(first.report)
    data = kept.read_bytes()
    kept.write_bytes({"truncated": data[: len(data) - 7], "garbage": b"\x00\xff" * 50,
                      "empty": b""}[damage])
    again = runner.send(files.yaml, sandbox=True)
    assert len(passes) == 2
    assert again.counts == first.counts
    assert again.check is not None and first.check is not None
    assert again.check.diagnostics == first.check.diagnostics


def test_a_changed_suppression_list_checks_again(tmp_path: Path, passes: list[str]) -> None:
    files = make_campaign(tmp_path, 30, sending=CAPPED)
    exclude = tmp_path / "optout.csv"
    exclude.write_text("phone\n+919876500029\n", encoding="utf-8")
    files.yaml.write_text(files.yaml.read_text().replace(
        "  default_country: IN\n", "  default_country: IN\n  exclude: [optout.csv]\n"))
    first = runner.send(files.yaml, sandbox=True)
    assert first.counts == Counter(sent=10, pending=19, suppressed=1)
    assert runner.send(files.yaml, sandbox=True).counts == first.counts
    assert len(passes) == 1
    exclude.write_text("phone\n+919876500029\n+919876500028\n", encoding="utf-8")
    with pytest.raises(JournalError, match="changed since this run started"):
        runner.send(files.yaml, sandbox=True)  # the rows were read again, and differ
    assert len(passes) == 2


def test_fresh_checks_again(tmp_path: Path, passes: list[str]) -> None:
    files = capped_campaign(tmp_path)
    runner.send(files.yaml, sandbox=True)
    runner.send(files.yaml, sandbox=True, fresh=True)
    assert len(passes) == 2


def test_a_refused_key_then_the_rerun_sends_the_planned_texts_once(
        tmp_path: Path, passes: list[str]) -> None:
    """Personalised texts: the batches the first pass planned are what the rerun sends."""
    files = make_campaign(tmp_path, 30, body="Hi {name}, your order has shipped.",
                          sending={"batch_size": 10}, extra_lines=["+919876500003,dup"])
    with sandbox() as sb:
        refused = runner.send(files.yaml, report=files.report,
                              env=send_env(sb.base_url, api_key="kl-wrong-key-0000"))
        assert refused.exit_code == 78 and refused.counts == Counter(pending=30, duplicate=1)
        assert cache_path(files.report).exists()
        done = runner.send(files.yaml, report=files.report, env=send_env(sb.base_url))
        texts = [(n, a.body) for a in sb.record.accepted for n in a.numbers]
    assert len(passes) == 1
    assert done.exit_code == 0 and done.counts == Counter(sent=30, duplicate=1)
    assert sorted(texts) == sorted((phone, f"Hi person{i}, your order has shipped.")
                                   for i, phone in enumerate(files.phones))
    assert not cache_path(files.report).exists()
