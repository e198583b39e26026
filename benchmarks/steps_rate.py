"""Step rate: achieved request and message rates against the configured ones, at the sandbox."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import gendata
from common import UNLIMITED_RATE, Context, Section, Target, expect, forget_journal, send_argv

PERSONAL_BODY = "Hi {name}, your order has shipped. - KLRHXA"  # distinct_csv: every name differs


@dataclass(frozen=True, slots=True)
class RatePlan:
    """One run: a limit on requests a second, or on messages a second (numbers per request
    counted), with batches of ``batch`` numbers at most."""

    requests: int | None  # requests_per_second; None: unlimited (the schema's ceiling)
    messages: int | None  # messages_per_second
    batch: int
    personalised: bool = False  # every text differs: one number a request

    @property
    def limit(self) -> int:
        return self.messages if self.messages is not None else self.requests or UNLIMITED_RATE

    @property
    def unit(self) -> str:
        return "messages" if self.messages is not None else "requests"

    @property
    def name(self) -> str:
        kind = "mps" if self.messages is not None else "rps"
        return f"{kind}-{self.limit}-{self.batch}{'-personal' if self.personalised else ''}"

    def rows(self, seconds: int) -> int:
        """Distinct numbers enough for about ``seconds`` of sending at full speed."""
        if self.messages is not None:
            return self.messages * seconds
        return (self.requests or 0) * seconds * (1 if self.personalised else self.batch)

    def concurrency(self) -> int:
        """Enough workers that the loopback's latency never holds the rate back."""
        per_second = self.requests or math.ceil(self.limit / (1 if self.personalised
                                                              else self.batch))
        return min(64, max(16, per_second // 15))


PLAN = (
    RatePlan(50, None, 100), RatePlan(166, None, 100), RatePlan(1000, None, 100),
    RatePlan(None, 5000, 100),  # 50 requests of 100 a second
    RatePlan(None, 166, 100),  # Kaleyra's published 50,000 per 5 minutes; batches shrink to fit
    RatePlan(None, 1000, 10),  # smaller batches: 100 requests a second
    RatePlan(None, 200, 100, personalised=True),  # one number a request
)


def arrivals_stats(times: Sequence[float], rate: int) -> tuple[float, float, int]:
    """(achieved a second, least seconds between arrival i and i + N, most arrivals in any
    1-second window [t, t + 1)), for a limit of N = ``rate`` a second.

    A limiter at N a second must keep arrival i + N at least a second after arrival i; at full
    speed the gap is exactly one second. Achieved is N over the mean of those gaps, which
    counts bursts of N at the start of each second and an even stream alike. The least gap
    under one second is the same fact as a window holding more than N. For messages, each
    request's numbers count as that many arrivals at its time.
    """
    times = sorted(times)
    n = rate
    if len(times) <= n:
        return float("nan"), float("nan"), len(times)
    gaps = [times[i + n] - times[i] for i in range(len(times) - n)]
    achieved = n / (sum(gaps) / len(gaps))
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return achieved, min(gaps), most


@dataclass(frozen=True, slots=True)
class RateResult:
    plan: RatePlan
    requests: int
    numbers: int
    achieved: float
    least_gap: float
    most: int

    @property
    def share(self) -> float:
        return self.achieved / self.plan.limit

    @property
    def never_above(self) -> bool:
        return self.most <= self.plan.limit


def run_plan(ctx: Context, plan: RatePlan, seconds: int) -> RateResult:
    rows = plan.rows(seconds)
    source = gendata.distinct_csv(ctx.data, rows)
    sending: dict[str, object] = {"requests_per_second": plan.requests or UNLIMITED_RATE,
                                  "batch_size": plan.batch, "concurrency": plan.concurrency()}
    if plan.messages is not None:
        sending["messages_per_second"] = plan.messages
    files = gendata.write_campaign(ctx.work, f"rate-{plan.name}", source, sending=sending,
                                   body=PERSONAL_BODY if plan.personalised else None)
    report = ctx.work / f"rate-{plan.name}.report.csv"
    forget_journal(report)
    sb = ctx.sandbox()
    sb.reset()
    ran = ctx.run(f"rate-{plan.name}", send_argv(files.yaml, report), env=sb.env())
    expect(ran.code == 0, f"send {plan.name} exited {ran.code}: {ran.stderr[-2000:]}")
    requests = sb.record()["requests"]
    answered = [r for r in requests if r["status"] == 200]
    numbers = sum(int(r["count"]) for r in answered)
    expect(numbers == rows and len(answered) == len(requests),
           f"{plan.name}: {len(answered)} requests answered 200 for {numbers:,} numbers, "
           f"expected {rows:,} numbers and no other answer")
    if plan.messages is not None:  # a message is an arrival at its request's time
        times = [float(r["at"]) for r in answered for _ in range(int(r["count"]))]
    else:
        times = [float(r["at"]) for r in answered]
    achieved, least, most = arrivals_stats(times, plan.limit)
    return RateResult(plan, len(answered), numbers, achieved, least, most)


def step_rate(ctx: Context) -> None:
    seconds = 2 if ctx.quick or ctx.sizes_given else 10
    results = [run_plan(ctx, plan, seconds) for plan in PLAN]
    section = Section(
        f"Achieved rate (about {seconds} s of sending each)",
        ["limit", "batch", "concurrency", "requests", "numbers", "achieved a second",
         "achieved / limit (target >= 98%)", "least gap i to i+N ms", "most in any 1 s",
         "never above the limit"])
    for r in results:
        p = r.plan
        batch = f"{p.batch} (texts differ: 1)" if p.personalised else str(p.batch)
        section.rows.append([
            f"{p.limit:,} {p.unit}/s", batch, str(p.concurrency()), f"{r.requests:,}",
            f"{r.numbers:,}", f"{r.achieved:,.1f}", f"{r.share:.1%}",
            f"{r.least_gap * 1000:.1f}", f"{r.most:,}", "yes" if r.never_above else "NO"])
    section.notes.append(
        "arrival times are the sandbox's (GET /_sandbox/record), stamped when its handler "
        "starts; achieved: N over the mean time from arrival i to arrival i + N (1 s at "
        "full speed: bursts of N at the start of each second are what a sliding-window "
        "limiter does); a least gap under 1000 ms is a 1-second window with more than N")
    section.notes.append(
        "messages a second: each request's numbers (the sandbox's count of what it accepted) "
        "are that many arrivals at the request's time; the request rate is unlimited there "
        f"({UNLIMITED_RATE:,}/s, the schema's ceiling)")
    ctx.add(section)
    for unit in ("requests", "messages"):
        mine = [r for r in results if r.plan.unit == unit]
        worst = min(r.share for r in mine)
        above = [r for r in mine if not r.never_above]
        limits = ", ".join(f"{r.plan.limit:,}/{r.plan.batch}" + ("p" if r.plan.personalised
                                                                else "") for r in mine)
        ctx.targets.append(Target(
            5, f"achieved {unit} a second >= 98% of the limit, never above it in any second "
            f"(limit/batch: {limits}; p: personalised)",
            f"worst {worst:.1%}; " + ("never above" if not above else
                                      "above in " + ", ".join(r.plan.name for r in above)),
            worst >= 0.98 and not above))
