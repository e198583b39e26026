"""Account refusals: answers that say the account, not the numbers, is refused, which stop a run.

A 401 or 403 (the key or the SID) stops the run at its first answer; an account-level Kaleyra
code (E615 type, E619/E621/E622 sender, E623 to E625 route not enabled) stops it when the same
code answers ``STREAK`` batches in a row, since one such answer may concern only the numbers of
that batch (a route for one country, say). The rows of the batches refused that way proved
nothing was sent: the journal records them ``refused`` (reported ``pending`` with the reason),
and a plain rerun after the fix sends them. A code that any other answer interrupts leaves its
rows ``failed``, as a refusal specific to those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from runner.answers import Outcome, Rejected
from runner.state import JournalRow

ACCOUNT_CODES: Final = frozenset({"E615", "E619", "E621", "E622", "E623", "E624", "E625"})
STREAK: Final = 3

_FIXES: Final = {
    "E615": "ask your Kaleyra account manager to enable this message type (message.type) on "
            "the account, or change it",
    "E619": "use a sender ID registered to the account (message.sender), or ask your account "
            "manager to approve it",
    "E621": "use a sender ID registered to the account (message.sender), or ask your account "
            "manager to approve it",
    "E622": "use a sender ID registered to the account (message.sender), or ask your account "
            "manager to approve it",
}
_ROUTE_FIX: Final = "ask your Kaleyra account manager to enable the route for this account"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # HTTP401, HTTP403, E615, ...
    message: str  # the answer's words

    def line(self, key_env: str = "KALEYRA_API_KEY") -> str:
        """One line naming the cause and the fix (never the key)."""
        if self.code in ("HTTP401", "HTTP403"):
            fix = (f"check the API key in ${key_env} and the account SID, then rerun the same "
                   "command")
            cause = f"the account refused the API key ({self.code[4:]})"
        else:
            fix = _FIXES.get(self.code, _ROUTE_FIX) + ", then rerun the same command"
            cause = f"the account refused {STREAK} batches in a row with {self.code}"
        return (f"stopped: {cause}: {self.message}; {fix} (the rows not sent stay pending "
                "and will be sent)")


def account_code(outcome: Outcome | None) -> str | None:
    """The account-level code of a refusal, None for any other answer."""
    if not isinstance(outcome, Rejected):
        return None
    if outcome.http_status in (401, 403):
        return f"HTTP{outcome.http_status}"
    return outcome.code if outcome.code in ACCOUNT_CODES else None


def _refused(rows: list[JournalRow]) -> list[JournalRow]:
    return [(r[0], r[1], "refused", *r[3:]) for r in rows]


class AccountWatch:
    """Decides, batch by batch in the order their answers come, whether the account refused."""

    def __init__(self) -> None:
        self.refusal: Refusal | None = None
        self._streak: list[list[JournalRow]] = []  # rows of the batches of the current streak
        self._code = ""

    def settle(self, outcome: Outcome, rows: list[JournalRow]) -> list[JournalRow] | None:
        """The rows to record instead of ``rows`` (as ``refused``), once the account refused;
        None to record ``rows`` as they are. ``self.refusal`` is set when the run must stop."""
        code = account_code(outcome)
        if code is None:
            self._streak, self._code = [], ""
            return None
        assert isinstance(outcome, Rejected)
        if self.refusal is not None and code in (self.refusal.code, "HTTP401", "HTTP403"):
            return _refused(rows)  # answers to requests in flight when the run stopped
        if code.startswith("HTTP"):
            self.refusal = Refusal(code, outcome.message)
            return _refused(rows)
        if code != self._code:
            self._streak, self._code = [], code
        self._streak.append(rows)
        if len(self._streak) < STREAK:
            return None
        self.refusal = Refusal(code, outcome.message)
        earlier = [row for batch in self._streak for row in batch]
        self._streak = []
        return _refused(earlier)
