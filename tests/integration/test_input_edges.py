"""Hardening, the input edges (issue 17): where a campaign's files may be, secrets that must not
be echoed, text that is not safe to send, and a CSV that changes while a run reads it.

Every case runs ``runner.cli.main`` in-process with the sandbox (or nothing) at the other end.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

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
    assert report_rows  # (imported for the send tests below)
