"""The dashboard's routes, as ASGI middleware like ModelGate's GET answers (BentoML's API routes are POST only).

DashboardPage sits outside TokenAuth: the page and its files hold no data, so a browser can load them
without the token and ask for it once. DashboardData sits inside TokenAuth: its JSON is data.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

import anyio
from starlette.responses import FileResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.dashboard.data import KpiCache, ModelFacts
from serving.store import ModelStore

STATIC = Path(__file__).parent / "static"
PAGES = frozenset({"/", "/dashboard", "/dashboard/"})
FILES = {"/dashboard/dashboard.js": "dashboard.js", "/dashboard/dashboard.css": "dashboard.css"}
PLOTLY = "/dashboard/plotly.min.js"
KPIS, MODELS = "/dashboard/api/kpis", "/dashboard/api/models"
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def plotly_bundle() -> Path:
    """Plotly's JS bundle as the installed `plotly` wheel ships it (its version is pinned in pyproject.toml)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=MEDIA[path.suffix], headers={"cache-control": "no-cache"})


def _get(scope: Scope) -> bool:
    return scope["type"] == "http" and scope.get("method") in ("GET", "HEAD")


class DashboardPage:
    """GET / and /dashboard: the page; /dashboard/*.js|css and Plotly's bundle: its files. No token needed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if _get(scope) and path in PAGES:
            await _file(STATIC / "index.html")(scope, receive, send)
        elif _get(scope) and path in FILES:
            await _file(STATIC / FILES[path])(scope, receive, send)
        elif _get(scope) and path == PLOTLY:
            await FileResponse(plotly_bundle(), media_type=MEDIA[".js"], headers={"cache-control": "max-age=86400"})(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class DashboardData:
    """GET /dashboard/api/kpis[?source=configured|upload] (the configured source's or the last upload's KPIs) and /dashboard/api/models (each served model
    with its loading time, decision and links); behind the token like every data route."""

    store: ModelStore | None = None  # this worker's store, set by the service instance

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._parts: tuple[KpiCache, ModelFacts] | None = None  # made at the first call: the store is set by then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = DashboardData.store
        path = scope.get("path", "")
        if store is None or not _get(scope) or path not in (KPIS, MODELS):
            await self.app(scope, receive, send)
            return
        if self._parts is None:
            self._parts = KpiCache(store.settings.dashboard), ModelFacts(store.settings.dashboard)
        kpis, facts = self._parts
        choice = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("source", [None])[0]
        work = functools.partial(kpis.answer, choice) if path == KPIS else functools.partial(facts.answer, store)
        body = await anyio.to_thread.run_sync(work)  # a first KPI pass or a registry lookup must not stall the loop
        await JSONResponse(body)(scope, receive, send)
