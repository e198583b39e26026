"""The dry-run report: written during the check pass, in source order, with the planned batches."""

from __future__ import annotations

import io
from pathlib import Path

from runner.cli import main
from runner.reportread import read_report


def write(tmp_path: Path, body: str, rows: list[str]) -> Path:
    (tmp_path / "people.csv").write_text("phone,name\n" + "\n".join(rows) + "\n",
                                         encoding="utf-8")
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "version: 1\nname: dry\naccount: {region: SG}\n"
        f"message: {{sender: ACME, type: DEFAULT, body: \"{body}\"}}\n"
        "recipients: {source: people.csv, default_country: SG, max_invalid_ratio: 0.5}\n"
        "sending: {batch_size: 2}\n",
        encoding="utf-8",
    )
    return campaign


def dry_run(campaign: Path, report: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["send", str(campaign), "--dry-run", "--report", str(report)], stdout=out,
                stderr=out)
    return code, out.getvalue()


def test_personalised_rows_keep_source_order_and_their_grouped_batches(tmp_path: Path) -> None:
    rows = ["+6581234501,Ann", "+6581234502,Bo", "12,Bad", "+6581234503,Ann",
            "+6581234504,Bo", "+6581234501,Ann", "+6581234505,Ann"]
    campaign = write(tmp_path, "Hi {name}", rows)
    report = tmp_path / "r.csv"
    code, output = dry_run(campaign, report)
    assert code == 0, output
    got = [(r["row"], r["status"], r["batch_id"]) for r in read_report(report)]
    assert [g[:2] for g in got] == [
        ("2", "dry_run"), ("3", "dry_run"), ("4", "invalid"), ("5", "dry_run"),
        ("6", "dry_run"), ("7", "duplicate"), ("8", "dry_run")]
    batch = {row: b for row, _, b in got}
    assert batch["2"] == batch["5"] != batch["3"] == batch["6"]  # Ann with Ann, Bo with Bo
    assert batch["8"] not in ("", batch["2"], batch["3"])  # a third batch: Ann's first was full
    assert batch["4"] == batch["7"] == ""


def test_an_invalid_campaign_leaves_no_report_behind(tmp_path: Path) -> None:
    campaign = write(tmp_path, "Hi {name}", ["12,Bad", "34,Worse", "+6581234501,Ann"])
    report = tmp_path / "r.csv"
    code, output = dry_run(campaign, report)
    assert code == 1, output
    assert "invalid" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "people.csv"]


def _copies_dry_run(folder: Path, copies: int) -> tuple[int, str, int]:
    """A dry run of one sendable row, then ``copies`` copies of it: exit code, output, and
    tracemalloc's peak."""
    import tracemalloc

    folder.mkdir()
    rows = ["+6581234501,Ann"] + [f"+6581234501,n{i}" for i in range(copies)]
    campaign = write(folder, "Hello", rows)
    campaign.write_text(campaign.read_text(encoding="utf-8").replace("batch_size: 2",
                                                                     "batch_size: 100"),
                        encoding="utf-8")
    report = folder / "r.csv"
    tracemalloc.start()
    try:
        code, output = dry_run(campaign, report)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0, output
    assert sum(1 for _ in read_report(report)) == copies + 1
    return code, output, peak


def test_rows_behind_a_partly_filled_batch_are_written_at_once(tmp_path: Path) -> None:
    """One sendable row, then 20,000 copies of it: memory holds a batch, not the file."""
    _copies_dry_run(tmp_path / "warm", 100)  # imports and caches are not the rows' doing
    _, _, peak = _copies_dry_run(tmp_path / "run", 20_000)
    # About 2 MB; 6.6 MB when the rows waited (~250 bytes a row: 15 MB at 50,000 copies).
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MB"
