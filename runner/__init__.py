"""runner: a declarative batch campaign runner for Kaleyra SMS.

The public API (the command line is a veneer over it)::

    runner.check(path) -> CampaignCheck
    runner.send(path, *, report=None, state=None, dry_run=False, sandbox=False,
                resend_unknown=False, retry_failed=False, fresh=False, wait=False,
                observer=None) -> RunOutcome
    runner.status(report, *, state=None) -> StatusResult
    runner.report(report, *, html=None, markdown=False) -> ReportView

Each result carries ``.exit_code`` (the CLI's exit code for it), ``.counts`` (rows by status)
and ``.report`` (the report's path). Bad input raises a ``RunnerError`` subclass.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.api import check, report, send, status
    from runner.checker import CampaignCheck
    from runner.errors import CampaignInvalid, InputError, RunnerError, UsageError
    from runner.observer import RunObserver
    from runner.results import RunOutcome

# Imported on first use (PEP 562): `campaign` handles signals before the heavy imports, and
# `import runner.errors` need not load the whole API.
_LAZY = {
    "check": "runner.api", "send": "runner.api", "status": "runner.api", "report": "runner.api",
    "CampaignCheck": "runner.checker", "RunOutcome": "runner.results",
    "RunObserver": "runner.observer", "CampaignInvalid": "runner.errors",
    "InputError": "runner.errors", "RunnerError": "runner.errors", "UsageError": "runner.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "report",
    "send",
    "status",
]
