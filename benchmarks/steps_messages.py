"""Step messages: what DLT template matching, recipient time zones and the preview columns cost
the dry run a row, used and unused (issue 16, target 6).

The dry run is timed in this process: ``runner.api.send(..., dry_run=True)``, what
`campaign send --dry-run` runs, without the process's start (the same every time, and noise at
these sizes). Each feature is timed on and off over the same CSV, for a body without
placeholders (one text) and a personalised one (a text a row, batches planned by text).

"Unused adds at most 1 µs a row" needs a baseline without the feature's code, which no build
of the runner has: the feature is there whether a campaign uses it or not. So the unused cost
is measured as the work the feature's own modules do a row when the campaign does not use it:
every Python call into them is counted (``sys.setprofile``, which also sees each resumption of
a generator) over two sizes of the same run, and the slope is calls a row. Zero calls a row
means the unused feature costs nothing a row but the inline ``is None`` tests that skip it in
shared code; the same count over a run that uses the feature shows that the instrument sees it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import gendata
from common import REPO, Context, Section, Target, timed

PERSONAL_BODY = "Hi {name}, your order ships to {city} today. - KLRHXA"
TEMPLATES = {  # the DLT template registered for each body (same id: gendata.TEMPLATE_ID)
    "fixed": gendata.FIXED_BODY,
    "personalised": "Hi {#var#}, your order ships to {#var#} today. - KLRHXA",
}
RECIPIENT_WINDOW = {"start": "00:00", "end": "23:59", "timezone": "recipient"}
FEATURE_MODULES = {  # the feature's own code, for counting calls into it
    "dlt": ("dlt.py", "dltmatch.py"),
    "zones": ("zones.py", "zoneplan.py", "zonerun.py"),
    "preview": ("preview.py",),
}
COUNT_ROWS = (1_000, 3_000)  # two sizes: calls a row is the slope between them


@dataclass(frozen=True, slots=True)
class Variant:
    body: str  # "fixed" or "personalised"
    feature: str  # "absent", "dlt", "zones" or "no preview"

    @property
    def name(self) -> str:
        return f"msg-{self.body}-{self.feature.replace(' ', '-')}"


def _campaign(ctx: Context, variant: Variant, rows: int) -> Path:
    source = gendata.recipients_csv(ctx.data, rows)
    templates = None
    if variant.feature == "dlt":
        templates = f"dlt-{variant.body}.csv"
        (ctx.work / templates).write_text(
            "Template ID,Template Content,Template Type,Header\n"
            f'{gendata.TEMPLATE_ID},"{TEMPLATES[variant.body]}",Service Implicit,KLRHXA\n',
            encoding="utf-8")
    sending: dict[str, object] = {}
    if variant.feature == "zones":
        sending["window"] = RECIPIENT_WINDOW
    files = gendata.write_campaign(
        ctx.work, f"{variant.name}-{rows}", source, sending=sending, dlt_templates=templates,
        body=PERSONAL_BODY if variant.body == "personalised" else None)
    return files.yaml


@contextmanager
def _preview_columns(on: bool) -> Iterator[None]:
    """With ``on`` False, the dry run writes its report without the preview columns (parts,
    encoding, text): the nine columns a send's report starts with, and nothing formatted."""
    from runner.compose import Composer
    from runner.report import ReportWriter
    from runner.verdicts import DryRunReport

    if on:
        yield
        return
    shipped = DryRunReport.__dict__["for_campaign"]

    def without(cls: type[DryRunReport], campaign: Any, report: Path) -> DryRunReport:
        size = None if Composer.for_campaign(campaign).personalised else \
            campaign.effective_batch_size
        return cls(ReportWriter(report, ()), batch_size=size)

    DryRunReport.for_campaign = classmethod(without)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        DryRunReport.for_campaign = shipped  # type: ignore[method-assign]


def _dry_run(path: Path, report: Path, *, preview: bool = True) -> None:
    from runner.api import send

    report.unlink(missing_ok=True)  # a dry run over an earlier report reads it first
    with _preview_columns(preview):
        outcome = send(path, report=report, dry_run=True)
    if outcome.check is None or not outcome.check.ok:
        raise SystemExit(f"benchmark check failed: {path} does not check")


def _calls_into(files: tuple[str, ...], run: Callable[[], None]) -> int:
    """Python calls (and generator resumptions) into runner modules named ``files``."""
    wanted = {str(REPO / "runner" / name) for name in files}
    calls = 0

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call" and frame.f_code.co_filename in wanted:
            calls += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def calls_a_row(ctx: Context, variant: Variant, feature: str) -> float:
    """Calls a row into ``feature``'s modules over dry runs of ``variant`` (the slope between
    two sizes: calls made once a run, setting up, cancel out)."""
    counts = []
    for rows in COUNT_ROWS:
        path = _campaign(ctx, variant, rows)
        report = ctx.work / f"{variant.name}-{rows}.dry-run.csv"
        _dry_run(path, report)  # warm: the template file's cache, imports
        counts.append(_calls_into(FEATURE_MODULES[feature], partial(_dry_run, path, report)))
    return (counts[1] - counts[0]) / (COUNT_ROWS[1] - COUNT_ROWS[0])


VARIANTS = tuple(Variant(body, feature) for body in ("fixed", "personalised")
                 for feature in ("absent", "dlt", "zones", "no preview"))


def time_variants(ctx: Context, rows: int, repeats: int) -> tuple[dict[Variant, float], float]:
    """Best seconds of each variant's dry run, the variants interleaved in each round, and the
    wider spread (worst - best seconds) of the two runs without any feature."""
    paths = {v: _campaign(ctx, v, rows) for v in VARIANTS}
    best: dict[Variant, float] = {}
    spread: dict[Variant, list[float]] = {v: [] for v in VARIANTS}
    for v in VARIANTS:  # warm each path once (imports, the DLT matcher, zone metadata)
        _dry_run(_campaign(ctx, v, 2_000), ctx.work / f"{v.name}-warm.dry-run.csv")
    for _ in range(repeats):
        for v in VARIANTS:
            report = ctx.work / f"{v.name}-{rows}.dry-run.csv"
            seconds, _ = timed(partial(_dry_run, paths[v], report,
                                       preview=v.feature != "no preview"))
            spread[v].append(seconds)
            best[v] = min(best.get(v, seconds), seconds)
    return best, max(max(s) - min(s) for v, s in spread.items() if v.feature == "absent")


BODIES = ("fixed", "personalised")


def step_messages(ctx: Context) -> None:
    rows = ctx.rows_for(100_000, quick=20_000)
    repeats = 3 if not ctx.quick else 2
    best, spread = time_variants(ctx, rows, repeats)
    us = {(v.body, v.feature): best[v] / rows * 1e6 for v in best}
    # µs a row the feature adds when used; the preview: what its columns cost (on - off)
    added = {(body, feature): us[body, feature] - us[body, "absent"]
             for body in BODIES for feature in ("dlt", "zones")}
    added.update({(body, "preview"): us[body, "absent"] - us[body, "no preview"]
                  for body in BODIES})
    calls = {(body, feature, used): calls_a_row(ctx, Variant(body, feature if used else "absent"),
                                                feature)
             for body in BODIES for feature in ("dlt", "zones") for used in (False, True)}
    ctx.add(_section(rows, repeats, us, added, calls, spread / rows * 1e6))
    for feature, label in (("dlt", "DLT template matching"), ("zones", "recipient time zones")):
        unused = max(calls[body, feature, False] for body in BODIES)
        used = ", ".join(f"{body} {added[body, feature]:+.2f}" for body in BODIES)
        ctx.targets.append(Target(
            6, f"{label} unused adds <= 1 µs a row to the dry run; measured when used",
            f"unused: {unused:.3f} calls a row into its code; used: {used} µs a row",
            unused == 0))
    preview = ", ".join(f"{body} {added[body, 'preview']:+.2f}" for body in BODIES)
    ctx.targets.append(Target(6, "preview columns (always written by the dry run): measured",
                              f"{preview} µs a row", None, measured_only=True))


def _section(rows: int, repeats: int, us: dict[tuple[str, str], float],
             added: dict[tuple[str, str], float], calls: dict[tuple[str, str, bool], float],
             noise: float) -> Section:
    section = Section(
        f"Per-row cost of DLT matching, recipient time zones and preview columns ({rows:,} rows, "
        "dry run in process)",
        ["body", "dry run µs a row", "+ DLT templates", "+ `timezone: recipient`",
         "preview columns cost", "calls a row into DLT code: unused / used",
         "into zone code: unused / used"])
    for body in BODIES:
        section.rows.append([
            body, f"{us[body, 'absent']:.2f}", f"{added[body, 'dlt']:+.2f}",
            f"{added[body, 'zones']:+.2f}", f"{added[body, 'preview']:+.2f}",
            f"{calls[body, 'dlt', False]:.3f} / {calls[body, 'dlt', True]:.2f}",
            f"{calls[body, 'zones', False]:.3f} / {calls[body, 'zones', True]:.2f}"])
    section.notes.extend([
        "dry run: runner.api.send(..., dry_run=True) in this process, each variant over the "
        "same CSV (benchmarks/gendata: mostly Indian mobiles, some GB, US, SG, DE, AE), best "
        f"of {repeats} interleaved rounds after a warm-up; the earlier report removed first",
        "+ columns: µs a row added when the campaign uses the feature (a `dlt: templates:` "
        "file holding the body's template; `window: {start: 00:00, end: 23:59, timezone: "
        "recipient}`); preview columns: the shipped dry run against the same dry run writing "
        "its report without the parts, encoding and text columns (DryRunReport.for_campaign "
        "patched): the preview is always on in the runner, so its unused cost does not apply; "
        "time zones: most of their cost here is the CSV's few foreign numbers (GB, US, ...: "
        "several zones each, prefixes rarely repeated); benchmarks/zones.py has it by country",
        "unused cost: Python calls a row into the feature's modules (runner/dlt.py, "
        "dltmatch.py; zones.py, zoneplan.py, zonerun.py) when the campaign does not use it, "
        f"the slope between dry runs of {COUNT_ROWS[0]:,} and {COUNT_ROWS[1]:,} rows: 0 means "
        "no per-row work but an inline `is None` test in shared code (the composer's matcher, "
        "personalised bodies only; the zone census is not even built); used: the same count, "
        "to show the instrument sees the feature",
        f"noise: the repeats of the dry run without any feature spread by up to {noise:.2f} µs "
        "a row (worst - best); the figures are best-of, steadier than that, but a timed "
        "difference much below it is not resolved"])
    return section
