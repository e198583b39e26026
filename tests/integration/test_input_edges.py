"""Hardening, the input edges (issue 17): where a campaign's files may be, secrets that must not
be echoed, text that is not safe to send, and a CSV that changes while a run reads it.

Every case runs ``runner.cli.main`` in-process with the sandbox (or nothing) at the other end.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

import runner
from runner.cli import main
from runner.sandbox import SANDBOX_SID
from tests.integration.helpers import (
    TEST_API_KEY,
    CampaignFiles,
    assert_no_secret,
    make_campaign,
    report_rows,
    sandbox,
)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CampaignFiles:
    """A valid 20-row campaign in tmp_path/work (its root: no git above), with credentials."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KALEYRA_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("KALEYRA_SID", SANDBOX_SID)
    monkeypatch.setenv("KALEYRA_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    return make_campaign(tmp_path / "work", 20)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def edit(files: CampaignFiles, old: str, new: str) -> None:
    text = files.yaml.read_text(encoding="utf-8")
    assert old in text
    files.yaml.write_text(text.replace(old, new), encoding="utf-8")


SECRET_LINE = "KALEYRA_API_KEY=sk_live_7Qm2xWv9Lr4TbN8cJ1pZ"


# --------------------------------------------------------------------------- where files may be


@pytest.mark.parametrize("written", ["../outside.csv", "{outside}", "sub/../../outside.csv"])
@pytest.mark.parametrize("key", ["source", "exclude", "report"])
def test_a_path_that_leaves_the_campaign_root_is_an_error_at_its_line(
        files: CampaignFiles, key: str, written: str) -> None:
    outside = files.yaml.parent.parent / "outside.csv"
    outside.write_text(f"{SECRET_LINE}\nDB_PASSWORD=hunter2-very-secret\n", encoding="utf-8")
    value = written.format(outside=outside)
    if key == "source":
        edit(files, "  source: recipients.csv", f"  source: {value}")
    elif key == "exclude":
        edit(files, "  default_country: IN\n", f"  default_country: IN\n  exclude: [{value}]\n")
    else:
        edit(files, "report: report.csv", f"report: {value}")
    line = next(i for i, text in enumerate(files.yaml.read_text().splitlines(), 1)
                if value in text)
    for fmt in ("text", "github", "json"):
        code, out, err = cli("validate", "--format", fmt, str(files.yaml))
        assert code == 1, out + err
        assert "sk_live" not in out + err and "hunter2" not in out + err
        assert "outside the campaign's root" in out or "absolute path" in out
    code, out, _ = cli("validate", str(files.yaml))
    assert f"campaign.yaml:{line}:" in out
    code, out, err = cli("send", str(files.yaml), "--dry-run")
    assert code == 1 and "sk_live" not in out + err
    assert not files.report.exists()


def test_a_symlink_inside_the_root_that_points_outside_counts_as_outside(
        files: CampaignFiles) -> None:
    outside = files.yaml.parent.parent / "secrets.env"
    outside.write_text(SECRET_LINE + "\n", encoding="utf-8")
    (files.yaml.parent / "people.csv").symlink_to(outside)
    edit(files, "  source: recipients.csv", "  source: people.csv")
    code, out, err = cli("validate", "--format", "github", str(files.yaml))
    assert code == 1
    assert "symlink" in out and "outside the campaign's root" in out
    assert "sk_live" not in out + err


def test_the_git_work_tree_is_the_root_and_report_on_the_command_line_may_be_anywhere(
        tmp_path: Path, files: CampaignFiles) -> None:
    (tmp_path / ".git").mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "optouts.csv").write_text("phone\n+919876500003\n", encoding="utf-8")
    edit(files, "  default_country: IN\n",
         "  default_country: IN\n  exclude: [../shared/optouts.csv]\n")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.csv"
    try:
        code, _, err = cli("send", str(files.yaml), "--dry-run", "--report", str(elsewhere))
        assert code == 0, err
        assert elsewhere.is_file()
    finally:
        elsewhere.unlink(missing_ok=True)


def test_a_cell_is_quoted_cut_at_40_characters_never_a_whole_line(files: CampaignFiles) -> None:
    long_cell = "x" * 30 + "SECRETTAIL" * 5
    files.csv.write_text(f"phone,name\n{long_cell},a\n" + "".join(
        f"+9198765{i:05d},n\n" for i in range(20)), encoding="utf-8")
    code, out, _ = cli("validate", "--format", "github", str(files.yaml))
    assert code == 0, out
    [annotation] = [line for line in out.splitlines() if "recipients.csv,line=2" in line]
    assert long_cell[:40] in annotation
    assert long_cell[:41] not in annotation


def test_a_header_that_is_not_one_is_never_quoted(files: CampaignFiles) -> None:
    files.csv.write_text(SECRET_LINE + "\nOTHER=1\n", encoding="utf-8")
    code, out, err = cli("validate", "--format", "github", str(files.yaml))
    assert code == 1
    assert "has no column 'phone'" in out
    assert "sk_live" not in out + err


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("pasted", ["sk_live_7Qm2xWv9Lr4TbN8cJ1pZ", "Ab12Cd34Ef56Gh78",
                                    "ab-cd.ef/gh"])
def test_a_key_pasted_into_api_key_env_is_never_echoed_nor_stored(
        files: CampaignFiles, pasted: str) -> None:
    edit(files, "  region: IN\n", f"  region: IN\n  api_key_env: {pasted}\n")
    for fmt in ("text", "github", "json"):
        code, out, err = cli("validate", "--format", fmt, str(files.yaml))
        assert code == 1
        assert "api_key_env" in out
        assert pasted not in out + err
    with sandbox() as sb:
        os.environ["KALEYRA_BASE_URL"] = sb.base_url
        code, out, err = cli("send", str(files.yaml))
        assert sb.record.requests == []
    assert code == 1 and pasted not in out + err
    assert not files.journal.exists()  # nothing of it stored


def test_a_variable_name_in_api_key_env_is_accepted(
        files: CampaignFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(files, "  region: IN\n", "  region: IN\n  api_key_env: MY_KALEYRA_KEY_2\n")
    monkeypatch.setenv("MY_KALEYRA_KEY_2", TEST_API_KEY)
    code, out, err = cli("validate", str(files.yaml))
    assert code == 0, out + err


@pytest.mark.parametrize("url", [
    f"https://me:{TEST_API_KEY}@api.in.kaleyra.io:99999",
    f"https://api.in.kaleyra.io:abc/?key={TEST_API_KEY}",
    f"https://api.in.kaleyra.io/?key={TEST_API_KEY}",
    f"https://api.in.kaleyra.io/#{TEST_API_KEY}",
    f"http://{TEST_API_KEY}@10.0.0.8",
    f"http://[::1/?key={TEST_API_KEY}",
])
def test_base_url_errors_never_echo_userinfo_query_or_fragment(
        files: CampaignFiles, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("KALEYRA_BASE_URL", url)
    code, out, err = cli("send", str(files.yaml))
    assert code == 1, out + err
    assert "KALEYRA_BASE_URL" in err
    assert TEST_API_KEY not in out + err
    assert_no_secret(out, err, folder=files.yaml.parent)


def test_json_diagnostics_of_a_pasted_key_hold_no_part_of_it(files: CampaignFiles) -> None:
    edit(files, "  region: IN\n", "  region: IN\n  api_key_env: 123456789012\n")
    code, out, _ = cli("validate", "--format", "json", str(files.yaml))
    assert code == 1
    assert "123456789012" not in out
    assert "api_key_env" in json.dumps(json.loads(out))


# --------------------------------------------------------------------------- only what was checked


class ChangesTheCsv(runner.RunObserver):
    """Once the check pass is over and sending begins: rows appended, a row changed."""

    def __init__(self, files: CampaignFiles, late: int) -> None:
        self.files = files
        self.late = late

    def sending(self, rows: int) -> None:
        text = self.files.csv.read_text(encoding="utf-8")
        text = text.replace(f"{self.files.phones[0]},person0", f"{self.files.phones[0]},EVIL")
        late = "".join(f"+9198770{i:05d},late{i}\n" for i in range(self.late))
        self.files.csv.write_text(text + late, encoding="utf-8")


@pytest.mark.parametrize("body", ["Hi {name}, your order has shipped.",
                                  "Hello, your order has shipped."])
def test_a_csv_that_grows_or_changes_during_a_run_changes_neither_what_is_sent_nor_the_report(
        files: CampaignFiles, body: str) -> None:
    files = make_campaign(files.yaml.parent, 40, body=body)
    with sandbox() as sb:
        env = {"KALEYRA_API_KEY": TEST_API_KEY, "KALEYRA_SID": SANDBOX_SID,
               "KALEYRA_BASE_URL": sb.base_url}
        outcome = runner.send(files.yaml, env=env, observer=ChangesTheCsv(files, 10))
        accepted = list(sb.record.accepted)
    assert outcome.exit_code == 0
    sent = [n for a in accepted for n in a.numbers]
    assert sorted(sent) == sorted(files.phones)  # the 10 late rows were never checked: not sent
    assert all("EVIL" not in (a.body or "") for a in accepted)
    rows = report_rows(files)
    assert len(rows) == 40 and {r["status"] for r in rows} == {"sent"}
    # The run's own CSV changed: a rerun refuses instead of resuming against other rows.
    with sandbox() as sb:
        env["KALEYRA_BASE_URL"] = sb.base_url
        with pytest.raises(runner.RunnerError, match="changed since this run started"):
            runner.send(files.yaml, env=env)
        assert sb.record.accepted == []


@pytest.mark.parametrize("body", ["Hi {name}, your order has shipped.",
                                  "Hello, your order has shipped."])
def test_a_resume_sends_only_what_its_own_pass_read(files: CampaignFiles, body: str) -> None:
    files = make_campaign(files.yaml.parent, 60, body=body, sending={"batch_size": 10})
    with sandbox() as sb:
        env = {"KALEYRA_API_KEY": TEST_API_KEY, "KALEYRA_SID": SANDBOX_SID,
               "KALEYRA_BASE_URL": sb.base_url}
        first = runner.send(files.yaml, env=env, observer=StopsAfter(2))
        assert first.exit_code == 75, first.counts
        done_first = {n for a in sb.record.accepted for n in a.numbers}
        second = runner.send(files.yaml, env=env, observer=ChangesTheCsv(files, 10))
        sent = Counter(n for a in sb.record.accepted for n in a.numbers)
    assert second.exit_code == 0, second.counts
    assert set(sent) == set(files.phones) and max(sent.values()) == 1
    assert done_first < set(sent)
    assert len(report_rows(files)) == 60


class StopsAfter(runner.RunObserver):
    """Stops the run (as SIGINT would) once ``n`` batches are done."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = 0

    def batch_done(self, stats: object) -> None:
        self.done += 1
        if self.done == self.n:
            signal.raise_signal(signal.SIGINT)


# --------------------------------------------------------------------------- text safe to send


@pytest.mark.parametrize(("escape", "shown"), [("\\x07", "U+0007"), ("\\0", "U+0000"),
                                               ("\\r", "U+000D"), ("\\ud800", "U+D800"),
                                               ("\\x9b", "U+009B")])
def test_a_control_character_or_lone_surrogate_in_the_body_is_an_error_at_its_place(
        files: CampaignFiles, escape: str, shown: str) -> None:
    edit(files, '  body: "Hello, your', f'  body: "Hel{escape}lo, your')
    code, out, _ = cli("validate", str(files.yaml))
    assert code == 1, out
    assert shown in out and "campaign.yaml:8:" in out
    code, _, _ = cli("send", str(files.yaml), "--dry-run")
    assert code == 1 and not files.report.exists()


def test_newline_and_tab_in_a_body_are_fine(files: CampaignFiles) -> None:
    edit(files, '  body: "Hello, your', '  body: "Hello,\\n\\tyour')
    code, out, err = cli("validate", str(files.yaml))
    assert code == 0, out + err


def test_a_row_whose_message_holds_a_control_character_is_invalid(files: CampaignFiles) -> None:
    files = make_campaign(files.yaml.parent, 30, body="Hi {name}, your order has shipped.")
    text = files.csv.read_text(encoding="utf-8")
    text = text.replace("person3\n", "per\x1bson3\n").replace("person5\n", '"a\rb"\n')
    files.csv.write_text(text, encoding="utf-8")
    with sandbox() as sb:
        env = {"KALEYRA_API_KEY": TEST_API_KEY, "KALEYRA_SID": SANDBOX_SID,
               "KALEYRA_BASE_URL": sb.base_url}
        outcome = runner.send(files.yaml, env=env)
        sent = [n for a in sb.record.accepted for n in a.numbers]
        bodies = [a.body or "" for a in sb.record.accepted]
    assert outcome.exit_code == 0
    assert files.phones[3] not in sent and files.phones[5] not in sent and len(sent) == 28
    assert not any("\x1b" in b or "\r" in b for b in bodies)
    rows = {int(r["row"]): r for r in report_rows(files)}
    assert rows[5]["status"] == "invalid" and "U+001B" in rows[5]["error"]
    assert rows[7]["status"] == "invalid" and "U+000D" in rows[7]["error"]
    code, out, _ = cli("validate", str(files.yaml))
    assert code == 0 and "recipients.csv:5:" in out and "U+001B" in out


def test_max_parts_caps_the_body_and_each_row(files: CampaignFiles) -> None:
    edit(files, '  body: "Hello, your order has shipped."', f'  body: "{"x" * 1600}"')
    code, out, _ = cli("validate", str(files.yaml))
    assert code == 1 and "11 SMS parts" in out and "max_parts 10" in out
    edit(files, '  type: TXN\n', '  type: TXN\n  max_parts: 11\n')
    code, out, err = cli("validate", str(files.yaml))
    assert code == 0, out + err
    files = make_campaign(files.yaml.parent, 30, body="Hi {name}.")
    edit(files, '  type: TXN\n', '  type: TXN\n  max_parts: 2\n')
    text = files.csv.read_text(encoding="utf-8").replace("person4\n", "y" * 400 + "\n")
    files.csv.write_text(text, encoding="utf-8")
    code, _, err = cli("send", str(files.yaml), "--dry-run")
    assert code == 0, err
    rows = {int(r["row"]): r for r in report_rows(files)}
    assert rows[6]["status"] == "invalid" and "max_parts 2" in rows[6]["error"]
    assert sum(r["status"] == "dry_run" for r in rows.values()) == 29


# --------------------------------------------------------------------------- bounded memory


def _dry_run_peak(folder: Path, rows: int) -> int:
    """tracemalloc's peak over a personalised dry run: one rare text first, then ``rows`` rows
    of one common text (which fill their batches and leave)."""
    files = make_campaign(folder, 1, body="Hi {name}, your order has shipped.")
    with files.csv.open("w", encoding="utf-8") as f:
        f.write("phone,name\n+919000000000,Zed\n")
        f.writelines(f"+9198{i:08d},Ann\n" for i in range(rows))
    tracemalloc.start()
    try:
        outcome = runner.send(files.yaml, dry_run=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.exit_code == 0 and outcome.counts["dry_run"] == rows + 1
    return peak


def test_a_personalised_dry_run_with_one_rare_text_stays_flat(tmp_path: Path) -> None:
    _dry_run_peak(tmp_path / "warm", 1_000)  # imports and caches are not the rows' doing
    # Both past the 10,000 rows a batch's first row may wait (runner.plan.MAX_WAIT_ROWS).
    small = _dry_run_peak(tmp_path / "small", 12_000)
    large = _dry_run_peak(tmp_path / "large", 30_000)
    # Before: every row behind the rare one waited in memory (~570 bytes a row: 14 MB at 25k,
    # 57 MB at 100k; 10 MB more for these 18k rows). Now only the numbers seen grow (12 bytes a
    # slot in the dedup table, under 1 MB here).
    assert large - small < 4_000_000, (small, large)
