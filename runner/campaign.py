"""Loading a campaign file: YAML with marks -> schema -> the frozen ``Campaign`` model.

``load_campaign(path)`` never raises for bad input: every problem is a ``Diagnostic`` in the
returned ``LoadResult`` (file, line, column, field), and ``campaign`` is None when any of them is
an error. The rules the schema cannot say (type per region, placeholders against the CSV, ...)
are ``runner.rules.check_rules(result.campaign, result.marks)``; ``validate_campaign`` runs both.
"""

from __future__ import annotations

import difflib
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import time
from functools import cache
from pathlib import Path
from typing import Any

import phonenumbers

from runner.errors import Diagnostic, display_path, error, has_errors
from runner.model import (
    DEFAULT_VARIABLE_LENGTH,
    Account,
    Budget,
    Campaign,
    DltSpec,
    MessageSpec,
    RecipientsSpec,
    SendingSpec,
    Window,
)
from runner.schema import coerce_strings, sort_diagnostics, validate
from runner.yamlload import MAX_BYTES, KeyPath, Marks, dotted, load_yaml

__all__ = ["LoadResult", "Marks", "is_secret_key", "load_campaign", "validate_campaign"]

DEFAULT_KEY_ENV = "KALEYRA_API_KEY"
# TRAI: promotional SMS in India only from 09:00 to 21:00 IST.
TRAI_WINDOW = Window(time(9, 0), time(21, 0), "Asia/Kolkata", implied=True)

_SECRET_WORDS = ("apikey", "password", "passwd", "secret", "token", "credential", "privatekey",
                 "accesskey", "authorization", "bearer")
_SECRET_NAMES = {"key", "pwd", "pass", "auth"}


@dataclass(frozen=True, slots=True)
class LoadResult:
    campaign: Campaign | None  # None when any diagnostic is an error
    diagnostics: list[Diagnostic]
    marks: Marks = field(default_factory=Marks)


def is_secret_key(key: str) -> bool:
    """Whether a key looks like it holds a secret (``api_key``, ``password``, ``token``, ...).

    ``api_key_env`` and other ``*_env`` keys name a variable, which is fine.
    """
    norm = re.sub(r"[^a-z0-9]", "", key.lower())
    if norm.endswith("env"):
        return False
    return norm in _SECRET_NAMES or any(word in norm for word in _SECRET_WORDS)


def load_campaign(path: Path) -> LoadResult:
    """Read, check against the schema and build the campaign in ``path``."""
    shown = display_path(path)
    text, problem = _read_text(path, shown)
    if problem is not None:
        return LoadResult(None, [problem])
    assert text is not None
    doc = load_yaml(text, shown, is_secret_key=is_secret_key)
    diagnostics = list(doc.diagnostics)
    if doc.data is None and not doc.diagnostics:
        diagnostics.append(error("the file holds no campaign (it is empty)", shown, 1, 1,
                                 code="empty-file"))
    if doc.data is None:
        return LoadResult(None, sort_diagnostics(diagnostics), doc.marks)
    if not isinstance(doc.data, dict):
        line, col = doc.marks.at(()) or (1, 1)
        diagnostics.append(error(
            "a campaign file must be a mapping of keys (version, name, account, message, "
            f"recipients, ...), not {_kind(doc.data)}", shown, line, col, code="not-a-mapping"))
        return LoadResult(None, diagnostics, doc.marks)
    diagnostics += _secret_errors(doc.secret_paths, doc.data, doc.marks, shown)
    data = coerce_strings(doc.data, doc.marks)
    diagnostics += _non_finite(data, (), doc.marks, shown)
    diagnostics += validate(data, doc.marks, shown)
    diagnostics += _value_checks(data, doc.marks, shown)
    if has_errors(diagnostics):
        return LoadResult(None, sort_diagnostics(diagnostics), doc.marks)
    return LoadResult(_build(data, path), sort_diagnostics(diagnostics), doc.marks)


def _non_finite(value: object, at: tuple[str | int, ...], marks: Marks, shown: str
                ) -> list[Diagnostic]:
    """YAML's .nan and .inf: JSON Schema bounds do not catch NaN (every comparison is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        line, col = marks.at(at) or (None, None)
        name = ".".join(str(k) for k in at) or "value"
        return [error(f"{name} must be a finite number, not {value}", shown, line, col,
                      field=name, code="not-finite")]
    found: list[Diagnostic] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _non_finite(item, (*at, key), marks, shown)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _non_finite(item, (*at, index), marks, shown)
    return found


def validate_campaign(path: Path) -> LoadResult:
    """``load_campaign`` and then ``check_rules``: everything known without reading every row."""
    from runner.rules import check_rules  # rules reads CSV headers; keep loading light

    loaded = load_campaign(path)
    if loaded.campaign is None:
        return loaded
    found = loaded.diagnostics + check_rules(loaded.campaign, loaded.marks)
    campaign = None if has_errors(found) else loaded.campaign
    return LoadResult(campaign, sort_diagnostics(found), loaded.marks)


def _read_text(path: Path, shown: str) -> tuple[str | None, Diagnostic | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, error("file not found", shown, code="file-unreadable")
    except IsADirectoryError:
        return None, error("is a folder, not a campaign file", shown, code="file-unreadable")
    except PermissionError:
        return None, error("cannot read the file: permission denied", shown,
                           code="file-unreadable")
    except OSError as exc:
        return None, error(f"cannot read the file: {exc.strerror or type(exc).__name__}", shown,
                           code="file-unreadable")
    if len(raw) > MAX_BYTES:
        return None, error(f"the file is larger than {MAX_BYTES:,} bytes: not a campaign", shown,
                           code="file-too-big")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        return None, error(f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                           shown, line, col, code="not-utf8")


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a line of text"
    return f"a single value ({value})"


def _secret_errors(secret_paths: tuple[KeyPath, ...], data: dict[str, Any], marks: Marks,
                   shown: str) -> list[Diagnostic]:
    account = data.get("account")
    named = account.get("api_key_env") if isinstance(account, dict) else None
    if isinstance(named, str) and named:
        where = f"the environment variable {named} (named by account.api_key_env)"
    else:
        where = (f"the environment variable {DEFAULT_KEY_ENV} "
                 "(or the one named by account.api_key_env)")
    found = []
    for key_path in secret_paths:
        line, col = marks.key_at(key_path) or (1, 1)
        message = (f"'{key_path[-1]}' looks like a secret: secrets never go in a campaign file; "
                   f"remove it and put the API key in {where}")
        found.append(error(message, shown, line, col, dotted(key_path), code="secret-in-file"))
    return found


# --- checks of single values the schema cannot make ------------------------------------------

_ZONE: KeyPath = ("sending", "window", "timezone")
_COUNTRY: KeyPath = ("recipients", "default_country")


def _value_checks(data: dict[str, Any], marks: Marks, shown: str) -> list[Diagnostic]:
    """Time zone and country code; run even when the schema found other problems."""
    found = []
    zone = _get(data, _ZONE)
    problem = _zone_problem(zone) if isinstance(zone, str) and 0 < len(zone) <= 64 else None
    if problem is not None:
        found.append(_error_at(problem, _ZONE, marks, shown, code="unknown-timezone"))
    country = _get(data, _COUNTRY)
    well_formed = isinstance(country, str) and len(country) == 2 and country.isalpha()
    if well_formed and country.upper() not in phonenumbers.SUPPORTED_REGIONS:
        found.append(_error_at(f"default_country '{country}' is not a known country code",
                               _COUNTRY, marks, shown, code="unknown-country"))
    return found


def _get(data: Any, key_path: KeyPath) -> Any:
    for key in key_path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _error_at(message: str, key_path: KeyPath, marks: Marks, shown: str, *, code: str
              ) -> Diagnostic:
    line, col = marks.at(key_path) or (1, 1)
    return error(message, shown, line, col, dotted(key_path), code=code)


def _zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        names = _zone_names()
        near = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.6)
        hint = (f" (did you mean '{names[near[0]]}'?)" if near
                else " (an IANA name such as Asia/Kolkata)")
        return f"unknown time zone '{name}'{hint}"
    return None


@cache
def _zone_names() -> dict[str, str]:
    """Zone names by their lower-case form, for suggestions (case-insensitive)."""
    skip = {"localtime", "posixrules", "Factory"}
    return {z.lower(): z for z in sorted(zoneinfo.available_timezones()) if z not in skip}


def _build(data: dict[str, Any], path: Path) -> Campaign:
    folder = path.parent
    account_data = data["account"]
    account = Account(
        region=account_data["region"],
        sid=account_data.get("sid"),
        api_key_env=account_data.get("api_key_env", DEFAULT_KEY_ENV),
    )
    message = _message(data["message"])
    sending_data = data.get("sending", {})
    report = data.get("report")
    return Campaign(
        path=path,
        name=data["name"],
        account=account,
        message=message,
        recipients=_recipients(data["recipients"], folder),
        sending=_sending(sending_data, _window(sending_data, account, message)),
        report=_resolve(folder, report) if report is not None else None,
        dlt=_dlt(data.get("dlt"), folder),
        budget=_budget(data.get("budget")),
    )


def _dlt(data: dict[str, Any] | None, folder: Path) -> DltSpec | None:
    if data is None:
        return None
    return DltSpec(_resolve(folder, data["templates"]),
                   int(data.get("max_variable_length", DEFAULT_VARIABLE_LENGTH)))


def _budget(data: dict[str, Any] | None) -> Budget | None:
    if data is None:
        return None
    price = data.get("price_per_part")
    max_parts = data.get("max_parts")
    return Budget(int(max_parts) if max_parts is not None else None,
                  float(price) if price is not None else None, str(data.get("currency", "")))


def _resolve(folder: Path, value: str) -> Path:
    return folder / Path(value).expanduser()


def _message(data: dict[str, Any]) -> MessageSpec:
    return MessageSpec(
        sender=data["sender"],
        type=data["type"],
        flash=bool(data.get("flash", False)),
        body=data.get("body"),
        # An unquoted id is a YAML integer (exact: Python's are unbounded); the schema allows it.
        template_id=str(data["template_id"]) if "template_id" in data else None,
        entity_id=data.get("entity_id"),
        unicode=data.get("unicode"),
        smart_encoding=bool(data.get("smart_encoding", False)),
    )


def _recipients(data: dict[str, Any], folder: Path) -> RecipientsSpec:
    country = data.get("default_country")
    exclude = data.get("exclude", ())
    if isinstance(exclude, str):
        exclude = [exclude]
    return RecipientsSpec(
        source=_resolve(folder, data["source"]),
        phone_column=data.get("phone_column", "phone"),
        default_country=country.upper() if country is not None else None,
        exclude=tuple(_resolve(folder, item) for item in exclude),
        max_invalid_ratio=float(data.get("max_invalid_ratio", 0.10)),
    )


def _window(data: dict[str, Any], account: Account, message: MessageSpec) -> Window | None:
    value = data.get("window")
    if value is None:
        if account.region == "IN" and message.type == "MKT":
            return TRAI_WINDOW
        return None
    if value == "always":
        return None
    return Window(_time(value["start"]), _time(value["end"]), value["timezone"])


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _sending(data: dict[str, Any], window: Window | None) -> SendingSpec:
    defaults = SendingSpec()
    return SendingSpec(
        batch_size=int(data.get("batch_size", defaults.batch_size)),
        requests_per_second=float(data.get("requests_per_second", defaults.requests_per_second)),
        concurrency=int(data.get("concurrency", defaults.concurrency)),
        max_attempts=int(data.get("max_attempts", defaults.max_attempts)),
        on_ambiguous=data.get("on_ambiguous", defaults.on_ambiguous),
        window=window,
        timeout=float(data.get("timeout", defaults.timeout)),
        max_duration=float(data.get("max_duration", defaults.max_duration)),
        encoding=data.get("encoding", defaults.encoding),
    )
