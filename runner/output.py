"""Rendering check results for people (text), tools (JSON) and GitHub (workflow annotations)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from runner.checker import CampaignCheck, PlanSummary
from runner.errors import Diagnostic


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def summary_line(summary: PlanSummary) -> str:
    parts = (
        f"{summary.min_parts}-{summary.max_parts} parts"
        if summary.min_parts != summary.max_parts
        else _plural(summary.max_parts, "part")
    )
    return (
        f"{_plural(summary.recipients, 'recipient')}: {summary.valid:,} valid, "
        f"{summary.invalid:,} invalid, {_plural(summary.duplicates, 'duplicate')}, "
        f"{summary.suppressed:,} suppressed; {_plural(summary.batches, 'batch', 'batches')}, "
        f"{_plural(summary.requests, 'request')}; {parts} per message ({summary.encoding})"
    )


def render_text(checks: Sequence[CampaignCheck]) -> str:
    lines: list[str] = []
    for check in checks:
        lines += [d.format_text() for d in check.diagnostics]
        if check.summary is not None:
            lines.append(f"{check.path}: {summary_line(check.summary)}")
    lines.append(totals_line(checks))
    return "\n".join(lines)


def totals_line(checks: Sequence[CampaignCheck]) -> str:
    errors = sum(1 for c in checks for d in c.diagnostics if d.severity == "error")
    warnings = sum(1 for c in checks for d in c.diagnostics if d.severity == "warning")
    return (
        f"{_plural(len(checks), 'campaign')} checked: {_plural(errors, 'error')}, "
        f"{_plural(warnings, 'warning')}"
    )


JSON_VERSION = 1  # of `validate --format json`; each diagnostic has a stable "code" (docs/)


def render_json(checks: Sequence[CampaignCheck]) -> str:
    files = []
    for check in checks:
        files.append({
            "file": check.path,
            "ok": check.ok,
            "errors": [d.to_json() for d in check.diagnostics if d.severity == "error"],
            "warnings": [d.to_json() for d in check.diagnostics if d.severity == "warning"],
            "summary": check.summary.to_json() if check.summary is not None else None,
        })
    document = {
        "version": JSON_VERSION,
        "ok": all(c.ok for c in checks),
        "campaigns": len(checks),
        "errors": sum(d.severity == "error" for c in checks for d in c.diagnostics),
        "warnings": sum(d.severity == "warning" for c in checks for d in c.diagnostics),
        "files": files,
    }
    return json.dumps(document, indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(d: Diagnostic) -> str:
    props = [f"file={_escape_property(d.path)}"]
    if d.line is not None:
        props.append(f"line={d.line}")
    if d.col is not None:
        props.append(f"col={d.col}")
    return f"::{d.severity} {','.join(props)}::{_escape_data(d.message)}"


def render_github(checks: Sequence[CampaignCheck]) -> str:
    lines = [github_annotation(d) for c in checks for d in c.diagnostics]
    for check in checks:
        if check.summary is not None:
            lines.append(f"{check.path}: {summary_line(check.summary)}")
    lines.append(totals_line(checks))
    return "\n".join(lines)
