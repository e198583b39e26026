"""One observer for a run: what the core tells whoever watches it (a progress bar, CI lines, a
log, a test), with no-op defaults so that a watcher overrides only what it needs.

Modelled on resolvelib's ``BaseReporter``: the core calls these at fixed points and never
depends on what they do. Every method must return quickly; none may raise on purpose.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.checker import CampaignCheck
    from runner.engine import EngineStats
    from runner.model import Window


class RunObserver:
    """Hooks of ``runner.send``, called in this order; the defaults do nothing."""

    def checked(self, check: CampaignCheck, *, reused: bool) -> None:
        """The campaign was checked (``reused``: a resume trusted the check its run stored,
        without reading the recipients again). Called for valid campaigns only; an invalid one
        raises ``CampaignInvalid`` with the same diagnostics."""

    def sandbox_started(self, base_url: str, *, window_ignored: bool) -> None:
        """``sandbox=True``: the in-process sandbox listens at ``base_url``
        (``window_ignored``: the campaign has a send window, which the rehearsal ignores)."""

    def waiting_for_window(self, window: Window | None, opens_at: datetime) -> None:
        """``wait=True`` and the send window is closed: the run sleeps until ``opens_at``."""

    def sending(self, rows: int) -> None:
        """Requests begin; ``rows`` are left to send in this run."""

    def batch_done(self, stats: EngineStats) -> None:
        """A batch got its final answer; ``stats`` are the run's totals so far."""

    def waiting(self, reason: str, seconds: float) -> None:
        """Requests wait ``seconds`` (a Retry-After pause, a backoff before a retry), because
        of ``reason`` (e.g. "Kaleyra asked to wait (HTTP429, Retry-After)")."""

    def sending_done(self) -> None:
        """No more requests will leave in this run (finished or stopped)."""
