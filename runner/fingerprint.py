"""The fingerprint of a run: what it sends and to whom, hashed, so a resume can tell a change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runner.errors import InputError, display_path
from runner.model import Campaign


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{display_path(path)}: cannot read: {exc.strerror or exc}") from None
    return digest.hexdigest()


def fingerprint(campaign: Campaign, *, source_sha256: str | None = None) -> str:
    """What the run sends and to whom, hashed: a resume is refused when it changes.

    Covers the message (sender, type, flash, body, template_id, entity_id, unicode), the name
    (sent as ``ref``), region and SID, the batch size and what decides who gets it (phone column,
    default country, the bytes of the source CSV and of the suppression lists, in any order).
    Rate, concurrency, retries and the window are left out: changing them mid-run is fine.
    Paths are left out too, so moving the campaign folder does not orphan a run.
    ``source_sha256`` is the digest of the source as the check pass read it (what is sent is
    what was read then, not what the file holds now); else the file is read for it.
    """
    m, r = campaign.message, campaign.recipients
    doc = {
        "v": 1,
        "name": campaign.name,
        "region": campaign.account.region,
        "sid": campaign.account.sid,
        "message": [m.sender, m.type, m.flash, m.body, m.template_id, m.entity_id, m.unicode],
        "batch_size": campaign.effective_batch_size,
        "phone_column": r.phone_column,
        "default_country": r.default_country,
        "source": source_sha256 if source_sha256 is not None else file_digest(r.source),
        "exclude": sorted(file_digest(p) for p in r.exclude),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
