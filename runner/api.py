"""The public API: one call per command, each returning a result with ``.exit_code``,
``.counts`` and ``.report``. The command line is a veneer over these; a scheduler (Airflow,
Prefect, a cron script) calls them directly::

    import runner

    plan = runner.send("campaigns/diwali.yaml", dry_run=True)
    if plan.exit_code == 0:
        outcome = runner.send("campaigns/diwali.yaml", sandbox=True)
        print(outcome.counts, outcome.report)

Every refusal of policy (report path rules, inputs or a real run's report never overwritten,
one destination per run, the send window, resuming) is decided here and in the modules these
call, never by the caller. Bad input raises a ``runner.RunnerError`` subclass: an invalid
campaign raises ``CampaignInvalid`` with every diagnostic, bad arguments ``UsageError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from runner import checkcache
from runner.checker import (
    CampaignCheck,
    check_campaign,
    check_file,
    check_recipients,
    with_earlier_pass,
)
from runner.errors import CampaignInvalid, UsageError
from runner.faults import Faults
from runner.model import Campaign
from runner.observer import RunObserver
from runner.reportpath import refuse_to_overwrite_a_run, resolve_report
from runner.results import RunOutcome
from runner.verdicts import CheckedRows, DryRunReport

if TYPE_CHECKING:  # sending needs aiohttp, a tenth of a second to import: not for a dry run
    from runner.delivery import StatusResult
    from runner.report_command import ReportView
    from runner.run import SendOptions

PathLike = str | os.PathLike[str]


def check(path: PathLike) -> CampaignCheck:
    """Check one campaign file (no network): file, schema, rules, recipients, plan."""
    return check_campaign(Path(path))


def send(path: PathLike, *, report: PathLike | None = None, state: str | None = None,
         dry_run: bool = False, sandbox: bool = False, resend_unknown: bool = False,
         retry_failed: bool = False, fresh: bool = False, wait: bool = False,
         observer: RunObserver | None = None, faults: Faults | None = None,
         respect_window: bool = False, env: Mapping[str, str] | None = None,
         recover_from_report: bool = False) -> RunOutcome:
    """Send the campaign at ``path`` (or resume its run), or with ``dry_run`` write the report of
    what would happen. Blocks until the run is done or stopped (SIGINT/SIGTERM stop it cleanly).

    ``sandbox`` sends to a Kaleyra-compatible server started in-process, with ``faults``
    injected; it ignores the send window unless ``respect_window``. ``env`` replaces
    ``os.environ`` for the key, SID, base URL and $CAMPAIGN_STATE.

    ``state`` (else $CAMPAIGN_STATE) is a ``postgresql://`` URL that keeps the run's state in
    PostgreSQL, keyed by the campaign's name, region and SID; without it the journal is the file
    beside the report. ``recover_from_report``: the report of a send run has lost its journal;
    rebuild the journal from the report and carry on (else that is refused, nothing sent).
    """
    watcher = observer if observer is not None else RunObserver()
    if faults is not None and faults != Faults() and not sandbox:
        # Rehearsing a bad day without the sandbox would send the real campaign.
        raise UsageError("the fault flags (--every-*, --rate-*, --latency, ...) need --sandbox")
    if respect_window and not sandbox:
        raise UsageError("--respect-window is for --sandbox (a real send always respects it)")
    from runner.state import state_url

    environ = os.environ if env is None else env
    state = state_url(state, environ)
    campaign_file = Path(path)
    if not campaign_file.is_file():
        raise UsageError(f"{os.fspath(path)}: no such campaign file")
    checked = check_file(campaign_file)
    campaign = _valid(checked)
    report_path = resolve_report(campaign, report, sandbox=sandbox)
    if dry_run:
        return _dry_run(checked, report_path, watcher)
    from runner.run import SendOptions

    options = SendOptions(report=report_path, resend_unknown=resend_unknown,
                          retry_failed=retry_failed, fresh=fresh, wait=wait,
                          ignore_window=sandbox and not respect_window, state=state,
                          recover_from_report=recover_from_report)
    rehearsal = (faults if faults is not None else Faults()) if sandbox else None
    return _send(checked, options, watcher, sandbox=rehearsal, env=environ)


def status(report: PathLike, *, state: str | None = None, recheck: bool = False,
           env: Mapping[str, str] | None = None) -> StatusResult:
    """Poll the delivery status of ``report``'s sent rows and add the delivery columns.

    The run's settings come from its journal beside the report, or from the PostgreSQL
    ``state`` (else $CAMPAIGN_STATE) it was sent with."""
    from runner.delivery import check_delivery
    from runner.state import state_url

    environ = os.environ if env is None else env
    return check_delivery(Path(report), environ, recheck=recheck,
                          state=state_url(state, environ))


def report(report: PathLike, *, html: PathLike | None = None, markdown: bool = False
           ) -> ReportView:
    """Summarise a delivery report in one pass: a self-contained page at ``html`` and/or the
    same figures as ``markdown`` (``.markdown`` of the result)."""
    from runner.report_command import render

    return render(Path(report), html=Path(html) if html is not None else None,
                  markdown=markdown)


def _valid(check: CampaignCheck) -> Campaign:
    if not check.ok or check.campaign is None:
        raise CampaignInvalid(f"{check.path}: invalid campaign, nothing sent", check.diagnostics)
    return check.campaign


def _dry_run(checked: CampaignCheck, report: Path, observer: RunObserver) -> RunOutcome:
    """The whole pipeline but the HTTP call, its report written during the check pass."""
    refuse_to_overwrite_a_run(report)
    campaign = _valid(checked)
    dry: DryRunReport | None = None
    try:
        dry = DryRunReport.for_campaign(campaign, report)
        checked = check_recipients(checked, observer=dry)
        _valid(checked)
        observer.checked(checked, reused=False)
        counts = dry.commit()
    finally:
        if dry is not None:
            dry.writer.discard()  # a no-op once committed
    return RunOutcome(counts, report, dry_run=True, check=checked)


def _send(checked: CampaignCheck, options: SendOptions, observer: RunObserver, *,
          sandbox: Faults | None, env: Mapping[str, str]) -> RunOutcome:
    """The real send (``sandbox``: to the in-process sandbox with those faults)."""
    from runner.run import send_campaign, stored_summary

    campaign = _valid(checked)
    rows: CheckedRows | None = None
    try:
        # Every send plans, and writes its report, from what this one pass reads: nothing is
        # sent that it did not see, whatever happens to the CSV meanwhile. A rerun of the very
        # same inputs reuses what the pass found then (runner.checkcache).
        kept = None if options.fresh else checkcache.reuse(options.report, campaign)
        if kept is not None:
            rows, summary, found = kept
            checked = with_earlier_pass(checked, summary, found)
            _valid(checked)
        else:
            rows = CheckedRows.for_campaign(campaign, options.report.parent)
            file_only = len(checked.diagnostics)
            checked = check_recipients(checked, observer=rows)
            _valid(checked)
            checkcache.keep(options.report, campaign, checked, rows, found_from=file_only)
        same = kept is not None or (not options.fresh and not options.state and stored_summary(
            options.report, campaign, source_sha256=rows.source_sha256) is not None)
        observer.checked(checked, reused=same)
        if sandbox is not None:
            outcome = _send_to_sandbox(checked, options, rows, observer, sandbox)
        else:
            from runner.endpoint import resolve_endpoint

            endpoint = resolve_endpoint(campaign, env)
            where = urlsplit(endpoint.sms_url)
            # Host and path name the account's endpoint (never the key); a port may change.
            options = replace(options, destination=f"{where.hostname}{where.path}")
            outcome = send_campaign(campaign, endpoint, options, to_send=_to_send(checked),
                                    summary=checked.summary, checked=rows, observer=observer)
    finally:
        if rows is not None:
            rows.close()
    if not outcome.stopped and not outcome.counts.get("pending"):
        checkcache.forget(options.report)  # nothing left to send: the verdicts take room only
    return replace(outcome, check=checked)


def _send_to_sandbox(checked: CampaignCheck, options: SendOptions, rows: CheckedRows | None,
                     observer: RunObserver, faults: Faults) -> RunOutcome:
    from runner.endpoint import Endpoint, Secret
    from runner.faults import SANDBOX_API_KEY, SANDBOX_SID
    from runner.run import send_campaign
    from runner.sandbox_thread import SandboxThread

    campaign = _valid(checked)
    with SandboxThread(region=campaign.account.region, api_key=SANDBOX_API_KEY,
                       sid=SANDBOX_SID, faults=faults) as sandbox:
        observer.sandbox_started(sandbox.base_url, window_ignored=options.ignore_window
                                 and campaign.sending.window is not None)
        endpoint = Endpoint(sandbox.base_url, SANDBOX_SID, Secret(SANDBOX_API_KEY))
        options = replace(options, destination="the built-in sandbox")
        return send_campaign(campaign, endpoint, options, to_send=_to_send(checked),
                             summary=checked.summary, checked=rows, observer=observer)


def _to_send(checked: CampaignCheck) -> int:
    assert checked.summary is not None  # a valid campaign's check has one
    return checked.summary.valid
