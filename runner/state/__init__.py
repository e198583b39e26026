"""The state of a run: the journal interface, its sqlite and PostgreSQL stores, choosing one.

``open_store(state, report, fingerprint, ...)`` opens the run's store: with a ``postgresql://``
(or ``postgres://``) URL the run lives in PostgreSQL, keyed by campaign name, region and SID
(``runner.state.postgres``); without one it is the sqlite journal beside the report
(``<report>.journal``, ``runner.state.sqlite``). Both implement ``Store`` and pass the same tests.
PostgreSQL needs the ``postgres`` extra (psycopg 3), imported only when a URL asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.errors import InputError
from runner.state.pgschema import RunKey
from runner.state.records import (
    DEFAULT_COMMIT_EVERY,
    IN_FLIGHT_CODE,
    IN_FLIGHT_ERROR,
    JournalMeta,
    JournalRow,
    JournalStatus,
    RowOutcome,
    Store,
)
from runner.state.sqlite import Journal
from runner.state.sqlitefile import journal_path, read_meta
from runner.state.url import is_postgres_url, mask_url

STATE_ENV = "CAMPAIGN_STATE"

__all__ = [
    "DEFAULT_COMMIT_EVERY", "IN_FLIGHT_CODE", "IN_FLIGHT_ERROR", "STATE_ENV", "Journal",
    "JournalMeta", "JournalRow", "JournalStatus", "RowOutcome", "RunKey", "Store",
    "is_postgres_url", "journal_path", "mask_url", "open_store", "read_meta", "read_state_meta",
    "state_url",
]


def state_url(flag: str | None, env: Mapping[str, str]) -> str | None:
    """The state URL in force: ``--state`` wins over $CAMPAIGN_STATE; empty means none.

    Anything else than a PostgreSQL URL is refused rather than silently ignored (a typo in a
    CI secret must not turn a shared-state run into a file journal on a runner that vanishes)."""
    url = flag if flag else env.get(STATE_ENV, "")
    url = url.strip()
    if not url:
        return None
    if not is_postgres_url(url):
        where = "--state" if flag else f"${STATE_ENV}"
        raise InputError(f"{where} {mask_url(url)}: not a state URL; give "
                         "postgresql://user:password@host:port/database (or leave it unset for "
                         "the journal file beside the report)")
    return url


def _need_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise InputError("a PostgreSQL state store needs psycopg 3: pip install "
                         f"'runner[postgres]' ({exc})") from None


def open_store(state: str | None, report: Path, fingerprint: str, *, fresh: bool = False,
               settings: Mapping[str, object] | None = None, key: RunKey | None = None,
               commit_every: int = DEFAULT_COMMIT_EVERY) -> Store:
    """The run's store: PostgreSQL for a URL (the run ``key``, else name/region/sid from
    ``settings``), else the sqlite journal beside ``report``."""
    if state is None:
        return Journal.open(journal_path(report), fingerprint, fresh=fresh, settings=settings,
                            commit_every=commit_every)
    _need_psycopg()
    from runner.state.postgres import PostgresStore

    if key is None:
        s = settings or {}
        key = RunKey(str(s.get("name", "")), str(s.get("region", "")), str(s.get("sid") or ""))
    return PostgresStore.open(state, key, fingerprint, fresh=fresh, settings=settings,
                              commit_every=commit_every)


def read_state_meta(state: str | None, report: Path,
                    sent: Sequence[tuple[int, str]] = ()) -> JournalMeta:
    """The meta of the run that wrote ``report`` (for `campaign status`): from the journal
    beside it, or from the PostgreSQL run whose records hold the report's ``(row, message_id)``
    pairs ``sent``."""
    if state is None:
        return read_meta(journal_path(report))
    _need_psycopg()
    from runner.state.pgopen import read_run_meta

    return read_run_meta(state, sent)
