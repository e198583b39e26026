"""One batch's retries: what its attempts so far say, and when tenacity must stop trying.

The engine (``runner.engine``) keeps a ``Tries`` record a batch; ``StopBeforeDeadline`` ends the
retries when the next wait would pass the batch's deadline, and ``last_answer`` makes a batch
whose retries ran out end with its last answer instead of tenacity's RetryError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState
from tenacity.stop import stop_base

from runner.answers import Ambiguous, Outcome

Clock = Callable[[], float]


@dataclass(slots=True)
class Tries:
    """One batch's attempts so far."""

    began: bool = False  # recorded in flight in the journal (and not released since)
    attempts: int = 0
    last: Outcome | None = None  # the answer to the previous attempt
    maybe_sent: Ambiguous | None = None  # the last answer that says it may have been processed
    counted: bool = False  # taken from the hour and day caps (with its first attempt)
    out_of_time: bool = False  # the next wait would have gone past the deadline


class StopBeforeDeadline(stop_base):
    """Stop retrying when the wait before the next attempt would end past the batch's deadline
    (or it has passed already), on the injected clock."""

    def __init__(self, clock: Clock, started: float, deadline: float | None,
                 tries: Tries) -> None:
        self._clock, self._started, self._deadline = clock, started, deadline
        self._tries = tries

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        left = self._deadline - (self._clock() - self._started)
        if left <= 0 or retry_state.upcoming_sleep > left:
            self._tries.out_of_time = True
            return True
        return False


def last_answer(state: RetryCallState) -> Outcome | None:
    """When retries run out, the batch ends with its last answer (not tenacity's RetryError)."""
    return state.outcome.result() if state.outcome else None
