"""Issue 16, the dashboard in a real browser: Debian's chromium driven by Playwright (which downloads nothing).

One `bentoml serve` of its own (a KPI source, an MLflow UI URL, a small drift window so a few shifted
requests fill it) for the page with everything on it; the session `server` (no dashboard section) for the
page that says no KPI source is configured. Both need the API token, which the page asks for once.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import AUTH, TOKEN
from tests.service_harness import Server, start, write_serve_config
from tests.serving.test_drift_service import profile_of, rows, send

pytestmark = pytest.mark.service
MODELS = [
    {"family": "segmenter", "name": "ecomlab-segmenter", "alias": "champion"},
    {"family": "forecaster", "name": "ecomlab-forecaster", "alias": "champion"},
    {"family": "recommender", "name": "ecomlab-recommender", "alias": "champion"},
    {"family": "clv", "name": "ecomlab-clv", "alias": "champion"},
]
DRIFT_WINDOW = 200  # rows; 4 requests of 50 shifted customers fill it
MLFLOW_UI = "http://127.0.0.1:5999"  # only written into links; nothing listens there
WAIT_MS = 60_000  # an upper bound for the page to draw what it fetched, not a pace the test relies on


def chromium() -> str:
    """Debian's chromium; without it skip, but under CI fail: the browser test must run there."""
    path = shutil.which("chromium")
    if path:
        return path
    reason = "Debian's chromium is not installed (apt-get install chromium): the dashboard's browser test needs it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI it must run")
    pytest.skip(reason)


@pytest.fixture(scope="module")  # not longer: Playwright's sync API keeps an event loop running in this thread
def browser() -> Iterator:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dashboard_server(registry: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder, uri = registry
    own = tmp_path_factory.mktemp("dashboard")
    config = write_serve_config(
        own, MODELS, drift={"window": DRIFT_WINDOW, "min_window": DRIFT_WINDOW // 2},
        dashboard={"kpi_source": str(folder / "data.yaml"), "mlflow_ui_url": MLFLOW_UI},
    )
    srv = start(own, config, uri, env={"ECOMLAB_API_TOKEN": TOKEN})
    yield srv
    srv.stop()


class Console:
    """The page's console errors and uncaught exceptions, split at the moment the token was given."""

    def __init__(self, page) -> None:
        self.before: list[str] = []
        self.after: list[str] = []
        self.token_given = False
        page.on("console", lambda msg: self._note(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self._note(f"uncaught: {exc}"))

    def _note(self, text: str) -> None:
        (self.after if self.token_given else self.before).append(text)


def refreshed(page, rounds: int) -> None:
    """Wait until the page has finished `rounds` rounds of data calls (it counts them on <body>)."""
    page.wait_for_function(f"document.body.dataset.refreshed === '{rounds}'", timeout=WAIT_MS)


def open_with_token(browser, url: str, token: str = TOKEN):
    """The page opened without a token: its first round of data calls answers 401 and it asks for one;
    returns once its round with `token` has finished."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = Console(page)
    page.goto(url + "/")
    refreshed(page, 1)
    assert page.locator("#token-form").is_visible()
    page.fill("#token", token)
    console.token_given = True
    page.click("#token-save")
    refreshed(page, 2)
    return page, console


def marks(page, chart: str, selector: str) -> int:
    """Marks Plotly drew in one chart: bar paths, line paths or heatmap images inside its SVG."""
    return page.locator(f"#{chart} .main-svg {selector}").count()


def cell(page, family: str, column: str) -> str:
    return page.locator(f'#model-table tr[data-family="{family}"] td.{column}').inner_text()


def test_dashboard_draws_kpis_models_drift_and_forecasts(
    browser, dashboard_server: Server, registry: tuple[Path, str], tmp_path: Path
) -> None:  # `browser` first: without chromium, skip before the registry is trained
    url = dashboard_server.url
    served = {m["family"]: m for m in httpx.get(url + "/models", headers=AUTH, timeout=30).json()["models"]}
    page, console = open_with_token(browser, url)

    page.wait_for_function("document.querySelectorAll('#chart-forecast .main-svg .scatterlayer .js-line').length > 0", timeout=WAIT_MS)
    page.wait_for_function("document.querySelectorAll('#chart-returns .main-svg .barlayer .point path').length > 0", timeout=WAIT_MS)
    assert marks(page, "chart-revenue", ".barlayer .point path") >= 12  # a year of months
    assert marks(page, "chart-revenue", ".scatterlayer .js-line") == 1
    assert marks(page, "chart-cohorts", ".heatmaplayer image") == 1
    assert marks(page, "chart-rfm", ".barlayer .point path") >= 3
    assert marks(page, "chart-returns", ".barlayer .point path") >= 3
    assert marks(page, "chart-forecast", ".scatterlayer .js-fill") >= 1  # the interval band
    kpis = httpx.get(url + "/dashboard/api/kpis", headers=AUTH, timeout=60).json()
    assert page.locator('.tile[data-kpi="orders"] .value').inner_text() == f"{kpis['headline']['orders']:,}"

    for family, model in served.items():
        assert cell(page, family, "version") == model["version"], family
        assert cell(page, family, "status") == "serving"
    assert cell(page, "segmenter", "drift") == "insufficient"  # this server has had no segmenter traffic yet
    run_link = page.locator('#model-table tr[data-family="segmenter"] a', has_text="run").get_attribute("href")
    assert run_link.startswith(MLFLOW_UI + "/#/experiments/") and run_link.endswith("/runs/" + served["segmenter"]["run_id"])
    series = page.locator("#series option").all_inner_texts()
    assert len(series) >= 2
    page.select_option("#series", series[1])
    page.wait_for_function(f"document.querySelector('#chart-forecast .gtitle')?.textContent.startsWith({series[1]!r})", timeout=WAIT_MS)

    profile = profile_of(registry, served["segmenter"]["version"])
    send(dashboard_server, rows(profile, DRIFT_WINDOW, seed=2, shifted=True))
    page.reload()  # the token stays in the tab's sessionStorage: no second prompt
    refreshed(page, 1)
    assert cell(page, "segmenter", "drift") == "alert"
    assert page.locator("#token-form").is_hidden()
    assert marks(page, "drift-segmenter", ".barlayer .point path") == len(profile["features"])
    assert int(cell(page, "segmenter", "requests").replace(",", "")) >= DRIFT_WINDOW // 50
    assert "Traceback" not in page.content()

    resp = httpx.post(url + "/kpis/upload", files={"file": ("shop.csv", UPLOAD, "text/csv")}, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    page.reload()  # a source is configured: it stays the default, the upload can be picked
    refreshed(page, 1)
    assert page.locator("#kpi-choice-label").is_visible() and page.locator("#kpi-choice").input_value() == "configured"
    page.select_option("#kpi-choice", "upload")
    page.wait_for_function("document.getElementById('kpi-source').textContent.includes('uploaded file shop.csv')", timeout=WAIT_MS)
    page.wait_for_function("document.querySelector('.tile[data-kpi=\"orders\"] .value')?.textContent === '3'", timeout=WAIT_MS)
    page.select_option("#kpi-choice", "configured")
    orders = f"{kpis['headline']['orders']:,}"
    page.wait_for_function(f"document.querySelector('.tile[data-kpi=\"orders\"] .value')?.textContent === {orders!r}", timeout=WAIT_MS)

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard screenshot: {shot}")
    page.close()
    assert all(re.search(r"status of 401", text) for text in console.before), console.before
    assert console.after == [], console.after


UPLOAD = ("order_id,order_date,customer_id,product_id,quantity,unit_price\n1,2024-01-03,a,p1,2,10\n"
          "2,2024-01-20,b,p2,1,30\n3,2024-02-04,a,p1,1,10\n")


def test_dashboard_without_a_kpi_source_says_so_then_shows_the_last_upload(browser, server: Server, tmp_path: Path) -> None:
    assert server.dashboard_dir is not None
    (server.dashboard_dir / "last-upload.json").unlink(missing_ok=True)  # another test's upload to this shared server
    page_resp = httpx.get(server.url + "/", timeout=30)  # the page needs no token; its data does
    assert page_resp.status_code == 200 and "text/html" in page_resp.headers["content-type"]
    assert httpx.get(server.url + "/dashboard", timeout=30).status_code == 200
    bundle = httpx.get(server.url + "/dashboard/plotly.min.js", timeout=30)
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000  # Plotly from the installed package
    assert "https://" not in page_resp.text  # nothing from a CDN
    assert httpx.get(server.url + "/dashboard/api/kpis", timeout=30).status_code == 401

    page, console = open_with_token(browser, server.url, token="not-the-token")
    assert page.locator("#token-form").is_visible()  # a wrong token: asked again
    assert page.locator("#model-table tbody tr").count() == 0
    page.fill("#token", TOKEN)
    page.click("#token-save")
    refreshed(page, 3)
    assert "No KPI data source is configured" in page.locator("#kpi-message").inner_text()
    assert page.locator("#model-table tbody td.version").count() == 4 and page.locator("#token-form").is_hidden()
    assert page.locator("#models-message").is_hidden()
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "dashboard-no-source.png"), full_page=True)

    resp = httpx.post(server.url + "/kpis/upload", files={"file": ("shop.csv", UPLOAD, "text/csv")}, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    page.reload()  # with no source configured, the last uploaded file's KPIs
    refreshed(page, 1)
    assert page.locator("#kpi-source").inner_text().startswith("source: uploaded file shop.csv (uploaded ")
    assert page.locator('.tile[data-kpi="orders"] .value').inner_text() == "3" and page.locator("#kpi-message").is_hidden()
    assert marks(page, "chart-revenue", ".barlayer .point path") == 2  # January and February
    assert page.locator("#kpi-choice-label").is_hidden()  # nothing to choose between
    page.close()
    assert all(re.search(r"status of 401", text) for text in console.before + console.after), console.before + console.after
