"""The command line, a veneer over ``runner.api``: parse arguments, call the API, print its
results, return their exit codes (``runner.exitcodes``). No policy lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

from runner import __version__, api
from runner.errors import CampaignInvalid, InputError, RunnerError, UsageError, display_path
from runner.exitcodes import EPILOG, EXIT_INTERNAL, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from runner.output import render_github, render_json, render_text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


SEND_USAGE = ("campaign send FILE [--dry-run] [--report PATH] [--sandbox [--respect-window] "
              "[sandbox fault options]] [--resend-unknown] [--retry-failed] [--fresh] [--wait] "
              "[--summary-json PATH] [-v | -q]")


def build_parser() -> argparse.ArgumentParser:
    from runner import completion, schema_cli
    from runner.sandbox_cli import add_sandbox_arguments

    parser = _Parser(prog="campaign", description="Declarative batch SMS campaigns for Kaleyra.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"campaign {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, summary: str, usage: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   usage=usage)

    validate = command("validate", "check campaign files (no network)")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="campaign files or folders")
    validate.add_argument("--format", choices=("text", "json", "github"), default="text",
                          help="text (default): path:line:col: message; json: a versioned "
                          "document; github: annotations for a pull request")

    send = command("send", "send a campaign (or --dry-run)", usage=SEND_USAGE)
    send.add_argument("file", metavar="FILE", help="the campaign file")
    send.add_argument("--report", metavar="PATH", help="report path (default: the file's "
                      "`report:` key, else reports/<name>.csv)")
    send.add_argument("--dry-run", action="store_true",
                      help="everything but the HTTP call: the plan, and the report of what "
                      "would happen to each row")
    send.add_argument("--sandbox", action="store_true",
                      help="start the local sandbox in-process and send to it (no account)")
    send.add_argument("--respect-window", action="store_true",
                      help="with --sandbox: keep to the send window as a real send does")
    send.add_argument("--resend-unknown", action="store_true",
                      help="resend rows whose earlier request may or may not have been delivered")
    send.add_argument("--retry-failed", action="store_true", help="retry rows that failed before")
    send.add_argument("--fresh", action="store_true",
                      help="start over and send to every row again; the old journal is kept "
                      "aside")
    send.add_argument("--wait", action="store_true",
                      help="wait for the send window instead of exiting 75")
    add_state_argument(send)
    send.add_argument("--recover-from-report", action="store_true",
                      help="the report of a send run lost its journal: rebuild the journal from "
                      "the report (its sent, failed and unknown rows count as answered) and "
                      "carry on")
    send.add_argument("--summary-json", metavar="PATH", type=Path,
                      help="write a versioned JSON summary of the run (for dashboards)")
    add_verbosity(send)
    add_sandbox_arguments(send, faults_only=True)  # faults for --sandbox, to rehearse a bad day

    status = command("status", "poll delivery status into a report")
    add_status_arguments(status)

    from runner.report_command import add_report_arguments

    add_report_arguments(command("report", "a report as one self-contained page, or markdown"))

    sandbox = command("sandbox", "run the local Kaleyra-compatible server")
    add_sandbox_arguments(sandbox)
    schema_cli.add_parser(commands)  # `campaign schema`
    completion.add_parser(commands)  # `campaign completion bash|zsh`
    return parser


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="log one line a request (batch, size, attempt, answer, latency)")
    loud.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def add_state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", metavar="URL",
                        help="keep the run's state in PostgreSQL (postgresql://user:password@"
                        "host:port/db), keyed by campaign name, region and SID, so any machine "
                        "resumes it (default: $CAMPAIGN_STATE, else the journal file beside the "
                        "report)")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT",
                        help="a delivery report written by `campaign send` (its journal beside it)")
    parser.add_argument("--recheck", action="store_true",
                        help="ask again for rows whose delivery status is already final")
    add_state_argument(parser)
    add_verbosity(parser)


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
        command = {"validate": cmd_validate, "send": cmd_send, "status": cmd_status,
                   "report": cmd_report, "sandbox": cmd_sandbox}[args.command]
        return command(args, out, err)
    except UsageError as exc:
        print(f"{exc}\n(see `campaign --help`)", file=err)
        return exc.exit_code
    except CampaignInvalid as exc:
        for d in exc.diagnostics:
            print(d.format_text(), file=err)
        print(exc, file=err)
        return exc.exit_code
    except InputError as exc:
        for d in exc.diagnostics:
            print(d.format_text(), file=err)
        if not exc.diagnostics:  # the diagnostics already say it, with the file
            print(f"error: {exc}", file=err)
        return exc.exit_code
    except RunnerError as exc:
        print(f"error: {exc}", file=err)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside the send loop (which has its own)
        print("stopped by a signal: rerun the same command to go on (the journal keeps every "
              "answer recorded so far)", file=err)
        return EXIT_STOPPED
    except BrokenPipeError:  # `campaign validate ... | head`: the reader left, nothing to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_USAGE
    except Exception as exc:  # a bug: say so in one line, never a traceback
        print(f"internal error ({type(exc).__name__}): the journal is intact and a rerun "
              "resumes; please report this", file=err)
        return EXIT_INTERNAL


def campaign_files(paths: Sequence[str]) -> list[Path]:
    """The campaign files named: files as given, folders searched for *.yaml and *.yml."""
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
    checks = [api.check(path) for path in campaign_files(args.paths)]
    render = {"text": render_text, "json": render_json, "github": render_github}[args.format]
    print(render(checks), file=out)
    return max((c.exit_code for c in checks), default=EXIT_OK)


def cmd_send(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from runner.render import ConsoleObserver, describe_plan, send_lines
    from runner.sandbox_cli import faults_from_args

    started = datetime.now(UTC)
    _log_requests(args.verbose, err)
    try:
        outcome = api.send(args.file, report=args.report, dry_run=args.dry_run,
                           sandbox=args.sandbox, resend_unknown=args.resend_unknown,
                           retry_failed=args.retry_failed, fresh=args.fresh, wait=args.wait,
                           observer=ConsoleObserver(err, quiet=args.quiet),
                           faults=faults_from_args(args), respect_window=args.respect_window,
                           state=args.state, recover_from_report=args.recover_from_report)
    except RunnerError as exc:
        if args.summary_json is not None:
            from runner.summary import failed_summary, write_summary

            write_summary(args.summary_json, failed_summary(
                file=args.file, exit_code=exc.exit_code, started_at=started, message=str(exc),
                diagnostics=getattr(exc, "diagnostics", ()), dry_run=args.dry_run))
        raise
    if args.summary_json is not None:
        from runner.summary import run_summary, write_summary

        write_summary(args.summary_json, run_summary(outcome, started_at=started,
                                                     file=args.file))
    if outcome.dry_run:
        assert outcome.check is not None
        if not args.quiet:
            print(describe_plan(outcome.check, outcome.report), file=out)
        return outcome.exit_code
    to_out, to_err = send_lines(outcome, quiet=args.quiet)
    if to_err:
        print("\n".join(to_err), file=err)
    if to_out:
        print("\n".join(to_out), file=out)
    return outcome.exit_code


def _log_requests(verbose: bool, err: TextIO) -> None:
    """-v: the engine's request log (logger ``runner.requests``) to stderr."""
    logger = logging.getLogger("runner.requests")
    if verbose:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Exit 0 when every sent row is delivered; 3 when some are undelivered or still pending;
    1 for bad input or a refused request."""
    from runner.delivery import finish_status

    try:
        result = api.status(args.report, recheck=bool(args.recheck), state=args.state)
    except RunnerError as exc:
        for d in getattr(exc, "diagnostics", ()):
            print(d.format_text(), file=err)
        print(f"error: {exc}", file=err)
        return exc.exit_code
    return finish_status(result, out, io.StringIO() if args.quiet and not result.refused
                         else err)


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.html and not args.markdown:
        raise UsageError("campaign report: give --html PATH, --markdown, or both")
    view = api.report(args.report, html=args.html, markdown=bool(args.markdown))
    if view.markdown is not None:
        out.write(view.markdown)
    if view.html is not None:
        print(f"page: {display_path(view.html)}", file=err)
    return view.exit_code


def cmd_sandbox(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from runner.sandbox_cli import serve_from_args

    serve_from_args(args)
    return EXIT_OK
