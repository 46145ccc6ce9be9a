"""The ecomlab model service: registered champions over HTTP, loaded once, never fitted in a request.

Start it with `ecomlab serve` or `bentoml serve serving.service:EcomlabService`. Settings come from
`ECOMLAB_SERVE_CONFIG` or configs/serve.yaml (host 127.0.0.1 unless told otherwise). The handlers call
the served models through their family's Protocol (serving.models.base); the routes come from the
family registry (serving.models.registry).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import anyio  # noqa: E402
import attr  # noqa: E402
import bentoml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from features.kpis import KPIS  # noqa: E402
from serving import kpis  # noqa: E402
from serving.answers import basket_answer, feature_matrix, models_answer, series_answer  # noqa: E402
from serving.auth import BodyLimit, TokenAuth, open_paths  # noqa: E402
from serving.errors import (  # noqa: E402
    answers_errors,
    bad_input,
    model_unavailable,
    openapi_errors,
    over_limit,
    quiet_client_errors,
    too_large,
)
from serving.metrics import Metrics  # noqa: E402
from serving.middleware import ErrorShape, FormGuard, MediaTypeGuard, ModelGate  # noqa: E402
from serving.models.registry import FAMILIES  # noqa: E402
from serving.schemas import (  # noqa: E402
    Basket,
    ChurnWindowDays,
    CustomerRow,
    ErrorResponse,
    ForecastQuery,
    ForecastRequest,
    ForecastResponse,
    KpiOptionsIn,
    KpiRequest,
    KpiResponse,
    ModelDetail,
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
INLINE_ROWS = 32  # model requests with at most this many rows are answered on the event loop
SEGMENTER, FORECASTER, RECOMMENDER = FAMILIES["segmenter"], FAMILIES["forecaster"], FAMILIES["recommender"]
FORM_ROUTES = frozenset({"/kpis/upload"})
T = TypeVar("T")
DESCRIPTION = """ecomlab's model service: customer segments, demand forecasts and basket recommendations from the
registered champions (loaded once, never fitted in a request), and the KPIs of posted or uploaded order lines.

**Errors.** Every 4xx and 5xx answers `{"error": {"code", "message", "fields": [{"field", "message"}]}}`
(schema `ErrorResponse`); `code` says what went wrong (`invalid_input`, `over_limit`, `too_large`,
`unsupported_media_type`, `unauthorized`, `model_unavailable`, ...), `fields` names the request fields at fault.

**Auth.** When the service's token variable is set, send `Authorization: Bearer <token>`; /healthz, /livez
and /readyz stay open (and /metrics when `metrics_open` is set). JSON endpoints take `application/json`.

**Models.** `GET /models` lists the served models; `GET /models/{family}` adds what a request may name
(the forecaster's series ids, the segmenter's features, the recommender's k)."""


def package_version() -> str:
    try:
        return importlib.metadata.version("ecomlab")
    except importlib.metadata.PackageNotFoundError:  # a bento runs the packages' source, not an installed distribution
        return "unknown"


class DocumentedService(bentoml.Service):
    """BentoML's service whose OpenAPI document is ours: our version, description and error shape, and
    the GET routes ModelGate answers (BentoML documents its POST routes and its own error shapes only)."""

    @property
    def openapi_spec(self) -> Any:
        return document(super().openapi_spec)


@bentoml.service(
    name="ecomlab",
    http={"host": SETTINGS.host, "port": SETTINGS.port},
    workers=SETTINGS.workers,
    traffic={"timeout": 60},
    service_class=DocumentedService,
)
class EcomlabService:
    def __init__(self) -> None:
        self.settings = load_settings()
        self.metrics = Metrics()
        self.store = ModelStore(self.settings)
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop, at the first big request
        ModelGate.store = self.store
        ErrorShape.metrics = self.metrics
        quiet_client_errors()
        self.store.refresh()
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
        return RecommendResponse(model=served.name, version=served.version, results=results)

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
        return kpis.kpi_response(loaded, None, opts or None)

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


def document(spec: Any) -> Any:
    """BentoML's OpenAPI document with our header, the one error shape on every operation, POST /models
    marked deprecated, and GET /models and GET /models/{family} (which ModelGate answers)."""
    from bentoml._internal.service.openapi.specification import Info, PathItem

    paths = dict(spec.paths)
    for path in API_ROUTES & set(paths):
        post = paths[path].post
        statuses = (400, 401, 413, 415, 500, *((503,) if path in ModelGate.ROUTES else ()))
        paths[path] = attr.evolve(paths[path], post={**post, "responses": {200: post["responses"][200], **openapi_errors(statuses)}})
    tags = paths["/models"].post["tags"]

    def read(what: str, model: type, statuses: tuple[int, ...], **extra: Any) -> dict[str, Any]:
        ok = {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        return {"description": what, "tags": tags, "responses": {200: ok, **openapi_errors(statuses)}, **extra}

    family = {"name": "family", "in": "path", "required": True, "schema": {"type": "string", "enum": sorted(FAMILIES)}}
    paths["/models"] = attr.evolve(
        paths["/models"],
        get=read("Each configured model: name, version, alias, run id, key metrics and status.", ModelsResponse, (401, 500),
                 operationId="ecomlab__models_get"),
        post={**paths["/models"].post, "deprecated": True},
    )
    paths["/models/{family}"] = PathItem(get=read(
        "One configured model and what a request may name: the forecaster's series ids, the segmenter's features and "
        "segment names, the recommender's k.", ModelDetail, (401, 404, 500), operationId="ecomlab__model_detail", parameters=[family],
    ))
    schemas = {k: v for k, v in spec.components["schemas"].items() if k not in ("InvalidArgument", "NotFound", "InternalServerError")}
    for model in (ErrorResponse, ModelsResponse, ModelDetail):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    info = Info(title="ecomlab", description=DESCRIPTION, version=package_version())
    return attr.evolve(spec, info=info, paths=paths, components={**spec.components, "schemas": schemas})


API_ROUTES = frozenset(api.route for api in EcomlabService.apis.values())

# outermost first: every answer passes ErrorShape; a wrong token is refused before the body is looked at
EcomlabService.add_asgi_middleware(ErrorShape, endpoints=API_ROUTES | {"/models/{family}", "/metrics", "/docs.json"})
EcomlabService.add_asgi_middleware(TokenAuth, token_env=SETTINGS.api_token_env, open_paths=open_paths(SETTINGS.metrics_open))
EcomlabService.add_asgi_middleware(MediaTypeGuard, json_routes=API_ROUTES - FORM_ROUTES, form_routes=FORM_ROUTES)
EcomlabService.add_asgi_middleware(BodyLimit, max_bytes=SETTINGS.limits.max_body_bytes)
EcomlabService.add_asgi_middleware(FormGuard)
EcomlabService.add_asgi_middleware(ModelGate)

__all__ = ["EcomlabService"]
