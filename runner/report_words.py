"""The words and groupings both renderings of a report summary use (HTML and markdown), so the
page and the CI summary say the same thing in the same terms."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from runner.report_counters import EPOCH, Bucket
from runner.report_summary import NOT_A_NUMBER, ReportSummary

STATUS_MEANINGS: dict[str, str] = {
    "sent": "accepted by Kaleyra for delivery",
    "failed": "refused by Kaleyra (or by the network until the retries ran out): not sent",
    "unknown": "no clear answer: may or may not have been sent, and is not resent unless asked",
    "invalid": "not a valid phone number (or a bad row): skipped",
    "duplicate": "the same number as an earlier row: that row's message is the one sent",
    "suppressed": "on an opt-out (exclude) list: skipped",
    "pending": "not sent yet (the run stopped or the send window closed): a rerun sends it",
    "expired": "not sent before the campaign's expiry time",
    "dry_run": "would be sent (a dry run: nothing was sent)",
}

# What the error codes in a report mean, for a reader who does not know Kaleyra's catalogue.
CODE_MEANINGS: dict[str, str] = {
    "HTTP401": "Kaleyra refused the API key (wrong key, or a key of another account or region)",
    "HTTP403": "Kaleyra refused the API key or the SID for this request",
    "HTTP429": "too many requests: Kaleyra asked to slow down, and the retries ran out",
    "HTTP500": "Kaleyra's server failed while answering: the message may have been sent",
    "HTTP502": "a gateway in front of Kaleyra failed",
    "HTTP503": "Kaleyra was unavailable, and the retries ran out",
    "HTTP504": "a gateway in front of Kaleyra timed out",
    "TIMEOUT": "no answer in time after sending: the message may have been sent",
    "CONNECT_TIMEOUT": "could not reach Kaleyra in time: not sent",
    "CONNECT": "could not connect to Kaleyra: not sent",
    "TLS": "the secure connection to Kaleyra failed: not sent",
    "DISCONNECTED": "Kaleyra closed the connection before answering: may have been sent",
    "RESET": "the connection was cut after sending: may have been sent",
    "PROTOCOL": "Kaleyra's answer could not be read: may have been sent",
    "BAD_RESPONSE": "Kaleyra's answer was not what its API documents: may have been sent",
    "IN_FLIGHT": "the run stopped while this request was on its way: may have been sent",
    "NO_ID": "Kaleyra answered without a message id for this number",
    "E103": "Kaleyra had an internal error, and the retries ran out",
    "E400": "promotional bulk SMS must use the MKT type",
    "E401": "the message is too long",
    "E402": "outside the allowed sending hours",
    "E403": "Kaleyra said to try again, and the retries ran out",
    "E404": "OTP messages go to one number at a time",
    "E405": "more than 100 numbers in one request",
    "E406": "no valid number in the request",
    "E413": "Kaleyra's validation refused the request",
    "E604": "the text needs Unicode and the request did not say so",
    "E606": "the flash setting is not valid",
    "E615": "this message type is not enabled for the account",
    "E619": "the sender id is not valid",
    "E621": "the sender id is not registered",
    "E622": "the sender id is not approved",
    "E623": "the route is not enabled for the account",
    "E624": "the route is not enabled for the account",
    "E625": "the route is not enabled for the account",
}

DELIVERY_MEANINGS: dict[str, str] = {
    "delivered": "the phone received it",
    "not delivered": "Kaleyra says it will not arrive (UnDelivered, Failed, NotSent)",
    "not final yet": "Kaleyra has no final word yet: run campaign status again later",
    "not checked yet": "campaign status has not asked about these rows yet",
}


def code_meaning(code: str) -> str:
    if code in CODE_MEANINGS:
        return CODE_MEANINGS[code]
    if code.startswith("E6"):
        return "Kaleyra refused a field of the request"
    if code.startswith("E4"):
        return "Kaleyra refused the request"
    return ""


@cache
def country_name(region: str) -> str:
    if region == NOT_A_NUMBER:
        return "not a valid number"
    import pycountry  # ISO 3166 names, for people who do not read region codes

    found = pycountry.countries.get(alpha_2=region) if len(region) == 2 else None
    if found is None:
        return {"ZZ": "unknown country", "001": "international service", "XK": "Kosovo",
                "TA": "Tristan da Cunha", "AC": "Ascension Island"}.get(region, region)
    return str(getattr(found, "common_name", None) or found.name)


def count(n: int) -> str:
    return f"{n:,}"


def plural(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def share(n: int, total: int) -> str:
    """'12.5%', with '<0.1%' rather than a misleading '0.0%' for a few rows out of millions."""
    if total <= 0 or n == 0:
        return "0%"
    value = 100 * n / total
    if value < 0.1:
        return "<0.1%"
    return f"{value:.1f}%".replace(".0%", "%")


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def span(minutes: int) -> str:
    if minutes % 1440 == 0:
        return "day" if minutes == 1440 else f"{minutes // 1440} days"
    if minutes % 60 == 0:
        return "hour" if minutes == 60 else f"{minutes // 60} hours"
    return "minute" if minutes == 1 else f"{minutes} minutes"


def limit_per_bar(summary: ReportSummary, width: int) -> float | None:
    """The configured rate as requests in one bar of ``width`` minutes."""
    return None if summary.rate is None else summary.rate * 60 * width


NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)


def bars(summary: ReportSummary, max_bars: int = 120) -> tuple[int, list[Bucket]]:
    """The timeline as at most ``max_bars`` consecutive buckets (empty ones included), each
    ``width`` minutes wide: what the chart draws and the tables list."""
    base = summary.bucket_minutes
    if not summary.timeline:
        return base, []
    minute = timedelta(minutes=1)
    first, last = summary.timeline[0].start, summary.timeline[-1].start
    length = (last - first) // minute + base
    width = next((w * base for w in NICE_WIDTHS if length <= w * base * max_bars),
                 base * -(-length // (base * max_bars)))
    step = timedelta(minutes=width)
    origin = EPOCH + (first - EPOCH) // step * step  # whole hours for an hour, ...
    n = (last - origin) // step + 1
    sent, requests = [0] * n, [0] * n
    for b in summary.timeline:
        i = (b.start - origin) // step
        sent[i] += b.sent
        requests[i] += b.requests
    return width, [Bucket(origin + i * step, sent[i], requests[i]) for i in range(n)]
