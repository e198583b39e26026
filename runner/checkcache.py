"""The check pass's verdicts kept beside the report, so a rerun of the same bytes skips the pass.

A send reads and normalises every row before its first request (about 4 s a million rows); a
rerun that resumes a stopped run would do it all again to find what it found before. So a send
keeps what the pass found (``CheckedRows`` and the recipients' diagnostics and summary) in
``<report>.checked``, keyed by everything those verdicts depend on: the code that made them, the
campaign as parsed, and the bytes of the CSV, the suppression lists and the DLT templates. A
rerun hashes those files (a hundredth of the pass's time), and when the key matches loads the
verdicts instead of reading the CSV again. Anything else (no file, another key, a file that does
not read back whole) is a miss: the pass runs as before. The file holds numbers, like the
journal, so it is private to its owner (0600); it is removed when the run has nothing left to
send. A recipient-local window is not kept (its zone census is not), nor is a dry run. A
change of rate or window between runs keeps the verdicts (they do not depend on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from runner.checker import CampaignCheck, PlanSummary
from runner.errors import Diagnostic, InputError
from runner.fingerprint import file_digest
from runner.model import Campaign
from runner.verdicts import CheckedRows
from runner.zones import per_recipient

FORMAT = 1
_CODE = Path(__file__).resolve().parent


def cache_path(report: Path) -> Path:
    """Where a send that writes ``report`` keeps its check's verdicts: beside it."""
    return report.with_name(report.name + ".checked")


def _code_digest() -> str:
    """The runner's own source: new code may judge rows differently, so it never reuses."""
    digest = hashlib.sha256()
    for path in sorted(_CODE.rglob("*.py")):
        digest.update(path.relative_to(_CODE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _judged_by(campaign: Campaign) -> str:
    """The settings the pass's verdicts depend on. The rate, the caps' timing, the window and
    the retries may change between runs (as the journal allows) without a new pass, except
    where they change how rows are batched; the budget is checked again on every reuse."""
    s = campaign.sending
    return repr((campaign.account.region, campaign.message, campaign.recipients, campaign.dlt,
                 campaign.effective_batch_size, s.parts_per_second))


def cache_key(campaign: Campaign, source_sha256: str) -> str:
    """What the verdicts depend on, hashed (``source_sha256``: the CSV's bytes)."""
    r = campaign.recipients
    doc = {
        "format": FORMAT,
        "code": _code_digest(),
        "campaign": _judged_by(campaign),
        "source": source_sha256,
        "exclude": [file_digest(p) for p in r.exclude],
        "dlt": file_digest(campaign.dlt.templates) if campaign.dlt is not None else None,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def keep(report: Path, campaign: Campaign, check: CampaignCheck, rows: CheckedRows, *,
         found_from: int) -> None:
    """Keep ``rows`` and ``check``'s recipient diagnostics (those from index ``found_from``)
    for a rerun. Best effort: a folder that cannot take it only costs the rerun a pass."""
    if check.zones is not None or check.summary is None or rows.source_sha256 is None:
        return
    path = cache_path(report)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        header = {"key": cache_key(campaign, rows.source_sha256),
                  "summary": check.summary.to_json(),
                  "diagnostics": [asdict(d) for d in check.diagnostics[found_from:]],
                  **rows.describe()}
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left by a process of the same pid that died
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(header).encode() + b"\n")
            rows.dump(out)
        os.replace(tmp, path)
    except (OSError, ValueError, InputError):
        with contextlib.suppress(OSError):
            tmp.unlink()


def reuse(report: Path, campaign: Campaign
          ) -> tuple[CheckedRows, PlanSummary, tuple[Diagnostic, ...]] | None:
    """The verdicts a send of these very inputs kept, if any: (rows, summary, diagnostics).
    Inputs that cannot be read are a miss: the check pass says what is wrong with them."""
    if per_recipient(campaign.sending.window):
        return None  # the pass takes a zone census, which is not kept
    try:
        handle = open(cache_path(report), "rb")  # noqa: SIM115  # closed below
    except OSError:
        return None  # none kept (the first run): the CSV is not even hashed
    with handle:
        try:
            header = json.loads(handle.readline())
            if not isinstance(header, dict) or header.get("key") != cache_key(
                    campaign, file_digest(campaign.recipients.source)):
                return None
            summary = PlanSummary.from_json(header.get("summary"))
            found = tuple(Diagnostic(**d) for d in header.get("diagnostics", ()))
            if summary is None or len(found) != len(header.get("diagnostics", ())):
                return None
            rows = CheckedRows.load(handle, header, campaign, report.parent)
        except (OSError, ValueError, TypeError, EOFError, InputError):
            return None
    return rows, summary, found


def forget(report: Path) -> None:
    """The run has nothing left to send: its kept verdicts would only take room."""
    with contextlib.suppress(OSError):
        cache_path(report).unlink()
