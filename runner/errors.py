"""One small exception family, and the diagnostic record every check returns.

Hierarchy::

    RunnerError                 anything this package raises on purpose
    ├── InputError              a bad campaign, CSV, suppression list or report path (exit 1)
    │   └── CampaignInvalid     carries the collected Diagnostics of a campaign that failed checks
    ├── UsageError              bad flags or arguments (exit 2)
    ├── JournalError            a journal that cannot be used (changed campaign, corrupt file)
    ├── RunInterrupted          a run stopped part way by trouble outside it: the journal or
    │   │                       the disk failed mid-run (exit 75, a rerun resumes)
    │   └── StateLost           the state store (PostgreSQL) was lost during the run (exit 75)
    ├── StateUnavailable        the state store cannot be reached at start, nothing sent (exit 75)
    │   └── StateLost           (also: lost mid-run is a kind of unavailable)
    ├── StateBusy               another process is sending the same run, nothing sent (exit 75)
    └── ApiError                a transport or protocol failure talking to Kaleyra

Checks do not raise per problem: they collect ``Diagnostic`` values (file, line, column, field,
message) and the CLI renders them as text, JSON or GitHub annotations.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in an input file, located as precisely as we can."""

    severity: Severity
    message: str
    path: str
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    field: str | None = None  # dotted key path ("message.sender") or CSV column name
    code: str = ""  # the rule's stable name (docs/diagnostics.md), e.g. "unknown-key"

    def format_text(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.severity}: {self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "message": self.message,
            "file": self.path,
            "line": self.line,
            "col": self.col,
            "field": self.field,
            "code": self.code or _GENERIC[self.severity],
        }


_GENERIC = {"error": "error", "warning": "warning"}  # a diagnostic no rule has named yet


def error(message: str, path: str, line: int | None = None, col: int | None = None,
          field: str | None = None, *, code: str = "") -> Diagnostic:
    return Diagnostic("error", message, path, line, col, field, code)


def warning(message: str, path: str, line: int | None = None, col: int | None = None,
            field: str | None = None, *, code: str = "") -> Diagnostic:
    return Diagnostic("warning", message, path, line, col, field, code)


QUOTE_LIMIT = 40  # characters of a file's content a diagnostic may quote: one cell, cut


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """One cell of a file, as a diagnostic may show it: repr'd, and cut at ``limit`` characters.

    Diagnostics end up in public CI logs (``validate --format github``): they quote at most the
    offending cell, never a whole line of a file.
    """
    return repr(text if len(text) <= limit else text[:limit] + "...")


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


class RunnerError(Exception):
    """Base of every exception this package raises on purpose."""

    exit_code = 1  # what `campaign` exits with when this ends a command


class InputError(RunnerError):
    """Bad user input: the message names the file, line and field. Exit code 1."""

    def __init__(self, message: str, diagnostics: Iterable[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.diagnostics = tuple(diagnostics)


class CampaignInvalid(InputError):
    """A campaign failed its checks; ``diagnostics`` holds every problem found."""


class UsageError(RunnerError):
    """Bad command-line usage. Exit code 2."""

    exit_code = 2


class JournalError(RunnerError):
    """The journal cannot be used as asked (e.g. the campaign changed since it was written)."""


class RunInterrupted(RunnerError):
    """A run stopped part way because its state could not be kept (journal, disk, store).
    What was recorded stays consistent; a rerun resumes. Exit code 75."""

    exit_code = 75


class StateUnavailable(RunnerError):
    """The state store cannot be reached (at start: nothing was sent). Exit code 75."""

    exit_code = 75


class StateLost(RunInterrupted, StateUnavailable):
    """The state store went away during the run: no new batches; those whose answers could not
    be recorded come back ``unknown`` at the rerun. Exit code 75."""


class StateBusy(RunnerError):
    """Another process holds the run (its lock in the state store): nothing sent. Exit 75."""

    exit_code = 75


class ApiError(RunnerError):
    """A failure talking to the Kaleyra API that is not tied to one batch."""


def display_path(path: os.PathLike[str] | str) -> str:
    """The path as a user should see it: relative to the working folder when under it."""
    text = os.fspath(path)
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive on Windows
        return text
    return text if rel.startswith("..") else rel
