"""The ecomlab model service: registered champions over HTTP, loaded once, never fitted in a request.

Start it with `ecomlab serve` or `bentoml serve serving.service:EcomlabService`. Settings come from
`ECOMLAB_SERVE_CONFIG` or configs/serve.yaml (host 127.0.0.1 unless told otherwise). The handlers call
the served models through their family's Protocol (serving.models.base); the routes come from the
family registry (serving.models.registry).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

from features.spark.guard import mlflow_without_pyspark  # noqa: E402

mlflow_without_pyspark()  # the service never uses Spark: mlflow must not load pyspark where it is installed

import anyio  # noqa: E402
import bentoml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from features.kpis import KPIS  # noqa: E402
from serving import kpis  # noqa: E402
from serving.answers import (  # noqa: E402
    basket_answer,
    clv_answer,
    clv_arrays,
    feature_matrix,
    models_answer,
    series_answer,
)
from serving import bentoml_fixes  # noqa: E402
from serving.auth import open_paths  # noqa: E402
from serving.errors import (  # noqa: E402
    BadRequest,
    answers_errors,
    bad_input,
    model_unavailable,
    over_limit,
    quiet_client_errors,
    too_large,
)
from serving.dashboard.data import UploadShelf, dashboard_dir  # noqa: E402
from serving.dashboard.routes import DashboardData  # noqa: E402
from serving.drift import DriftMonitor  # noqa: E402
from serving.metrics import Metrics  # noqa: E402
from serving.middleware import ErrorShape, Guards, ModelGate  # noqa: E402
from serving.models.registry import FAMILIES  # noqa: E402
from serving.openapi import document  # noqa: E402
from serving.schemas import (  # noqa: E402
    Basket,
    ChurnWindowDays,
    ClvCustomer,
    ClvRequest,
    ClvResponse,
    CustomerRow,
    ForecastQuery,
    ForecastRequest,
    ForecastResponse,
    KpiOptionsIn,
    KpiRequest,
    KpiResponse,
    ModelsResponse,
    OrderLineIn,
    RecommendRequest,
    RecommendResponse,
    RevenuePeriod,
    SegmentRequest,
    SegmentResponse,
    SegmentResult,
)
from serving.settings import load_settings  # noqa: E402
from serving.store import ModelStore, ModelUnavailable, Served  # noqa: E402

SETTINGS = load_settings()
dashboard_dir()  # made here, in the process that starts the workers, so they share it (serving/dashboard/data.py)
bentoml_fixes.install(tuple(f.route for f in FAMILIES.values()))  # before BentoML builds the app: see the module for what it works around
bentoml_fixes.access_log(SETTINGS.access_log)
INLINE_ROWS = 32  # model requests with at most this many rows are answered on the event loop
SEGMENTER, FORECASTER, RECOMMENDER, CLV = (FAMILIES[f] for f in ("segmenter", "forecaster", "recommender", "clv"))
FORM_ROUTES = frozenset({"/kpis/upload"})
T = TypeVar("T")
class DocumentedService(bentoml.Service):
    """BentoML's service whose OpenAPI document is ours: our version, description and error shape, and
    the GET routes ModelGate answers (BentoML documents its POST routes and its own error shapes only)."""

    @property
    def openapi_spec(self) -> Any:
        return document(super().openapi_spec, API_ROUTES)


@bentoml.service(
    name="ecomlab",
    http={"host": SETTINGS.host, "port": SETTINGS.port},
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.timeout_s},
    service_class=DocumentedService,
)
class EcomlabService:
    def __init__(self) -> None:
        self.settings = load_settings()
        self.metrics = Metrics()
        self.store = ModelStore(self.settings)
        self.drift = DriftMonitor(self.settings.drift, gauge=self.metrics.drift)
        self.uploads = UploadShelf()  # the last uploaded file's KPIs, for the dashboard of every worker
        self.metrics.on_scrape.append(lambda: self.drift.refresh(self.store))
        ModelGate.drift = self.drift
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop, at the first big request
        ModelGate.store = self.store
        DashboardData.store = self.store
        ErrorShape.metrics = self.metrics
        quiet_client_errors()
        self.store.refresh()
        bentoml_fixes.freeze_heap()  # also when no model loaded: the imports are most of the heap
        self.metrics.gc.flush()  # start-up's passes (imports, model loading) on /metrics now, not at the first request
        self.store.on_load = bentoml_fixes.freeze_heap  # and again whenever a reload swaps a model in
        self.store.start_reloading()

    def __is_ready__(self) -> bool:
        ok, reasons = self.store.ready()
        if not ok:
            raise HTTPException(status_code=503, detail="not ready: " + "; ".join(reasons))
        return True

    def _served(self, family: str) -> Served:
        try:
            return self.store.get(family)
        except ModelUnavailable as exc:
            raise model_unavailable(family, str(exc)) from None

    def _within(self, field: str, rows: int) -> None:
        if rows > self.settings.limits.max_batch:
            raise too_large(field, rows, self.settings.limits.max_batch)

    # ---- models ----

    async def _answer(self, rows: int, handler: Callable[..., T], *args: Any) -> T:
        """A model request: small ones on the event loop, bigger ones in one worker thread.

        A model call for a few rows takes well under a millisecond on the served models' array paths,
        less than the hand-off to BentoML's thread for sync APIs; big batches still go to a thread
        (one at a time, like BentoML's sync APIs) so the loop keeps answering probes and small calls.
        """
        if rows <= INLINE_ROWS:
            return handler(*args)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(functools.partial(handler, *args), limiter=self._limiter)

    @bentoml.api(route=SEGMENTER.route, input_spec=SegmentRequest)
    @answers_errors
    async def segment(self, customers: list[CustomerRow]) -> SegmentResponse:
        """Segment ids and names for a batch of customers' raw feature values."""
        return await self._answer(len(customers), self._segment, customers)

    def _segment(self, customers: list[CustomerRow]) -> SegmentResponse:
        self._within("customers", len(customers))
        served = self._served(SEGMENTER.name)
        model = served.model
        x = feature_matrix(customers, list(model.features))
        with self.metrics.observe(served, len(customers)):
            try:
                ids = np.asarray(model.assign(x)).tolist()
            except ValueError as exc:
                raise bad_input("customers", exc) from None
            results = [
                SegmentResult(customer_id=c.customer_id, segment_id=int(i), segment_name=str(model.names[i]))
                for c, i in zip(customers, ids, strict=True)
            ]
        self.drift.record(served, lambda: {f: x[:, i] for i, f in enumerate(model.features)})
        return SegmentResponse(model=served.name, version=served.version, segments=results)

    @bentoml.api(route=FORECASTER.route, input_spec=ForecastRequest)
    @answers_errors
    async def forecast(self, queries: list[ForecastQuery]) -> ForecastResponse:
        """Point forecasts and prediction intervals per series, from the stored fits (no refitting)."""
        return await self._answer(len(queries), self._forecast, queries)

    def _forecast(self, queries: list[ForecastQuery]) -> ForecastResponse:
        self._within("queries", len(queries))
        max_horizon = self.settings.limits.max_horizon
        for i, q in enumerate(queries):
            if q.horizon > max_horizon:
                raise over_limit(f"queries[{i}].horizon", q.horizon, max_horizon, " periods")
        served = self._served(FORECASTER.name)
        model = served.model
        with self.metrics.observe(served, len(queries)):
            answers = []
            for i, q in enumerate(queries):
                levels = q.levels if q.levels is not None else list(model.default_levels)
                try:
                    fc = model.forecast(q.series_id, q.horizon, levels, q.exog)
                except ValueError as exc:
                    raise bad_input(f"queries[{i}]", exc) from None
                answers.append(series_answer(fc))
        self.drift.record(served, lambda: {"series_id": [q.series_id for q in queries], "horizon": [q.horizon for q in queries]})
        return ForecastResponse(model=served.name, version=served.version, forecasts=answers)

    @bentoml.api(route=RECOMMENDER.route, input_spec=RecommendRequest)
    @answers_errors
    async def recommend(self, baskets: list[Basket], k: int | None = None) -> RecommendResponse:
        """Items to add to each basket, ranked, each with the rule(s) that fired; unknown items reported."""
        return await self._answer(len(baskets), self._recommend, baskets, k)

    def _recommend(self, baskets: list[Basket], k: int | None) -> RecommendResponse:
        limits = self.settings.limits
        self._within("baskets", len(baskets))
        for i, b in enumerate(baskets):
            if len(b.items) > limits.max_basket_items:
                raise too_large(f"baskets[{i}].items", len(b.items), limits.max_basket_items)
        served = self._served(RECOMMENDER.name)
        model = served.model
        max_k = min(limits.max_k, int(model.max_k))
        ks = [b.k or k or int(model.default_k) for b in baskets]
        for i, (b, ki) in enumerate(zip(baskets, ks, strict=True)):
            if ki > max_k:
                raise over_limit(f"baskets[{i}].k" if b.k else "k", ki, max_k)
        with self.metrics.observe(served, len(baskets)):
            try:
                recs = model.recommend([list(b.items) for b in baskets], ks)
            except ValueError as exc:
                raise bad_input("baskets", exc) from None
            results = [basket_answer(r) for r in recs]
        self.drift.record(served, lambda: {"items": [i for b in baskets for i in b.items], "basket_size": [len(b.items) for b in baskets]})
        return RecommendResponse(model=served.name, version=served.version, results=results)

    @bentoml.api(route=CLV.route, input_spec=ClvRequest)
    @answers_errors
    async def clv(
        self, customers: list[ClvCustomer], horizon: float | None = None, discount_rate: float | None = None
    ) -> ClvResponse:
        """Expected purchases over the horizon, P(alive), expected order value and discounted CLV per customer."""
        return await self._answer(len(customers), self._clv, customers, horizon, discount_rate)

    def _clv(self, customers: list[ClvCustomer], horizon: float | None, discount_rate: float | None) -> ClvResponse:
        self._within("customers", len(customers))
        served = self._served(CLV.name)
        model = served.model
        frequency, recency, T, monetary = clv_arrays(customers)
        if horizon is not None and horizon > model.max_horizon:
            raise over_limit("horizon", horizon, model.max_horizon, " days" if model.unit == "D" else " weeks")
        try:
            h, d = model.check_terms(horizon, discount_rate)
        except ValueError as exc:  # "horizon: ..." or "discount_rate: ..."
            field, _, message = str(exc).partition(": ")
            raise BadRequest(str(exc), fields=[{"field": field, "message": message}]) from None
        with self.metrics.observe(served, len(customers)):
            values = model.value(frequency, recency, T, monetary, h, d)
        self.drift.record(served, lambda: {"frequency": frequency, "recency": recency, "T": T, "monetary": monetary})
        return ClvResponse(model=served.name, version=served.version, unit=model.unit, horizon=h, discount_rate=d,
                           customers=clv_answer(customers, values))

    # ---- KPIs (pure functions of the posted lines; no model needed) ----

    @bentoml.api(route="/kpis", input_spec=KpiRequest)
    @answers_errors
    def kpis(self, lines: list[OrderLineIn], options: KpiOptionsIn | None = None) -> KpiResponse:
        """Every KPI of the posted order lines, with the quarantine report of rejected rows."""
        return self._kpis(lines, options, None)

    @bentoml.api(route="/kpis/upload")
    @answers_errors
    def kpis_upload(
        self, file: Path, churn_window_days: ChurnWindowDays | None = None, revenue_period: RevenuePeriod | None = None
    ) -> KpiResponse:
        """Every KPI of an uploaded CSV whose header names the contract columns (multipart field `file`)."""
        raw = kpis.read_upload(file, self.settings.limits)
        loaded = kpis.validate_lines(raw, "upload", "file")
        opts = {k: v for k, v in (("churn_window_days", churn_window_days), ("revenue_period", revenue_period)) if v}
        response = kpis.kpi_response(loaded, None, opts or None)
        if len(loaded.lines):  # the dashboard can show the last uploaded file's KPIs
            self.uploads.keep(loaded, response.kpis, kpis.upload_name(file))
        return response

    def _kpis(self, lines: list[OrderLineIn], options: KpiOptionsIn | None, name: str | None) -> KpiResponse:
        if len(lines) > self.settings.limits.max_kpi_rows:
            raise too_large("lines", len(lines), self.settings.limits.max_kpi_rows)
        raw = pd.DataFrame([line.model_dump() for line in lines])
        loaded = kpis.validate_lines(raw, "request", "lines")
        opts = options.model_dump(exclude_none=True) if options else None
        return kpis.kpi_response(loaded, name, opts)

    for _name in KPIS:

        def _one(self, lines: list[OrderLineIn], options: KpiOptionsIn | None = None, _kpi: str = _name) -> KpiResponse:
            return self._kpis(lines, options, _kpi)

        _one.__name__ = f"kpi_{_name}"
        _one.__doc__ = f"The `{_name}` KPI of the posted order lines, with the quarantine report."
        locals()[f"kpi_{_name}"] = bentoml.api(route=f"/kpis/{_name}", input_spec=KpiRequest, name=f"kpi_{_name}")(answers_errors(_one))
    del _name, _one

    @bentoml.api(route="/models")
    def models(self) -> ModelsResponse:
        """Each configured model: name, version, alias, run id, key metrics and status. Kept for clients
        of earlier versions: `GET /models` answers the same."""
        return models_answer(self.store)


API_ROUTES = frozenset(api.route for api in EcomlabService.apis.values())

# outermost first: every answer passes ErrorShape; a wrong token is refused before the body is looked at.
# Guards: DashboardPage (the page and its files hold no data: open, like the probes), TokenAuth,
# MediaTypeGuard, BodyLimit, FormGuard, ModelGate and DashboardData, in that order, as one layer
EcomlabService.add_asgi_middleware(ErrorShape, endpoints=API_ROUTES | {"/models/{family}", "/metrics", "/docs.json"})
EcomlabService.add_asgi_middleware(
    Guards, token_env=SETTINGS.api_token_env, open_paths=open_paths(SETTINGS.metrics_open),
    json_routes=API_ROUTES - FORM_ROUTES, form_routes=FORM_ROUTES, max_bytes=SETTINGS.limits.max_body_bytes,
)

__all__ = ["EcomlabService"]
