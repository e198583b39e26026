"""The command line: parse arguments, call the core, turn results into output and exit codes.

Exit codes: 0 all good; 1 invalid campaign or input, nothing sent; 2 usage error; 3 the run
finished but some recipients failed or are unknown; 75 stopped early (rerun to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO
from urllib.parse import urlsplit

from runner import __version__
from runner.check import CampaignCheck, PlanObserver, PlanSummary, check_campaign
from runner.errors import InputError, JournalError, RunnerError, UsageError, display_path
from runner.journal import journal_path
from runner.limiter import min_duration
from runner.model import Campaign, Window
from runner.output import render_github, render_json, render_text
from runner.plan import is_personalised
from runner.report import ReportWriter, format_summary
from runner.verdicts import CheckedRows, DryRunReport
from runner.window import describe

if TYPE_CHECKING:  # sending needs aiohttp, a tenth of a second to import: not for validate
    from runner.kaleyra import Endpoint
    from runner.send import RunOutcome, SendOptions

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_STOPPED = 0, 1, 2, 3, 75


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from runner import completion, schema_cli
    from runner.sandbox_cli import add_sandbox_arguments

    parser = _Parser(prog="campaign", description="Declarative batch SMS campaigns for Kaleyra.")
    parser.add_argument("--version", action="version", version=f"campaign {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = commands.add_parser("validate", help="check campaign files (no network)")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="campaign files or folders")
    validate.add_argument("--format", choices=("text", "json", "github"), default="text")

    send = commands.add_parser("send", help="send a campaign (or --dry-run)")
    send.add_argument("file", metavar="FILE", help="the campaign file")
    send.add_argument("--report", metavar="PATH", help="report path (default: the file's "
                      "`report:` key, else reports/<name>.csv)")
    send.add_argument("--dry-run", action="store_true", help="everything but the HTTP call")
    send.add_argument("--sandbox", action="store_true",
                      help="start the local sandbox in-process and send to it (no account)")
    send.add_argument("--resend-unknown", action="store_true",
                      help="resend rows whose earlier request may or may not have been delivered")
    send.add_argument("--retry-failed", action="store_true", help="retry rows that failed before")
    send.add_argument("--fresh", action="store_true",
                      help="start over; the old journal is kept aside")
    send.add_argument("--wait", action="store_true",
                      help="wait for the send window instead of exiting 75")
    add_sandbox_arguments(send, faults_only=True)  # faults for --sandbox, to rehearse a bad day

    add_status_arguments(commands.add_parser("status", help="poll delivery status into a report"))

    sandbox = commands.add_parser("sandbox", help="run the local Kaleyra-compatible server")
    add_sandbox_arguments(sandbox)
    schema_cli.add_parser(commands)  # `campaign schema`
    completion.add_parser(commands)  # `campaign completion bash|zsh`
    return parser


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT",
                        help="a delivery report written by `campaign send` (its journal beside it)")
    parser.add_argument("--recheck", action="store_true",
                        help="ask again for rows whose delivery status is already final")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    for stream in (out, err):
        # Messages quote user input; a lone surrogate from a YAML escape must print, not crash.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "run"):  # commands in their own module: schema, completion
            return int(args.run(args, out))
        if args.command == "validate":
            return cmd_validate(args, out, err)
        if args.command == "send":
            return cmd_send(args, out, err)
        if args.command == "status":
            from runner.status import cmd_status

            return cmd_status(args, out, err)
        if args.command == "sandbox":
            return cmd_sandbox(args)
        raise UsageError(f"unknown command {args.command!r}")
    except UsageError as exc:
        print(f"{exc}\n(see `campaign --help`)", file=err)
        return EXIT_USAGE
    except InputError as exc:
        for d in exc.diagnostics:
            print(d.format_text(), file=err)
        if not exc.diagnostics:  # the diagnostics already say it, with the file
            print(f"error: {exc}", file=err)
        return EXIT_INVALID
    except JournalError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INVALID
    except RunnerError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_STOPPED
    except BrokenPipeError:  # `campaign validate ... | head`: the reader left, nothing to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_USAGE


# --- validate ----------------------------------------------------------------------------------


def campaign_files(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")
                           and p.is_file())
            if not below:
                raise UsageError(f"{raw}: no campaign files (*.yaml, *.yml) in this folder")
            found += below
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{raw}: no such file or folder")
    return found


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    checks = [check_campaign(path) for path in campaign_files(args.paths)]
    render = {"text": render_text, "json": render_json, "github": render_github}[args.format]
    print(render(checks), file=out)
    return EXIT_OK if all(c.ok for c in checks) else EXIT_INVALID


# --- send --------------------------------------------------------------------------------------


def report_path(args: argparse.Namespace, campaign: Campaign) -> Path:
    """Where the report (and the journal beside it) go, checked before anything is sent."""
    if args.report:
        path = Path(args.report)
        if not path.parent.is_dir():
            raise InputError(f"--report {args.report}: the folder {display_path(path.parent)} "
                             "does not exist")
    else:
        path = campaign.default_report_path(Path.cwd())
        if args.sandbox:  # a rehearsal never shares a report (and journal) with the real run
            path = path.with_name(f"{path.stem}.sandbox{path.suffix}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the report folder {display_path(path.parent)}: "
                             f"{exc.strerror}") from None
    refuse_inputs_as_report(path, campaign)
    check_writable(path)
    return path


def refuse_inputs_as_report(report: Path, campaign: Campaign) -> None:
    """The report (and its journal) must not replace a file the campaign reads."""
    inputs = (campaign.path, campaign.recipients.source, *campaign.recipients.exclude)
    target = report.resolve()
    for path in inputs:
        if path.resolve() == target or Path(f"{path}.journal").resolve() == target:
            raise InputError(f"{display_path(report)}: the report would overwrite "
                             f"{display_path(path)}, which the campaign reads; give the report "
                             "its own path")


def check_writable(report: Path) -> None:
    """Refuse a report path that is a folder, or in a folder we cannot write, up front: found
    only after sending, the run would end with exit 1 and its journal somewhere unexpected."""
    if report.is_dir():
        raise InputError(f"{display_path(report)}: is a folder; give the report a file name, "
                         f"e.g. {display_path(report / 'report.csv')}")
    try:
        fd, probe = tempfile.mkstemp(dir=report.parent, prefix=f".{report.name}.",
                                     suffix=".probe")
    except OSError as exc:
        raise InputError(f"{display_path(report)}: cannot write the report in "
                         f"{display_path(report.parent)}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def refuse_to_overwrite_a_run(report: Path) -> None:
    journal = journal_path(report)
    if journal.exists():
        # The report of a real run is what `campaign status` and people read: keep it.
        raise InputError(f"{display_path(report)} is the report of a send run (its journal "
                         f"{display_path(journal)} is beside it): a dry run would overwrite it; "
                         "pass --report to write the dry run elsewhere")


def cmd_send(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from runner.faults import Faults
    from runner.sandbox_cli import faults_from_args

    if faults_from_args(args) != Faults() and not args.sandbox:
        # Rehearsing a bad day without --sandbox would send the real campaign.
        raise UsageError("the fault flags (--every-*, --rate-*, --latency, ...) need --sandbox")
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such campaign file")
    dry_runs: list[DryRunReport] = []
    checked: list[CheckedRows] = []

    def observe(campaign: Campaign) -> PlanObserver | None:
        if not args.dry_run:
            # The send plans, and writes its report, from what the check pass found.
            checked.append(CheckedRows(report_path(args, campaign).parent))
            return checked[0]
        # The dry run writes its report while the campaign is checked: one pass over the CSV.
        report = report_path(args, campaign)
        refuse_to_overwrite_a_run(report)
        size = None if is_personalised(campaign) else campaign.effective_batch_size
        dry_runs.append(DryRunReport(ReportWriter(report), batch_size=size))
        return dry_runs[-1]

    def known_summary(campaign: Campaign) -> PlanSummary | None:
        if args.dry_run or args.fresh:
            return None
        from runner.send import stored_summary

        summary = stored_summary(report_path(args, campaign), campaign)
        if summary is not None:
            print("resuming: the recipients were checked when this run started and have not "
                  "changed; not reading them again", file=err)
        return summary

    try:
        check = check_campaign(Path(args.file), observe=observe, known_summary=known_summary)
        for d in check.diagnostics:
            print(d.format_text(), file=err)
        if not check.ok or check.campaign is None or check.summary is None:
            print(f"{check.path}: invalid campaign, nothing sent", file=err)
            return EXIT_INVALID
        if dry_runs:
            dry_runs[0].commit()
            print(describe_plan(check, dry_runs[0].writer.path), file=out)
            return EXIT_OK
        from runner.send import SendOptions

        options = SendOptions(report=report_path(args, check.campaign),
                              destination="the built-in sandbox" if args.sandbox else "",
                              resend_unknown=args.resend_unknown,
                              retry_failed=args.retry_failed, fresh=args.fresh, wait=args.wait)
        rows = checked[0] if checked else None
        if args.sandbox:
            return _send_to_sandbox(check, options, rows, args, out, err)
        from runner.kaleyra import resolve_endpoint

        endpoint = resolve_endpoint(check.campaign, os.environ)
        return _send(check, endpoint, options, rows, out, err)
    finally:
        for dry_run in dry_runs:
            dry_run.writer.discard()  # a no-op once committed
        for kept in checked:
            kept.close()


def _send_to_sandbox(check: CampaignCheck, options: SendOptions, rows: CheckedRows | None,
                     args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from runner.kaleyra import Endpoint, Secret
    from runner.sandbox import SANDBOX_API_KEY, SANDBOX_SID, SandboxThread
    from runner.sandbox_cli import faults_from_args

    assert check.campaign is not None
    with SandboxThread(region=check.campaign.account.region, api_key=SANDBOX_API_KEY,
                       sid=SANDBOX_SID, faults=faults_from_args(args)) as sandbox:
        print(f"sandbox: sending to the local Kaleyra-compatible server at {sandbox.base_url}",
              file=err)
        endpoint = Endpoint(sandbox.base_url, SANDBOX_SID, Secret(SANDBOX_API_KEY))
        return _send(check, endpoint, options, rows, out, err)


def _send(check: CampaignCheck, endpoint: Endpoint, options: SendOptions,
          rows: CheckedRows | None, out: TextIO, err: TextIO) -> int:
    from runner.send import send_campaign

    assert check.campaign is not None and check.summary is not None
    window = check.campaign.sending.window
    if not options.destination:  # the real API (or a proxy): where, never with which key
        where = urlsplit(endpoint.sms_url)
        # Host and path name the account's endpoint; a port may change between restarts.
        options = replace(options, destination=f"{where.hostname}{where.path}")

    def on_wait(opens_at: datetime) -> None:
        print(f"waiting for the send window: {describe(window, datetime.now(UTC))} "
              "(Ctrl-C or SIGTERM stops; rerun to resume)", file=err, flush=True)

    outcome = send_campaign(check.campaign, endpoint, options, to_send=check.summary.valid,
                            summary=check.summary, checked=rows, on_wait=on_wait)
    return finish_send(outcome, window, out, err)


def finish_send(outcome: RunOutcome, window: Window | None, out: TextIO, err: TextIO) -> int:
    if outcome.unknown_from_before:
        print(f"resumed: {outcome.unknown_from_before:,} rows were in flight when the last run "
              "stopped; they are reported unknown (rerun with --resend-unknown to send them "
              "again)", file=err)
    print(format_summary(outcome.counts, requests=outcome.requests, retries=outcome.retries,
                         elapsed=outcome.elapsed), file=err)
    print(f"report: {display_path(outcome.report)}", file=out)
    if outcome.closed_until is not None:
        print(f"nothing sent: the send window is closed ({describe(window, datetime.now(UTC))}); "
              "rerun then, or pass --wait", file=err)
        return EXIT_STOPPED
    # Stopped early means rows are left to send: a stop that came when the last batches were
    # already in flight, and let them finish, leaves a finished run.
    if outcome.counts.get("pending", 0):
        print("stopped early: rerun the same command to resume", file=err)
        return EXIT_STOPPED
    if outcome.counts.get("failed", 0) or outcome.counts.get("unknown", 0):
        return EXIT_INCOMPLETE
    return EXIT_OK


def describe_plan(check: CampaignCheck, report: Path) -> str:
    assert check.campaign is not None and check.summary is not None
    c, s = check.campaign, check.summary
    m = c.message
    route = ", ".join([c.account.region, m.type] + (["flash"] if m.flash else []))
    rate = c.sending.requests_per_second
    seconds = min_duration(rate, s.requests)
    parts = f"{s.max_parts} part" + ("s" if s.max_parts != 1 else "")
    if s.min_parts != s.max_parts:
        parts = f"{s.min_parts}-{s.max_parts} parts"
    lines = [
        f"{c.name}: {route}, sender {m.sender}",
        f"  recipients  {s.recipients:,} rows: {s.valid:,} to send, {s.duplicates:,} duplicates, "
        f"{s.suppressed:,} suppressed, {s.invalid:,} invalid",
        f"  message     {s.encoding}, {parts} (longest {s.max_units} of {s.part_limit} "
        "characters)" + (f", template {m.template_id}" if m.template_id else ""),
        f"  requests    {_batches(s.batches)} of up to {c.effective_batch_size}, at {rate:g} a "
        f"second: about {_duration(seconds)}",
        f"  window      {describe(c.sending.window, datetime.now(UTC))}",
        f"  report      {display_path(report)} (dry run: nothing sent)",
    ]
    return "\n".join(lines)


def _batches(n: int) -> str:
    return f"{n:,} batch" if n == 1 else f"{n:,} batches"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# --- sandbox -----------------------------------------------------------------------------------


def cmd_sandbox(args: argparse.Namespace) -> int:
    from runner.sandbox_cli import serve_from_args

    serve_from_args(args)
    return EXIT_OK
