"""`campaign report --html` in a real browser: the sandbox example's run (a send with faults, then
`campaign status`) made into a page that headless Chromium opens from file:// with every network
path closed; the charts must paint and the figures must be the CSV's.

Skipped when `chromium` is not installed, unless CAMPAIGN_REQUIRE_CHROMIUM=1 (CI sets it).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import phonenumbers
import pytest
from PIL import Image

from runner.cli import main
from runner.faults import SANDBOX_SID, Faults
from runner.report_html import COLOURS
from runner.reportread import read_report
from runner.sandbox_thread import SandboxThread

KEY = "sk-test-report-4d1e"
CAMPAIGN = """\
version: 1
name: report-browser-test
account:
  region: SG
  sid: SANDBOX
message:
  sender: ACME
  type: DEFAULT
  body: Hello from the sandbox
recipients:
  source: people.csv
  default_country: SG
  exclude: [optouts.csv]
sending:
  batch_size: 10
  requests_per_second: 1000
  max_attempts: 1
  window: always
"""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CAMPAIGN_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed, and CAMPAIGN_REQUIRE_CHROMIUM=1 requires it "
                        "(apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); set "
                    "CAMPAIGN_REQUIRE_CHROMIUM=1 to make this a failure")
    return found


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium with every way out closed: no proxy, no DNS, no background services."""
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars",
            f"--user-data-dir={profile}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxThread]:
    # Every 4th request answers 500 (rows `unknown`), every 7th 503 (no retries left: `failed`).
    with SandboxThread(region="SG", api_key=KEY, sid=SANDBOX_SID,
                       faults=Faults(every_500=4, every_503=7)) as thread:
        monkeypatch.setenv("KALEYRA_BASE_URL", thread.base_url)
        monkeypatch.setenv("KALEYRA_API_KEY", KEY)
        yield thread


def run_campaign(tmp_path: Path) -> Path:
    """A real send to the sandbox, then `campaign status`: the report as people get it."""
    phones = [f"+659100{i:04d}" for i in range(90)]
    phones += ["+447400123456", "+12025550143", "+919820123456", "12345", "+6591000003"]
    (tmp_path / "people.csv").write_text("phone\n" + "\n".join(phones) + "\n")
    (tmp_path / "optouts.csv").write_text("phone\n+6591000050\n")
    (tmp_path / "c.yaml").write_text(CAMPAIGN)
    report = tmp_path / "report.csv"
    err = io.StringIO()
    code = main(["send", str(tmp_path / "c.yaml"), "--report", str(report)],
                stdout=io.StringIO(), stderr=err)
    assert code == 3, err.getvalue()  # some failed, some unknown
    code = main(["status", str(report)], stdout=io.StringIO(), stderr=err)
    assert code == 3, err.getvalue()  # the sandbox does not deliver numbers ending in 7
    return report


class Figures(HTMLParser):
    """What the page shows: data-count of elements by id / data-name, and the SVG drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.bars = 0
        self.by_row: dict[str, dict[str, int]] = {}  # row id -> data-name -> count
        self.countries: dict[str, list[int]] = {}
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        if tag == "rect" and a.get("class") == "bar":
            self.bars += 1
        if tag == "tr":
            self._row = a.get("id") or (f"country-{a['data-region']}"
                                        if "data-region" in a else None)
        if self._row and "data-count" in a:
            value = int(a["data-count"] or 0)
            self.by_row.setdefault(self._row, {})[a.get("data-name") or str(
                len(self.by_row.get(self._row, {})))] = value


def colour_area(picture: Image.Image, colour: str) -> int:
    """Pixels of exactly ``colour``: the inside of the bars drawn in it."""
    want = tuple(bytes.fromhex(colour.lstrip("#")))
    return sum(n for n, rgb in picture.getcolors(maxcolors=1 << 20) or () if rgb == want)


def test_the_page_renders_in_chromium_and_shows_the_csvs_figures(
        tmp_path: Path, sandbox: SandboxThread) -> None:
    browser = chromium()
    report = run_campaign(tmp_path)
    page = tmp_path / "page.html"
    out = io.StringIO()
    assert main(["report", str(report), "--html", str(page), "--markdown"], stdout=out,
                stderr=io.StringIO()) == 0

    dom = headless(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shown = Figures()
    shown.feed(dom.stdout)
    assert shown.tags["svg"] >= 6 and shown.bars >= 20  # every chart is in the DOM after load

    rows = list(read_report(report))
    statuses = Counter(r["status"] for r in rows)
    assert statuses["sent"] and statuses["failed"] and statuses["unknown"]
    for status in ("sent", "failed", "unknown", "invalid", "duplicate", "suppressed", "pending",
                   "expired"):
        assert shown.by_row[f"status-{status}"][status] == statuses[status], status
    assert shown.by_row["status-total"]["total"] == len(rows)
    words = Counter(r["delivery_status"] for r in rows if r["status"] == "sent")
    assert shown.by_row["delivery-delivered"]["delivered"] == words["Delivered"]
    assert shown.by_row["delivery-not-delivered"]["not delivered"] == words["UnDelivered"]
    regions = Counter(phonenumbers.region_code_for_number(phonenumbers.parse(r["phone"]))
                      for r in rows if r["phone"].startswith("+"))
    for region, n in regions.items():
        assert shown.by_row[f"country-{region}"]["0"] == n, region
    assert "| `sent` | " + f"{statuses['sent']:,} |" in out.getvalue()  # markdown: same figures

    shot = tmp_path / "page.png"
    done = headless(browser, tmp_path / "profile", "--window-size=1000,2400",
                    f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        picture = image.convert("RGB")
    assert picture.size == (1000, 2400)
    assert len(picture.getcolors(maxcolors=1 << 20) or ()) > 50  # not a blank page
    # The bars painted: the status colours cover real areas of the picture.
    assert colour_area(picture, COLOURS["sent"]) > 5000
    assert colour_area(picture, COLOURS["failed"]) > 300
    assert colour_area(picture, COLOURS["unknown"]) > 300
