"""What composing messages costs a row: placeholders, DLT template matching, preview cells.

    python benchmarks/messages.py              # 100k rows
    python benchmarks/messages.py --rows 20000

Prints microseconds a row for each step alone (best of five, over the same rows) and for the
whole check pass (``check_campaign``) over a generated CSV: a body without placeholders (the
path that must not notice any of this), a personalised body, and the same with a DLT template.
Nothing is asserted; this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from runner.checker import check_campaign
from runner.compose import Composer
from runner.dltmatch import Matcher
from runner.message import render
from runner.preview import Preview

BODY = "Hi {name}, your order {order} ships to {city} today. - KLRHXA"
TEMPLATE = "Hi {#var#}, your order {#var#} ships to {#var#} today. - KLRHXA"
RISKY_BODY = "Hi {name}, your order {order}, {order} - {city} today. - KLRHXA"
NAMES = ("Aarav", "Diya", "Vihaan", "Ananya", "Ishaan", "Kavya", "Arjun", "Meera")
CITIES = ("Mumbai", "Pune", "Delhi", "Chennai", "Kolkata", "Bengaluru")


def rows(n: int) -> list[dict[str, str]]:
    rng = random.Random(5)
    return [{"phone": f"+9198{i:08d}", "name": rng.choice(NAMES), "order": f"OD-{i:07d}",
             "city": rng.choice(CITIES)} for i in range(n)]


def per_row(step: Callable[[], object], n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def micro(n: int) -> list[tuple[str, float]]:
    data = rows(n)
    plain = Composer(BODY)
    matcher = Matcher(TEMPLATE, 30)
    with_dlt = Composer(BODY, matcher=matcher, template_id="1107")
    # Variables apart by a comma or a space: matched piece by piece, not by one regex.
    risky = Matcher("Hi {#var#}, your order {#var#}, {#var#} - {#var#} today. - KLRHXA", 30)
    assert risky.risky
    texts = [render(BODY, r) for r in data]
    risky_texts = [render(RISKY_BODY, r) for r in data[:20000]]
    preview = Preview()
    return [
        ("render (message.render, as before)", per_row(lambda: [render(BODY, r) for r in data],
                                                       n)),
        ("compose, placeholders only", per_row(lambda: [plain.compose(r) for r in data], n)),
        ("compose with the DLT template", per_row(lambda: [with_dlt.compose(r) for r in data],
                                                  n)),
        ("Matcher.matches alone", per_row(lambda: [matcher.matches(t) for t in texts], n)),
        ("Matcher.matches, piecewise (risky template)", per_row(
            lambda: [risky.matches(t) for t in risky_texts], min(n, 20000), repeat=3)),
        ("preview cells, every text new", per_row(
            lambda: [Preview().cells(t) for t in texts[:20000]], min(n, 20000), repeat=3)),
        ("preview cells, cached text", per_row(lambda: [preview.cells(texts[0]) for _ in data],
                                               n)),
    ]


def end_to_end(n: int, folder: Path) -> list[tuple[str, float]]:
    data = rows(n)
    csv = folder / "people.csv"
    with csv.open("w", encoding="utf-8") as f:
        f.write("phone,name,order,city\n")
        f.writelines(f"{r['phone']},{r['name']},{r['order']},{r['city']}\n" for r in data)
    (folder / "templates.csv").write_text(
        f'Template ID,Template Content,Template Type,Header\n110716000000000001,"{TEMPLATE}",'
        "Service Implicit,KLRHXA\n110716000000000002,\"Your order has shipped. - KLRHXA\","
        "Service Implicit,KLRHXA\n", encoding="utf-8")
    cases = {
        "fixed body, no dlt": ("Your order has shipped. - KLRHXA", "110716000000000002", False),
        "fixed body, dlt": ("Your order has shipped. - KLRHXA", "110716000000000002", True),
        "personalised, no dlt": (BODY, "110716000000000001", False),
        "personalised, dlt": (BODY, "110716000000000001", True),
    }
    out = []
    for label, (body, template_id, dlt) in cases.items():
        path = folder / f"{label.replace(' ', '').replace(',', '-')}.yaml"
        path.write_text(
            "version: 1\nname: bench\naccount: {region: IN}\nmessage:\n  sender: KLRHXA\n"
            f"  type: TXN\n  body: \"{body}\"\n  template_id: '{template_id}'\n"
            "  entity_id: '1101'\n" + ("dlt: {templates: templates.csv}\n" if dlt else "")
            + "recipients: {source: people.csv, default_country: IN}\n", encoding="utf-8")
        check_campaign(path)  # warm: imports, the file cache
        seconds = per_row(partial(check_campaign, path), n, repeat=3)
        out.append((f"check pass, {label}", seconds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{args.rows:,} rows; microseconds a row (best run)")
    for label, us in micro(args.rows):
        print(f"  {label:<42} {us:8.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, us in end_to_end(args.rows, Path(tmp)):
            print(f"  {label:<42} {us:8.2f}")


if __name__ == "__main__":
    main()
