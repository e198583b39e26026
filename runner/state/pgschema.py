"""The PostgreSQL store's schema: versioned tables, created on first use and migrated in order.

Every table is prefixed ``campaign_`` so that the store can share a database with other things.
``campaign_schema_version`` holds a row per migration applied; opening a store applies the
missing ones in one transaction, under a transaction-level advisory lock so that two machines
starting at once do not both create the tables. A database written by a newer runner (a version
above ``SCHEMA_VERSION``) is refused rather than misread.

A run is a row of ``campaign_runs``, keyed by campaign name, region and SID; ``--fresh``
archives the run (``archived`` set) and starts another under the same key, so the old record is
kept, as the file journal keeps its old file aside.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SCHEMA_VERSION = 2  # 2 added campaign_message_counts (the hour and day caps)
SCHEMA_LOCK = 0x63616D70_00000001  # "camp" + 1: held while tables are created or migrated

_VERSIONS = """
CREATE TABLE IF NOT EXISTS campaign_schema_version (
    version INTEGER PRIMARY KEY,
    applied TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

# version -> statements. Append new versions; never edit an applied one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE campaign_runs (
            id BIGSERIAL PRIMARY KEY,
            name TEXT NOT NULL,
            region TEXT NOT NULL,
            sid TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            settings JSONB NOT NULL,
            created TEXT NOT NULL,
            run_number INTEGER NOT NULL,
            archived TIMESTAMPTZ
        )""",
        """CREATE UNIQUE INDEX campaign_runs_active ON campaign_runs (name, region, sid)
            WHERE archived IS NULL""",
        """CREATE TABLE campaign_rows (
            run_id BIGINT NOT NULL,
            rowno INTEGER NOT NULL,
            phone TEXT NOT NULL,
            status TEXT NOT NULL,
            batch_id TEXT NOT NULL DEFAULT '',
            message_id TEXT NOT NULL DEFAULT '',
            error_code TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            sent_at TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, rowno)
        )""",
        """CREATE TABLE campaign_batches (
            run_id BIGINT NOT NULL,
            id TEXT NOT NULL,
            members JSON NOT NULL,
            open BOOLEAN NOT NULL DEFAULT TRUE,
            PRIMARY KEY (run_id, id)
        )""",
        """CREATE TABLE campaign_answers (
            run_id BIGINT NOT NULL,
            seq BIGSERIAL,
            answer JSON NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        "CREATE INDEX campaign_batches_open ON campaign_batches (run_id) WHERE open",
    ),
    2: (
        """CREATE TABLE campaign_message_counts (
            run_id BIGINT NOT NULL,
            period TEXT NOT NULL,
            messages BIGINT NOT NULL,
            PRIMARY KEY (run_id, period)
        )""",
    ),
}

COLUMNS = "rowno, phone, status, batch_id, message_id, error_code, error, attempts, sent_at"

# A batch's members are [[row, phone], ...]: one tuple a batch, as in the sqlite journal.
# Batches begun together (the writer's group) go in one statement: [[id, members], ...].
BEGIN_BATCHES = """
INSERT INTO campaign_batches (run_id, id, members, open)
SELECT %(run)s, b->>0, b->1, TRUE FROM json_array_elements(%(begun)s) AS b
ON CONFLICT (run_id, id) DO UPDATE SET members = excluded.members, open = TRUE
"""
# An answer is one tuple too: its rows as a JSON array of journal rows, its batch closed in the
# same statement. Rows are folded into campaign_rows when something reads them (``COMPACT``),
# so the path every request takes writes two tuples, not one per recipient.
FINISH_ROWS = """
WITH closed AS (
    UPDATE campaign_batches SET open = FALSE WHERE run_id = %(run)s AND id = ANY(%(batches)s)
)
INSERT INTO campaign_answers (run_id, answer) VALUES (%(run)s, %(answer)s)
"""
# The latest answer for each row wins (a row retried later was answered again).
COMPACT = """
WITH folded AS (
    DELETE FROM campaign_answers WHERE run_id = %(run)s RETURNING seq, answer
), latest AS (
    SELECT DISTINCT ON (rowno) rowno, phone, status, batch_id, message_id, error_code, error,
           attempts, sent_at
    FROM (SELECT f.seq, (e->>0)::integer AS rowno, e->>1 AS phone, e->>2 AS status,
                 e->>3 AS batch_id, e->>4 AS message_id, e->>5 AS error_code, e->>6 AS error,
                 (e->>7)::integer AS attempts, e->>8 AS sent_at
          FROM folded f, json_array_elements(f.answer) AS e) AS t
    ORDER BY rowno, seq DESC
)
INSERT INTO campaign_rows (run_id, rowno, phone, status, batch_id, message_id, error_code,
                           error, attempts, sent_at)
SELECT %(run)s, * FROM latest
ON CONFLICT (run_id, rowno) DO UPDATE SET phone = excluded.phone, status = excluded.status,
    batch_id = excluded.batch_id, message_id = excluded.message_id,
    error_code = excluded.error_code, error = excluded.error, attempts = excluded.attempts,
    sent_at = excluded.sent_at
"""
UNKNOWN_ROWS = """
INSERT INTO campaign_rows (run_id, rowno, phone, status, batch_id, error_code, error)
SELECT %(run)s, r, p, 'unknown', b, %(code)s, %(error)s
FROM unnest(%(rows)s::integer[], %(phones)s::text[], %(batch_ids)s::text[]) AS t(r, p, b)
ON CONFLICT (run_id, rowno) DO UPDATE SET phone = excluded.phone, status = 'unknown',
    batch_id = excluded.batch_id, message_id = '', error_code = excluded.error_code,
    error = excluded.error, sent_at = ''
"""


@dataclass(frozen=True, slots=True)
class RunKey:
    """What names a run in the store: any machine with the same campaign resumes it."""

    name: str
    region: str
    sid: str

    def lock_id(self) -> int:
        """The session-level advisory lock that keeps a second process off this run."""
        digest = hashlib.sha256(f"campaign-run\0{self.name}\0{self.region}\0{self.sid}".encode())
        return int.from_bytes(digest.digest()[:8], "big", signed=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.region}, SID {self.sid})"


def migrations_after(version: int) -> list[tuple[int, tuple[str, ...]]]:
    return [(v, sql) for v, sql in sorted(MIGRATIONS.items()) if v > version]


VERSIONS_TABLE = _VERSIONS
