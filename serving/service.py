"""The ecomlab model service: registered champions over HTTP, loaded once, never fitted in a request.

Start it with `ecomlab serve` or `bentoml serve serving.service:EcomlabService`. Settings come from
`ECOMLAB_SERVE_CONFIG` or configs/serve.yaml (host 127.0.0.1 unless told otherwise).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import anyio  # noqa: E402
import bentoml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bentoml.exceptions import BentoMLException, InvalidArgument, ServiceUnavailable  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from serving.schemas import (  # noqa: E402
    ChurnWindowDays,
    Basket,
    BasketRecommendations,
    Recommendation,
    RecommendResponse,
    CustomerRow,
    ForecastPoint,
    ForecastQuery,
    ForecastRequest,
    ForecastResponse,
    SeriesForecast,
    ModelsResponse,
    KpiOptionsIn,
    KpiRequest,
    KpiResponse,
    OrderLineIn,
    QuarantinedRow,
    RecommendRequest,
    SegmentRequest,
    SegmentResponse,
    SegmentResult,
    ServedModel,
)
from features.kpis import KPIS  # noqa: E402
from serving.auth import BodyLimit, TokenAuth  # noqa: E402
from serving.settings import load_settings  # noqa: E402
from serving.store import ModelStore, ModelUnavailable, Served, redact  # noqa: E402

log = logging.getLogger("ecomlab.serving")
SETTINGS = load_settings()
INLINE_ROWS = 32  # model requests with at most this many rows are answered on the event loop


class TooLarge(BentoMLException):
    """A batch over the configured limit."""

    error_code = 413  # type: ignore[assignment]


def _too_large(field: str, got: int, limit: int) -> TooLarge:
    exc = TooLarge(f"{field}: {got} items, the limit is {limit} (configs/serve.yaml limits)")
    from http import HTTPStatus

    exc.error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    return exc


@bentoml.service(
    name="ecomlab",
    http={"host": SETTINGS.host, "port": SETTINGS.port},
    workers=SETTINGS.workers,
    traffic={"timeout": 60},
)
class EcomlabService:
    def __init__(self) -> None:
        self.settings = load_settings()
        self.metrics = Metrics()
        self.store = ModelStore(self.settings)
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop, at the first big request
        ModelGate.store = self.store
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
            raise ServiceUnavailable(f"{family} model unavailable: {exc}") from None

    # ---- models ----

    async def _answer(self, rows: int, handler, *args):
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

    @bentoml.api(route="/segment", input_spec=SegmentRequest)
    async def segment(self, customers: list[CustomerRow]) -> SegmentResponse:
        """Segment ids and names for a batch of customers' raw feature values."""
        return await self._answer(len(customers), self._segment, customers)

    def _segment(self, customers: list[CustomerRow]) -> SegmentResponse:
        limit = self.settings.limits.max_batch
        if len(customers) > limit:
            raise _too_large("customers", len(customers), limit)
        served = self._served("segmenter")
        needed = _input_columns(served.model)
        ids = [c.customer_id for c in customers]
        columns = _feature_columns(customers, needed)
        python_model = _python_model(served)
        with self.metrics.observe(served, len(ids)):
            if hasattr(python_model, "assign") and list(getattr(python_model, "features", [])) == needed:
                # an ecomlab segmenter: its array path, without a DataFrame per request
                segment_ids = python_model.assign(np.column_stack([columns[c] for c in needed])).tolist()
                names = [python_model.names[i] for i in segment_ids]
            else:
                x = pd.DataFrame({"customer_id": pd.array(ids, dtype="string"), **columns})
                out = _predict(served, x, "customers")
                segment_ids, names = out["segment_id"].tolist(), out["segment_name"].tolist()
        results = [
            SegmentResult(customer_id=cid, segment_id=int(sid), segment_name=str(name))
            for cid, sid, name in zip(ids, segment_ids, names, strict=True)
        ]
        return SegmentResponse(model=served.name, version=served.version, segments=results)

    @bentoml.api(route="/forecast", input_spec=ForecastRequest)
    async def forecast(self, queries: list[ForecastQuery]) -> ForecastResponse:
        """Point forecasts and prediction intervals per series, from the stored fits (no refitting)."""
        return await self._answer(len(queries), self._forecast, queries)

    def _forecast(self, queries: list[ForecastQuery]) -> ForecastResponse:
        limits = self.settings.limits
        if len(queries) > limits.max_batch:
            raise _too_large("queries", len(queries), limits.max_batch)
        for i, q in enumerate(queries):
            if q.horizon > limits.max_horizon:
                raise InvalidArgument(f"queries[{i}].horizon: {q.horizon} is over the limit of {limits.max_horizon} periods")
        served = self._served("forecaster")
        forecaster = getattr(_python_model(served), "forecaster", None)
        if hasattr(forecaster, "forecast_arrays"):  # an ecomlab forecaster: arrays, no DataFrame per query
            with self.metrics.observe(served, len(queries)):
                return ForecastResponse(
                    model=served.name, version=served.version,
                    forecasts=[_series_forecast(forecaster, i, q) for i, q in enumerate(queries)],
                )
        frame = pd.DataFrame(
            {
                "series_id": [q.series_id for q in queries],
                "horizon": [q.horizon for q in queries],
                "levels": [q.levels for q in queries],
                "exog": [q.exog for q in queries],
            }
        )
        with self.metrics.observe(served, len(frame)):
            out = _predict(served, frame, "queries")
        forecasts, start = [], 0
        level_cols = sorted({c.split("_", 1)[1] for c in out.columns if c.startswith("lo_")}, key=float)
        for q in queries:
            part = out.iloc[start : start + q.horizon]
            start += q.horizon
            points = [
                ForecastPoint(
                    step=int(r["step"]), ds=str(r["ds"]), yhat=float(r["yhat"]),
                    intervals={
                        lv: [float(r[f"lo_{lv}"]), float(r[f"hi_{lv}"])] for lv in level_cols if pd.notna(r[f"lo_{lv}"])
                    },
                )
                for r in part.to_dict("records")
            ]
            method = str(part["model"].iloc[0]) if len(part) else ""
            forecasts.append(SeriesForecast(series_id=q.series_id, model=method, points=points))
        return ForecastResponse(model=served.name, version=served.version, forecasts=forecasts)

    @bentoml.api(route="/recommend", input_spec=RecommendRequest)
    async def recommend(self, baskets: list[Basket], k: int = 5) -> RecommendResponse:
        """Items to add to each basket, ranked, each with the rule(s) that fired; unknown items reported."""
        return await self._answer(len(baskets), self._recommend, baskets, k)

    def _recommend(self, baskets: list[Basket], k: int) -> RecommendResponse:
        limits = self.settings.limits
        if len(baskets) > limits.max_batch:
            raise _too_large("baskets", len(baskets), limits.max_batch)
        for i, b in enumerate(baskets):
            if len(b.items) > limits.max_basket_items:
                raise _too_large(f"baskets[{i}].items", len(b.items), limits.max_basket_items)
            if (b.k or k) > limits.max_k:
                raise InvalidArgument(f"baskets[{i}].k: {b.k or k} is over the limit of {limits.max_k}")
        served = self._served("recommender")
        frame = pd.DataFrame({"items": [b.items for b in baskets], "k": [b.k or k for b in baskets]})
        with self.metrics.observe(served, len(frame)):
            out = _predict(served, frame, "baskets")
        results = [
            BasketRecommendations(
                recommendations=[
                    Recommendation(item=str(item), score=float(score), rules=[str(r) for r in fired])
                    for item, score, fired in zip(row["items"], row["scores"], row["rules"], strict=True)
                ],
                unknown_items=[str(x) for x in row["unknown_items"]],
            )
            for row in out.to_dict("records")
        ]
        return RecommendResponse(model=served.name, version=served.version, results=results)

    # ---- KPIs (pure functions of the posted lines; no model needed) ----

    @bentoml.api(route="/kpis", input_spec=KpiRequest)
    def kpis(self, lines: list[OrderLineIn], options: KpiOptionsIn | None = None) -> KpiResponse:
        """Every KPI of the posted order lines, with the quarantine report of rejected rows."""
        return self._kpis(lines, options, None)

    @bentoml.api(route="/kpis/upload")
    def kpis_upload(self, file: Path, churn_window_days: ChurnWindowDays | None = None) -> KpiResponse:
        """Every KPI of an uploaded CSV whose header names the contract columns (multipart field `file`)."""
        if file.stat().st_size > self.settings.limits.max_body_bytes:
            raise _too_large("file (bytes)", file.stat().st_size, self.settings.limits.max_body_bytes)
        try:
            raw = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"file: not a readable CSV: {str(exc).splitlines()[0]}") from None
        if len(raw) > self.settings.limits.max_kpi_rows:
            raise _too_large("file (rows)", len(raw), self.settings.limits.max_kpi_rows)
        loaded = _validate_lines(raw, "upload", "file")
        opts = {"churn_window_days": churn_window_days} if churn_window_days else None
        return _kpi_response(loaded, None, opts, row_offset=0)

    def _kpis(self, lines: list[OrderLineIn], options: KpiOptionsIn | None, name: str | None) -> KpiResponse:
        if len(lines) > self.settings.limits.max_kpi_rows:
            raise _too_large("lines", len(lines), self.settings.limits.max_kpi_rows)
        raw = pd.DataFrame([line.model_dump() for line in lines])
        loaded = _validate_lines(raw, "request", "lines")
        opts = options.model_dump(exclude_none=True) if options else None
        return _kpi_response(loaded, name, opts, row_offset=2)

    for _name in KPIS:

        def _one(self, lines: list[OrderLineIn], options: KpiOptionsIn | None = None, _kpi: str = _name) -> KpiResponse:
            return self._kpis(lines, options, _kpi)

        _one.__name__ = f"kpi_{_name}"
        _one.__doc__ = f"The `{_name}` KPI of the posted order lines, with the quarantine report."
        locals()[f"kpi_{_name}"] = bentoml.api(route=f"/kpis/{_name}", input_spec=KpiRequest, name=f"kpi_{_name}")(_one)
    del _name, _one

    @bentoml.api(route="/models")
    def models(self) -> ModelsResponse:
        """Each configured model: name, version, alias, run id, key metrics and status."""
        rows = [ServedModel(**{k: v for k, v in m.items() if k != "loaded_at"}) for m in self.store.describe()]
        return ModelsResponse(models=rows, registry=redact(self.store.uri), registry_error=self.store.registry_error)


class Metrics:
    """Per-model Prometheus counters, served on BentoML's /metrics next to its own."""

    def __init__(self) -> None:
        import prometheus_client  # after BentoML set up its multiprocess metrics directory

        labels = ["family", "model", "version"]
        self.predictions = prometheus_client.Counter(
            "ecomlab_predictions", "Rows predicted, per served model version", labels
        )
        self.requests = prometheus_client.Counter("ecomlab_model_requests", "Requests per served model version", labels)
        self.errors = prometheus_client.Counter(
            "ecomlab_prediction_errors", "Requests a served model rejected or failed", [*labels, "kind"]
        )

    @contextmanager
    def observe(self, served: Served, rows: int) -> Iterator[None]:
        labels = (served.family, served.name, served.version)
        self.requests.labels(*labels).inc()
        try:
            yield
        except InvalidArgument:
            self.errors.labels(*labels, "bad_input").inc()
            raise
        except Exception:
            self.errors.labels(*labels, "failure").inc()
            raise
        self.predictions.labels(*labels).inc(rows)


def _validate_lines(raw: pd.DataFrame, source: str, field: str):
    """The loader's validation of posted rows; a source-level rejection is the caller's 400, not a 500."""
    from features.sources import SourceError, validate_frame

    try:
        return validate_frame(raw, source)
    except SourceError as exc:  # e.g. no order_date parses at all
        raise InvalidArgument(f"{field}: {exc}") from None
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:  # e.g. 9999-12-31 does not fit datetime64[ns]
        raise InvalidArgument(f"{field}: order_date out of the supported range: {str(exc).splitlines()[0]}") from None


def _kpi_response(loaded, name: str | None, options: dict | None, row_offset: int) -> KpiResponse:
    from features.kpis import KpiUnavailable, kpi_report, run_kpi

    if name is None:
        try:
            report = kpi_report(loaded.lines, options=options)
        except KpiUnavailable as exc:  # every row quarantined: the quarantine report is the answer
            report = {kpi: {"status": "unavailable", "reason": str(exc)} for kpi in KPIS}
    else:
        report = {name: run_kpi(name, loaded.lines, options=options)}
    report = _json_safe(json.loads(json.dumps(report, default=str)))
    quarantine = [
        QuarantinedRow(row=int(r["row"]) - row_offset, column=str(r["column"]), reason=str(r["reason"]),
                       value=None if pd.isna(r["value"]) else str(r["value"]))
        for r in loaded.quarantine.frame.to_dict("records")
    ]
    return KpiResponse(accounting=loaded.accounting.as_dict(), quarantine=quarantine, kpis=report)


def _json_safe(value):
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _series_forecast(forecaster, i: int, query: ForecastQuery) -> SeriesForecast:
    """One query answered from the forecaster's arrays; its ValueError names the query."""
    try:
        model, starts, mean, bounds = forecaster.forecast_arrays(query.series_id, query.horizon, query.levels, query.exog)
    except ValueError as exc:
        raise InvalidArgument(f"queries: request row {i}: {str(exc).splitlines()[0]}") from None
    days = starts.strftime("%Y-%m-%d").tolist()
    yhat = mean.tolist()
    intervals = {str(level): (lo.tolist(), hi.tolist()) for level, (lo, hi) in bounds.items()}
    points = [
        ForecastPoint(
            step=h + 1, ds=days[h], yhat=yhat[h],
            intervals={lv: [lo[h], hi[h]] for lv, (lo, hi) in intervals.items() if lo[h] == lo[h]},  # NaN: no bound
        )
        for h in range(len(yhat))
    ]
    return SeriesForecast(series_id=query.series_id, model=model.method, points=points)


def _python_model(served: Served):
    """The served pyfunc's own PythonModel, or None for flavours that have none."""
    try:
        return served.model.unwrap_python_model()
    except Exception:
        return None


def _predict(served: Served, frame: pd.DataFrame, field: str) -> pd.DataFrame:
    """The model's own predict on a request already validated by its schema; its errors are the caller's."""
    python_model = _python_model(served)
    try:
        if python_model is not None:
            return python_model.predict(None, frame)
        return served.model.predict(frame)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"{field}: {str(exc).splitlines()[0]}") from None


def _feature_columns(customers: list[CustomerRow], needed: list[str]) -> dict[str, np.ndarray]:
    """The model's feature columns straight from the validated rows (a per-row DataFrame costs ~2 ms a request)."""
    columns = {}
    for col in needed:
        values = [getattr(c, col, None) for c in customers]
        if None in values:
            raise InvalidArgument(f"customers[{values.index(None)}].{col}: required by the served model (features: {needed})")
        columns[col] = np.array(values, dtype=np.float64)
    return columns


def _input_columns(model) -> list[str]:
    """Feature columns the served model needs (its signature minus pass-through ids)."""
    schema = model.metadata.get_input_schema()
    names = schema.input_names() if schema is not None else []
    return [n for n in names if n != "customer_id"]


class ModelGate:
    """ASGI middleware: a model endpoint whose model is not loaded answers 503 with the reason, and
    /readyz answers with its detail (models, reasons, registry error) in JSON.

    BentoML renders every 5xx a handler raises as "An unexpected error has occurred", so the
    handler's ServiceUnavailable cannot say why (registry unreachable, alias missing, ...).
    """

    ROUTES = {"/segment": "segmenter", "/forecast": "forecaster", "/recommend": "recommender"}
    store: ModelStore | None = None  # this worker's store, set by the service instance

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive, send) -> None:
        family = self.ROUTES.get(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        store = ModelGate.store
        if family is not None and store is not None:
            try:
                store.get(family)
            except ModelUnavailable as exc:
                payload = json.dumps({"error": f"{family} model unavailable: {exc}"}).encode()
                retry = str(max(1, round(store.settings.reload_interval_s or 30))).encode()
                headers = [(b"content-type", b"application/json"), (b"retry-after", retry)]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
        if store is not None and scope["type"] == "http" and scope.get("path") == "/readyz" and scope.get("method") == "GET":
            await self._readiness(store, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _readiness(store: ModelStore, send) -> None:
        """/readyz with its detail: 200 when every model serves (a registry error is still shown), else 503."""
        ok, reasons = store.ready()
        detail = {
            "ready": ok,
            "reasons": reasons,
            "registry_error": store.registry_error,
            "models": [{k: m[k] for k in ("family", "name", "alias", "version", "status", "error")} for m in store.describe()],
        }
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200 if ok else 503, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(detail).encode()})


class FormGuard:
    """ASGI middleware: a form body is parsed once before BentoML sees it, so a bad one is the client's 400.

    BentoML answers a malformed multipart body with 500, and takes a text value in a file field for a URL
    to download. Runs inside BodyLimit, so the buffered body is already bounded.
    """

    FORMS = (b"multipart/form-data", b"application/x-www-form-urlencoded")

    def __init__(self, app, file_fields: tuple[str, ...] = ("file",)) -> None:
        self.app = app
        self.file_fields = file_fields

    async def __call__(self, scope: dict, receive, send) -> None:
        ctype = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["type"] != "http" or ctype not in self.FORMS:
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = await self._problem(scope, body)
        if problem:
            payload = json.dumps({"error": problem}).encode()
            await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _problem(self, scope: dict, body: bytes) -> str | None:
        from starlette.requests import Request

        async def once() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
        except HTTPException as exc:
            return f"malformed form body: {exc.detail}"
        try:
            for name in self.file_fields:
                if any(isinstance(v, str) for v in form.getlist(name)):
                    return f"{name}: must be an uploaded file part (with a filename), not a text value"
        finally:
            await form.close()
        return None


EcomlabService.add_asgi_middleware(TokenAuth, token_env=SETTINGS.api_token_env)
EcomlabService.add_asgi_middleware(BodyLimit, max_bytes=SETTINGS.limits.max_body_bytes)
EcomlabService.add_asgi_middleware(FormGuard)
EcomlabService.add_asgi_middleware(ModelGate)

__all__ = ["EcomlabService"]
