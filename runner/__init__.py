"""runner: a declarative batch campaign runner for Kaleyra SMS.

The public API (the command line is a veneer over it)::

    runner.check(path) -> CampaignCheck
    runner.send(path, *, report=None, state=None, dry_run=False, sandbox=False,
                resend_unknown=False, retry_failed=False, fresh=False, wait=False,
                observer=None) -> RunOutcome
    runner.status(report, *, state=None) -> StatusResult

Each result carries ``.exit_code`` (the CLI's exit code for it), ``.counts`` (rows by status)
and ``.report`` (the report's path). Bad input raises a ``RunnerError`` subclass.
"""

from __future__ import annotations

__version__ = "0.1.0"

from runner.api import check, send, status
from runner.checker import CampaignCheck
from runner.errors import CampaignInvalid, InputError, RunnerError, UsageError
from runner.observer import RunObserver
from runner.results import RunOutcome

__all__ = [
    "CampaignCheck",
    "CampaignInvalid",
    "InputError",
    "RunObserver",
    "RunOutcome",
    "RunnerError",
    "UsageError",
    "__version__",
    "check",
    "send",
    "status",
]
