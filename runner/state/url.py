"""State URLs: which store a ``--state`` value names, and how to show it without its password."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
MASK = "***"

# The password part of any URL-looking text (user:password@), for messages we did not write.
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@\s]*)@", re.I)


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in POSTGRES_SCHEMES if "://" in url else False


def url_password(url: str) -> str:
    """The password the URL carries ('' for none), decoded as the driver will use it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return ""
    return unquote(password) if password else ""


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (user, host, port and database kept).

    A ``password=`` in the query string is masked too. Text that is not a URL is returned with
    anything that looks like ``user:password@`` masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", url)
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = re.sub(r"(?i)(^|&)(password)=[^&]*", rf"\1\2={MASK}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message, say) with the URL's password nowhere in it."""
    text = text.replace(url, mask_url(url))
    for secret in {url_password(url), _raw_password(url)}:
        if secret:
            text = text.replace(secret, MASK)
    return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)


def _raw_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""
