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
from typing import TextIO

from runner import api
from runner.cliparser import build_parser
from runner.errors import CampaignInvalid, InputError, RunnerError, UsageError, display_path
from runner.exitcodes import EXIT_INTERNAL, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from runner.output import render_github, render_json, render_text


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
