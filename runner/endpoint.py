"""Where and how to call Kaleyra: the account SID, the API key and the base URL, checked.

``resolve_endpoint`` reads the SID from the campaign (or ``$KALEYRA_SID``), the key from the
variable the campaign names, and the base URL from the region (or ``$KALEYRA_BASE_URL``, plain
http:// only for loopback hosts); what is missing or unsafe is an InputError naming the field.

The API key lives in a ``Secret``: printing, logging or pickling it never shows the value, and
only the transport (``runner.kaleyra``) reveals it, into the request header.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from runner.errors import InputError, display_path, error
from runner.model import API_DOMAINS, Account, Campaign

SID_ENV: Final = "KALEYRA_SID"
BASE_URL_ENV: Final = "KALEYRA_BASE_URL"

_SID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")  # how environment variables are named


class Secret:
    """The API key. Printing, logging or repr() shows ``***``; only ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key to disk; nobody should need it.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str  # "https://api.in.kaleyra.io" or $KALEYRA_BASE_URL, no trailing slash
    sid: str
    api_key: Secret

    @property
    def sms_url(self) -> str:
        return f"{self.base_url}/v1/{self.sid}/sms"

    @property
    def status_url(self) -> str:
        return f"{self.base_url}/v1/{self.sid}/sms/status"


def resolve_endpoint(campaign: Campaign, env: Mapping[str, str]) -> Endpoint:
    """Where and how to call: raises InputError naming what is missing or unsafe."""
    return resolve_account_endpoint(campaign.account, display_path(campaign.path), env)


def resolve_account_endpoint(account: Account, path: str, env: Mapping[str, str]) -> Endpoint:
    """``resolve_endpoint`` from the account alone (`campaign status` has only the journal's
    settings); ``path`` is the campaign file as shown in messages."""
    sid = account.sid or env.get(SID_ENV, "").strip()
    if not sid:
        msg = f"no account SID: set account.sid in the campaign or the {SID_ENV} variable"
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.sid",
                                                         code="account-sid")])
    if not _SID_RE.fullmatch(sid):
        msg = f"account SID {sid!r} is not valid (letters, digits, '_' and '-' only)"
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.sid",
                                                         code="account-sid")])
    var = account.api_key_env
    key = env.get(var, "").strip()
    if not key:
        # Name the variable only when it looks like one: a key pasted there must not be echoed.
        named = var if _ENV_NAME_RE.fullmatch(var) else "named by account.api_key_env"
        msg = f"the API key variable {named} is not set (or empty)"
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.api_key_env",
                                                         code="api-key")])
    if not key.isprintable() or not key.isascii():
        msg = (f"the API key in {var if _ENV_NAME_RE.fullmatch(var) else 'its variable'} holds "
               "a control or non-ASCII character (a stray newline?); set it again")
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.api_key_env",
                                                         code="api-key")])
    base = env.get(BASE_URL_ENV, "").strip()
    base_url = check_base_url(base) if base else f"https://{API_DOMAINS[account.region]}"
    return Endpoint(base_url=base_url, sid=sid, api_key=Secret(key))


def check_base_url(url: str) -> str:
    """A safe base URL without trailing slash; http:// only for loopback hosts."""
    where = f"{BASE_URL_ENV}={url!r}"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise InputError(f"{where} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"{where} must be an http(s) URL such as https://api.in.kaleyra.io")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{BASE_URL_ENV} must not contain a user name or password")
    if parts.query or parts.fragment:
        raise InputError(f"{where} must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback(host):
        raise InputError(
            f"{where} uses plain http:// for a host that is not loopback; "
            "use https:// (http is accepted only for 127.0.0.1, ::1 and localhost)"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
