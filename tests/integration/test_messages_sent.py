"""What reaches the API is the text the dry run showed: escapes collapsed, smart_encoding applied,
rows whose message fails the DLT template left out; the sent report gives each row's parts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.reportread import read_report
from runner.sandbox_thread import SandboxThread

SID = "HXTEST00000001IN"
KEY = "k3y-messages-0123456789"


def write(folder: Path, body: str, rows: list[tuple[str, str]], *, extra: str = "") -> Path:
    (folder / "people.csv").write_text(
        "phone,order\n" + "".join(f"{p},{o}\n" for p, o in rows), encoding="utf-8")
    (folder / "templates.csv").write_text(
        "Template ID,Template Type,Header,Template Content,Status\n"
        "110716000000000001,Service Implicit,KLRHXA,"
        '"Your order {#var#} has shipped. - KLRHXA",Approved\n', encoding="utf-8")
    path = folder / "c.yaml"
    path.write_text(
        "version: 1\nname: sent\naccount: {region: IN}\nmessage:\n  sender: KLRHXA\n"
        f"  type: TXN\n  body: {json.dumps(body, ensure_ascii=False)}\n"
        "  template_id: '110716000000000001'\n  entity_id: '1101'\n"
        f"{extra}"
        "recipients: {source: people.csv, default_country: IN, max_invalid_ratio: 0.5}\n"
        "sending: {window: always, requests_per_second: 1000}\n", encoding="utf-8")
    return path


def send(path: Path, report: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, list[
        tuple[tuple[str, ...], str | None]]]:
    with SandboxThread(api_key=KEY, sid=SID, region="IN") as sandbox:
        monkeypatch.setenv("KALEYRA_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("KALEYRA_SID", SID)
        monkeypatch.setenv("KALEYRA_API_KEY", KEY)
        out, err = io.StringIO(), io.StringIO()
        code = main(["send", str(path), "--report", str(report)], stdout=out, stderr=err)
        accepted = [(a.numbers, a.body) for a in sandbox.record.accepted]
    return code, err.getvalue(), accepted


def test_a_body_without_placeholders_reaches_the_api_with_single_braces(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "Use code {{SAVE10}} today", [("+919876500001", "1")])
    path.write_text(path.read_text().replace("  template_id: '110716000000000001'\n", ""))
    code, err, accepted = send(path, tmp_path / "r.csv", monkeypatch)
    assert code == 0, err
    assert accepted == [(("+919876500001",), "Use code {SAVE10} today")]
    [row] = read_report(tmp_path / "r.csv")
    assert (row["status"], row["parts"]) == ("sent", "1")


def test_rows_that_break_the_template_are_invalid_and_the_rest_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [("+919876500001", "OD-1"), ("+919876500002", "X" * 31), ("+919876500003", "OD-3")]
    path = write(tmp_path, "Your order {order} has shipped. - KLRHXA", rows,
                 extra="dlt: {templates: templates.csv}\n")
    code, err, accepted = send(path, tmp_path / "r.csv", monkeypatch)
    assert code == 0, err
    assert sorted(accepted) == [
        (("+919876500001",), "Your order OD-1 has shipped. - KLRHXA"),
        (("+919876500003",), "Your order OD-3 has shipped. - KLRHXA")]
    report = list(read_report(tmp_path / "r.csv"))
    assert [(r["status"], r["parts"]) for r in report] == [("sent", "1"), ("invalid", ""),
                                                           ("sent", "1")]
    assert "stands for {#var#}" in report[1]["error"]


def test_smart_encoding_sends_the_replaced_text(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "Your order {order} has shipped \u2014 thanks\u2026",
                 [("+919876500001", "O\u2019Neil-1")], extra="  smart_encoding: true\n")
    path.write_text(path.read_text().replace("  template_id: '110716000000000001'\n", ""))
    code, err, accepted = send(path, tmp_path / "r.csv", monkeypatch)
    assert code == 0, err
    assert accepted == [(("+919876500001",), "Your order O'Neil-1 has shipped - thanks...")]
