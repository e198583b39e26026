"""Opening the PostgreSQL store: connecting, the schema, the run's lock and record, and
finding the run that wrote a report (for `campaign status`). Every message masks the URL."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from runner.errors import JournalError, StateUnavailable
from runner.state import pgschema
from runner.state.pgschema import RunKey
from runner.state.records import JournalMeta, changed_campaign
from runner.state.url import mask_url, scrub

CONNECT_TIMEOUT = 10  # seconds: an unreachable database must not hang a CI job
LOCK_WAIT_MS = 2000  # a run whose process just died is let go of by the server in moments
# The server notices a client that vanished (a CI machine gone, no FIN) within about a minute,
# and so frees its run's lock, instead of after the OS default of two hours.
_KEEPALIVES = ("SET tcp_keepalives_idle = 30", "SET tcp_keepalives_interval = 10",
               "SET tcp_keepalives_count = 3")


def connect(url: str, *, purpose: str = "send") -> psycopg.Connection[Any]:
    """A connection, or ``StateUnavailable`` naming the masked URL (never the password)."""
    name = f"campaign {purpose} on {socket.gethostname()} (pid {os.getpid()})"[:63]
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, application_name=name)
        for statement in _KEEPALIVES:
            conn.execute(statement)
        conn.commit()
        return conn
    except psycopg.Error as exc:
        raise StateUnavailable(f"cannot reach the state store {mask_url(url)}: "
                               f"{first_line(scrub(str(exc), url))}") from None
    except (ValueError, TypeError) as exc:  # a malformed URL
        raise StateUnavailable(f"the state URL {mask_url(url)} is not one PostgreSQL "
                               f"understands: {scrub(str(exc), url)}") from None


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


def lock_run(conn: psycopg.Connection[Any], key: RunKey) -> bool:
    """Take the run's session-level advisory lock, waiting up to LOCK_WAIT_MS; False if another
    session holds it."""
    try:
        conn.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
        conn.execute("SELECT pg_advisory_lock(%s)", (key.lock_id(),))
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        return False
    conn.execute("RESET lock_timeout")
    conn.commit()  # the lock is the session's: it outlives this transaction
    return True


def ensure_schema(conn: psycopg.Connection[Any], url: str) -> None:
    """Create or migrate the tables (one transaction, others wait on the schema lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgschema.SCHEMA_LOCK,))
        conn.execute(pgschema.VERSIONS_TABLE)
        found = conn.execute("SELECT max(version) FROM campaign_schema_version").fetchone()
        version = (found[0] if found else None) or 0
        if version > pgschema.SCHEMA_VERSION:
            raise JournalError(f"the state store {mask_url(url)} was written by a newer version "
                               f"of runner (schema {version}); upgrade to use it")
        for number, statements in pgschema.migrations_after(version):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO campaign_schema_version (version) VALUES (%s)", (number,))


def open_run(conn: psycopg.Connection[Any], url: str, key: RunKey, fingerprint: str,
              fresh: bool, settings: dict[str, object]
              ) -> tuple[int, JournalMeta, str | None]:
    found = conn.execute(
        "SELECT id, fingerprint, settings, created, run_number FROM campaign_runs "
        "WHERE name = %s AND region = %s AND sid = %s AND archived IS NULL FOR UPDATE",
        (key.name, key.region, key.sid)).fetchone()
    aside = None
    if found is not None and fresh:
        conn.execute("UPDATE campaign_runs SET archived = now() WHERE id = %s", (found[0],))
        aside = f"run {found[0]} of {mask_url(url)} (archived, not deleted)"
        found = None
    if found is None:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        inserted = conn.execute(
            "INSERT INTO campaign_runs (name, region, sid, fingerprint, settings, created, "
            "run_number) VALUES (%s, %s, %s, %s, %s, %s, 1) RETURNING id",
            (key.name, key.region, key.sid, fingerprint,
             Jsonb(json.loads(json.dumps(settings, default=str))), created)).fetchone()
        assert inserted is not None
        return inserted[0], JournalMeta(fingerprint, settings, created, 1), aside
    run_id, stored_fp, stored, created, run_number = found
    if stored_fp != fingerprint:
        raise JournalError(changed_campaign(f"{mask_url(url)}, run {key}",
                                            "give the new campaign its own name"))
    conn.execute("UPDATE campaign_runs SET run_number = %s WHERE id = %s",
                 (run_number + 1, run_id))
    return run_id, JournalMeta(stored_fp, dict(stored), created, run_number + 1), aside


def holder(conn: psycopg.Connection[Any], key: RunKey) -> str:
    """Who holds the run's lock, when the database will say (best effort)."""
    lock = key.lock_id()
    try:
        found = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
            ((lock >> 32) & 0xFFFFFFFF, lock & 0xFFFFFFFF)).fetchone()
        conn.rollback()
    except psycopg.Error:
        return ""
    return f" ({found[0]})" if found and found[0] else ""


def read_run_meta(url: str, sent: Sequence[tuple[int, str]]) -> JournalMeta:
    """The meta of the run that sent these ``(row, message_id)`` pairs (for `campaign status`,
    which has a report, not a campaign): the run whose records match them all."""
    conn = connect(url, purpose="status")
    try:
        ensure_schema(conn, url)
        runs = conn.execute("SELECT id, fingerprint, settings, created, run_number FROM "
                            "campaign_runs ORDER BY archived IS NOT NULL, id DESC").fetchall()
        probe = list(sent[:20])
        for run_id, fp, settings, created, run_number in runs:
            matched = conn.execute(
                "SELECT count(*) FROM campaign_rows r JOIN unnest(%s::integer[], %s::text[]) "
                "AS t(rowno, mid) ON r.rowno = t.rowno AND r.message_id = t.mid "
                "WHERE r.run_id = %s", ([p[0] for p in probe], [p[1] for p in probe], run_id)
            ).fetchone()
            if probe and matched and matched[0] == len(probe):
                return JournalMeta(fp, dict(settings), created, run_number)
    except psycopg.Error as exc:
        raise StateUnavailable(f"the state store {mask_url(url)} failed: "
                               f"{first_line(scrub(str(exc), url))}") from None
    finally:
        conn.close()
    raise JournalError(f"no run in the state store {mask_url(url)} sent this report's messages "
                       "(is it the --state the report was sent with?)")
