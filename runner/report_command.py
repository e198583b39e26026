"""`campaign report REPORT --html PATH --markdown`: a delivery report shown to people.

``render()`` is the API behind ``runner.report()``: a scheduler can make the page without a
subprocess; the CLI only prints its result.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import InputError, display_path

if TYPE_CHECKING:  # the parser imports this module for every command: keep it light
    from runner.report_summary import ReportSummary

EXIT_OK, EXIT_INVALID = 0, 1


@dataclass(frozen=True, slots=True)
class ReportView:
    report: Path  # the CSV read
    summary: ReportSummary
    html: Path | None  # the page written, if asked for
    markdown: str | None  # the markdown, if asked for
    exit_code: int = EXIT_OK

    @property
    def counts(self) -> Counter[str]:
        """Report rows by status."""
        return Counter({status: n for status, n in self.summary.statuses if n})


def render(report: Path | str, *, html: Path | str | None = None, markdown: bool = False,
           now: datetime | None = None) -> ReportView:
    """Summarise ``report`` in one pass; write the page to ``html`` and/or make the markdown.

    Raises InputError (naming the file, and the line where one is to blame) for bad input.
    """
    report = Path(report)
    page = Path(html) if html is not None else None
    if page is not None:
        _refuse_to_overwrite(page, report)
    from runner.report_summary import summarise

    summary = summarise(report)
    if page is not None:
        from runner.report_html import render_html

        _write_atomically(page, render_html(summary, now=now))
    text = None
    if markdown:
        from runner.report_markdown import render_markdown

        text = render_markdown(summary)
    return ReportView(report, summary, page, text)


def _refuse_to_overwrite(page: Path, report: Path) -> None:
    target = page.resolve()
    for precious in (report, report.with_name(report.name + ".journal")):
        if precious.resolve() == target:
            raise InputError(f"--html {display_path(page)}: that is {display_path(precious)}, "
                             "which the page is made from; give the page its own path, e.g. "
                             f"{display_path(report.with_suffix('.html'))}")
    if page.is_dir():
        raise InputError(f"--html {display_path(page)}: is a folder; give the page a file name")
    if not page.parent.is_dir():
        raise InputError(f"--html {display_path(page)}: the folder "
                         f"{display_path(page.parent)} does not exist")


def _write_atomically(page: Path, text: str) -> None:
    """A reader (a browser reloading) sees the old page or the new one, never half of one."""
    try:
        fd, tmp = tempfile.mkstemp(dir=page.parent, prefix=f".{page.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"--html {display_path(page)}: cannot write there: "
                         f"{exc.strerror or exc}") from None
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for secrets; the page holds counts only
        os.replace(tmp, page)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(f"--html {display_path(page)}: cannot write the page: "
                         f"{exc.strerror or exc}") from None


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT", help="a delivery report (CSV) written by "
                        "`campaign send`, with `campaign status` columns or not")
    parser.add_argument("--html", metavar="PATH",
                        help="write one self-contained page (charts, no network) to PATH")
    parser.add_argument("--markdown", action="store_true",
                        help="print the summary as markdown tables (for CI step summaries)")
