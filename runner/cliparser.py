"""The command line's parser: commands, options and their help (``runner.cli`` runs them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from runner import __version__, completion, schema_cli
from runner.errors import UsageError
from runner.exitcodes import EPILOG


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


SEND_USAGE = ("campaign send FILE [--dry-run] [--report PATH] [--sandbox [--respect-window] "
              "[sandbox fault options]] [--resend-unknown] [--retry-failed] [--fresh] [--wait] "
              "[--state URL] [--recover-from-report] "
              "[--summary-json PATH] [-v | -q]")


def build_parser() -> argparse.ArgumentParser:
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
