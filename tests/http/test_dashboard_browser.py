"""The dashboard in a real headless Chromium (Debian's, driven by Playwright: nothing downloads a
browser) against a live server: it shows the personas, the memories a chat just made (searched
and forgotten), the grid picture, the chat's interest; with keys it asks for an admin key.

Screenshots go to $MEM8_SCREENSHOTS when set (to look at them), else the test's folder."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mem8 import heatmap
from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.scope import tenant_of
from tests.http.test_dashboard import WEDDING, new_key, remembering, say
from tests.support.server import RunningServer, running_server

CHROMIUM = os.environ.get("MEM8_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CAT = "I adopted a grey cat called Pixel last week and she sleeps on my keyboard"
WAIT_MS = 20_000
NO_VALUE = "\u2013"  # what the page shows before a value
DIGITS = re.compile(r"^\d+$")  # a gauge read from the real /metrics
GRID_PIXELS = 512  # the default 256-cell grid, 2 pixels a cell (loaded: naturalWidth is 0 before)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): ./scripts/setup.sh installs Debian's chromium "
            "(apt-get install chromium), or set MEM8_CHROMIUM to its path"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[RunningServer]:
    chosen = remembering(settings)
    chosen = dataclasses.replace(chosen, sim_runs=str(tmp_path / "runs"))
    with running_server(chosen, dict.fromkeys(chosen.personas, ScriptedLLM())) as server:
        yield server


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("MEM8_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def sim_run(folder: Path) -> None:
    """A finished run as `mem8 sim run --out` leaves it (its report, one field picture)."""
    run = folder / "party-seed7"
    run.mkdir(parents=True)
    record = {"name": "dinner-party", "seed": 7, "backend": "scripted", "lines": 12}
    (run / "run.json").write_text(json.dumps({**record, "expectations": {"held": 3, "failed": 0}}))
    picture = heatmap.heatmap(heatmap.log_scaled(_bump()), [], 4)
    (run / "field-1.png").write_bytes(heatmap.png(picture))
    (run / "report.html").write_text(
        '<title>dinner-party</title><h1>dinner-party</h1><img id="field" src="field-1.png">'
    )


def _bump() -> npt.NDArray[np.float64]:
    grid = np.mgrid[0:16, 0:16]
    return np.exp(-((grid[0] - 8.0) ** 2 + (grid[1] - 8.0) ** 2) / 8.0)


def test_the_dashboard_shows_and_forgets_a_memory_just_made(
    served: RunningServer, page: Page, tmp_path: Path
) -> None:
    say(served, "mem8-dummy-key", WEDDING)
    answered = say(served, "mem8-dummy-key", CAT)
    interest = float(answered.headers["x-mem8-interest"])
    sim_run(Path(served.settings.sim_runs))
    page.goto(served.root + "/dashboard")

    personas = page.locator("#personas tbody tr")
    expect(personas).to_have_count(3)
    counselor = page.locator('#personas tr[data-persona="mem8-counselor-v1"]')
    expect(counselor).to_contain_text("Empathetic Counselor")
    expect(counselor).to_contain_text("0.95")  # agreeableness
    expect(counselor).to_contain_text("scripted:llama2:latest")

    expect(page.locator("#grid")).to_have_js_property("naturalWidth", GRID_PIXELS)
    newest = page.locator("#recent tbody tr").first
    expect(newest.locator("td.interest")).to_have_text(f"{interest:.3f}")
    expect(newest).to_contain_text("yes")
    expect(page.locator("#recent-chart circle")).to_have_count(2)
    expect(page.locator("#metrics-note")).to_contain_text("rates between scrapes")  # real /metrics
    expect(page.locator("#metrics .spark")).to_have_count(10)
    expect(page.locator('#metrics .spark[data-series="mailbox"] .value')).to_have_text(DIGITS)
    expect(page.locator("#sims tbody tr")).to_contain_text("dinner-party")

    expect(page.locator("#tenant")).to_have_value(tenant_of("mem8-dummy-key"))
    expect(page.locator("#memories tbody tr").first).to_be_visible()
    page.fill("#query", "a cat called Pixel")
    page.click("#search")
    found = page.locator("#memories tbody tr").first
    expect(found).to_contain_text("Pixel")
    screenshot(page, tmp_path, "dashboard.png")

    memory_id = found.get_attribute("data-memory")
    page.once("dialog", lambda dialog: dialog.accept())
    found.locator("button.forget").click()
    expect(page.locator(f'#memories tr[data-memory="{memory_id}"]')).to_have_count(0)
    expect(page.locator("#memories-note")).to_contain_text(f"forgot {memory_id}")
    gone = httpx.get(
        f"{served.base_url}/memories/{memory_id}",
        headers={"Authorization": "Bearer mem8-dummy-key"},
        timeout=10,
    )
    assert gone.status_code == 404


def test_with_keys_the_dashboard_asks_for_an_admin_key(
    served: RunningServer, page: Page, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = new_key(served.settings, "root", capsys, "--admin")
    alice = new_key(served.settings, "alice", capsys)
    say(served, alice, WEDDING)
    sim_run(Path(served.settings.sim_runs))
    page.goto(served.root + "/dashboard")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()
    expect(page.locator("#access-why")).to_contain_text("Incorrect API key")

    page.fill("#key", alice)
    page.click("#key-form button")
    expect(page.locator("#access-why")).to_contain_text("needs an admin key")
    expect(page.locator("#board")).to_be_hidden()
    screenshot(page, tmp_path, "dashboard-key.png")

    page.fill("#key", admin)
    page.click("#key-form button")
    expect(page.locator("#board")).to_be_visible()
    expect(page.locator("#personas tbody tr")).to_have_count(3)
    page.select_option("#tenant", "alice")
    expect(page.locator("#memories tbody")).to_contain_text("Lisbon")
    expect(page.locator("#grid")).to_have_js_property("naturalWidth", GRID_PIXELS)

    # the report opens from memory, fetched with the key a link cannot carry
    with page.context.expect_page() as opening:
        page.click("#sims tbody a")
    report = opening.value
    expect(report.locator("#field")).to_have_js_property("naturalWidth", 64)  # 16 cells, 4 px
    expect(report.locator("h1")).to_have_text("dinner-party")


def exposition(scrape: int) -> str:
    """/metrics as prometheus-client writes it, the counters grown by `scrape` steps: 10
    requests, 50 tokens, 2 imprints and 4 recalls a step, request latencies of 0.1-0.25 s."""
    n = scrape
    chat = 'route="/v1/chat/completions"'
    counselor = 'persona="mem8-counselor-v1"'
    lines = [
        "# HELP mem8_requests_total Requests answered",
        "# TYPE mem8_requests_total counter",
        f'mem8_requests_total{{{counselor},{chat},status="200"}} {8 * n}.0',
        f'mem8_requests_total{{persona="",route="/v1/models",status="200"}} {2 * n}.0',
        'mem8_requests_created{persona="",route="/v1/models",status="200"} 1.7e+09',
        "# TYPE mem8_tokens_total counter",
        f'mem8_tokens_total{{direction="in",{counselor}}} {30 * n}.0',
        f'mem8_tokens_total{{direction="out",{counselor}}} {20 * n}.0',
        "# TYPE mem8_memories_total counter",
        f'mem8_memories_total{{event="imprinted"}} {2 * n}.0',
        f'mem8_memories_total{{event="recalled"}} {4 * n}.0',
        'mem8_memories_total{event="forgotten"} 0.0',
        "# TYPE mem8_request_seconds histogram",
    ]
    for bound, share in (("0.05", 0), ("0.1", 0), ("0.25", 1), ("0.5", 1), ("+Inf", 1)):
        count = 10 * n * share
        lines.append(f'mem8_request_seconds_bucket{{le="{bound}",{chat}}} {count}.0')
    lines += [
        f"mem8_request_seconds_count{{{chat}}} {10 * n}.0",
        "# TYPE mem8_mailbox_depth gauge",
        'mem8_mailbox_depth{actor="memory"} 3.0',
        'mem8_mailbox_depth{actor="grid"} 1.0',
        "mem8_journal_bytes 2097152.0",
    ]
    return "\n".join(lines) + "\n"


def test_the_metrics_charts_draw_rates_from_metrics(
    served: RunningServer, page: Page, tmp_path: Path
) -> None:
    """/metrics comes with another change: here the browser is served the text it will be."""
    scrapes = iter(range(1, 1000))
    page.route(
        "**/metrics",
        lambda route: route.fulfill(
            status=200,
            content_type="text/plain; version=0.0.4; charset=utf-8",
            body=exposition(next(scrapes)),
        ),
    )
    page.goto(served.root + "/dashboard?refresh=1")
    spark = page.locator('#metrics .spark[data-series="requests"] .value')
    expect(spark).not_to_have_text(NO_VALUE)  # a rate needs two scrapes
    requests_per_second = float(spark.inner_text())
    assert 3 < requests_per_second < 30  # 10 a scrape, about a second apart
    median = float(page.locator('#metrics .spark[data-series="latency"] .value').inner_text())
    assert 0.1 <= median <= 0.25
    assert page.locator('#metrics .spark[data-series="mailbox"] .value').inner_text() == "3"
    assert page.locator('#metrics .spark[data-series="journal"] .value').inner_text() == "2.00"
    expect(page.locator('#metrics .spark[data-series="imprinted"] polyline')).to_have_count(1)
    screenshot(page, tmp_path, "dashboard-metrics.png")
