"""The command line, a veneer over ``runner.api``: parse arguments, call the API, print its
results, return their exit codes (``runner.exitcodes``). No policy lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from runner import __version__, api
from runner.errors import CampaignInvalid, InputError, RunInterrupted, RunnerError, UsageError
from runner.exitcodes import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from runner.output import render_github, render_json, render_text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
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
    send.add_argument("--respect-window", action="store_true",
                      help="with --sandbox: keep to the send window as a real send does")
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
        command = {"validate": cmd_validate, "send": cmd_send, "status": cmd_status,
                   "sandbox": cmd_sandbox}[args.command]
        return command(args, out, err)
    except UsageError as exc:
        print(f"{exc}\n(see `campaign --help`)", file=err)
        return EXIT_USAGE
    except CampaignInvalid as exc:
        for d in exc.diagnostics:
            print(d.format_text(), file=err)
        print(exc, file=err)
        return EXIT_INVALID
    except InputError as exc:
        for d in exc.diagnostics:
            print(d.format_text(), file=err)
        if not exc.diagnostics:  # the diagnostics already say it, with the file
            print(f"error: {exc}", file=err)
        return EXIT_INVALID
    except RunInterrupted as exc:
        print(f"error: {exc}", file=err)
        return EXIT_STOPPED
    except RunnerError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INVALID
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

    outcome = api.send(args.file, report=args.report, dry_run=args.dry_run,
                       sandbox=args.sandbox, resend_unknown=args.resend_unknown,
                       retry_failed=args.retry_failed, fresh=args.fresh, wait=args.wait,
                       observer=ConsoleObserver(err), faults=faults_from_args(args),
                       respect_window=args.respect_window)
    if outcome.dry_run:
        assert outcome.check is not None
        print(describe_plan(outcome.check, outcome.report), file=out)
        return outcome.exit_code
    to_out, to_err = send_lines(outcome)
    print("\n".join(to_err), file=err)
    print("\n".join(to_out), file=out)
    return outcome.exit_code


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Exit 0 when every sent row is delivered; 3 when some are undelivered or still pending;
    1 for bad input or a refused request."""
    from runner.delivery import finish_status

    try:
        result = api.status(args.report, recheck=bool(args.recheck))
    except RunnerError as exc:
        for d in getattr(exc, "diagnostics", ()):
            print(d.format_text(), file=err)
        print(f"error: {exc}", file=err)
        return EXIT_INVALID
    return finish_status(result, out, err)


def cmd_sandbox(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from runner.sandbox_cli import serve_from_args

    serve_from_args(args)
    return EXIT_OK
