"""Kept for imports written before ``runner.state``: the sqlite journal and its records."""

from __future__ import annotations

from runner.state.records import (
    DEFAULT_COMMIT_EVERY,
    IN_FLIGHT_CODE,
    IN_FLIGHT_ERROR,
    JournalMeta,
    JournalRow,
    JournalStatus,
    RowOutcome,
)
from runner.state.sqlite import Journal
from runner.state.sqlitefile import SCHEMA_VERSION, journal_path, read_meta

__all__ = ["DEFAULT_COMMIT_EVERY", "IN_FLIGHT_CODE", "IN_FLIGHT_ERROR", "SCHEMA_VERSION",
           "Journal", "JournalMeta", "JournalRow", "JournalStatus", "RowOutcome",
           "journal_path", "read_meta"]
