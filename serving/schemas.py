"""Request and response models of the service: strict types, no unknown fields, finite numbers.

BentoML's pydantic inputs are lax by default ("7" becomes 7, extra fields ignored); these are not.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- /segment ----


class CustomerRow(BaseModel):
    """Raw customer feature values, as `features.customers` computes them; unused features may be omitted."""

    model_config = STRICT
    customer_id: str | None = Field(None, max_length=200)
    recency: float | None = Field(None, ge=0, description="days since the last purchase")
    frequency: float | None = Field(None, ge=0, description="distinct orders")
    monetary: float | None = Field(None, description="net sales revenue")
    quantity: float | None = Field(None, description="units bought")
    tenure: float | None = Field(None, ge=0, description="days since the first purchase")
    aov: float | None = Field(None, description="average order value")
    return_rate: float | None = Field(None, ge=0, le=1, description="returned units / bought units")


class SegmentRequest(BaseModel):
    model_config = STRICT
    customers: list[CustomerRow] = Field(min_length=1)


class SegmentResult(Out):
    customer_id: str | None
    segment_id: int
    segment_name: str


class SegmentResponse(Out):
    model: str
    version: str
    segments: list[SegmentResult]


# ---- /forecast ----


class ForecastQuery(BaseModel):
    model_config = STRICT
    series_id: str = Field(min_length=1, max_length=500)
    horizon: int = Field(ge=1)
    # ge/le, not gt/lt: BentoML publishes OpenAPI 3.0, where a numeric exclusiveMinimum is invalid
    levels: list[Annotated[int, Field(ge=1, le=99)]] | None = Field(None, min_length=1, max_length=5)
    exog: dict[str, list[float]] | None = None


class ForecastRequest(BaseModel):
    model_config = STRICT
    queries: list[ForecastQuery] = Field(min_length=1)


class ForecastPoint(Out):
    step: int
    ds: str
    yhat: float
    intervals: dict[str, list[float]] = Field(description='level -> [lower, upper], e.g. {"95": [lo, hi]}')


class SeriesForecast(Out):
    series_id: str
    model: str = Field(description="the model that forecasts this series (e.g. SARIMAX order or seasonal naive)")
    points: list[ForecastPoint]


class ForecastResponse(Out):
    model: str
    version: str
    forecasts: list[SeriesForecast]


# ---- /recommend ----


class Basket(BaseModel):
    model_config = STRICT
    items: list[str] = Field(min_length=1)
    k: int | None = Field(None, ge=1)


class RecommendRequest(BaseModel):
    model_config = STRICT
    baskets: list[Basket] = Field(min_length=1)
    k: int | None = Field(None, ge=1, description="items per basket (a basket's own k wins); the model's default when absent")


class Recommendation(Out):
    item: str
    score: float
    rules: list[str] = Field(description="the rule(s) that fired, as 'antecedent -> consequent'")


class BasketRecommendations(Out):
    recommendations: list[Recommendation]
    unknown_items: list[str]


class RecommendResponse(Out):
    model: str
    version: str
    results: list[BasketRecommendations]


# ---- /clv ----


class ClvCustomer(BaseModel):
    """A customer's purchase summary in the model's time unit (`GET /models/clv` names it)."""

    model_config = STRICT
    customer_id: str | None = Field(None, max_length=200)
    frequency: float = Field(ge=0, description="repeat purchases (a whole number): purchase days after the first")
    recency: float = Field(ge=0, description="time from the first to the last purchase (0 without repeat purchases)")
    T: float = Field(ge=0, description="time from the first purchase to now (>= recency)")
    monetary: float = Field(ge=0, description="mean value of the repeat purchases (> 0 when frequency > 0)")


class ClvRequest(BaseModel):
    model_config = STRICT
    customers: list[ClvCustomer] = Field(min_length=1)
    horizon: float | None = Field(None, ge=0, description="time units to value (the model's default when absent)")
    discount_rate: float | None = Field(None, ge=0, le=1, description="annual discount rate (the model's default when absent)")


class ClvResult(Out):
    customer_id: str | None
    expected_purchases: float = Field(description="expected purchases over the horizon")
    p_alive: float = Field(description="probability the customer is still active")
    expected_value: float = Field(description="expected value of an order")
    clv: float = Field(description="discounted expected value over the horizon")


class ClvResponse(Out):
    model: str
    version: str
    unit: str = Field(description="D (days) or W (weeks): the unit of recency, T and horizon")
    horizon: float
    discount_rate: float
    customers: list[ClvResult]


# ---- /models ----


class ServedModel(Out):
    family: str
    name: str
    alias: str
    version: str | None
    run_id: str | None
    metrics: dict[str, float]
    status: str
    error: str | None


class ModelsResponse(Out):
    models: list[ServedModel]
    registry: str
    registry_error: str | None
    worker: int | None = Field(None, description="the service worker that answered (1..workers in configs/serve.yaml)")


class ModelDetail(ServedModel):
    """One configured model and what a request to it may name (GET /models/{family}); null where the
    family has no such thing or no version is loaded."""

    series_ids: list[str] | None = Field(None, description="forecaster: the series it forecasts (a query's series_id)")
    default_levels: list[int] | None = Field(None, description="forecaster: interval levels of a query that names none")
    features: list[str] | None = Field(None, description="segmenter: the customer features it uses")
    segments: dict[str, str] | None = Field(None, description="segmenter: segment id -> name")
    default_k: int | None = Field(None, description="recommender: items per basket when a request names no k")
    max_k: int | None = Field(None, description="recommender: the most items per basket it ranks")
    unit: str | None = Field(None, description="clv: D (days) or W (weeks), the unit of recency, T and horizon")
    default_horizon: float | None = Field(None, description="clv: the horizon of a request that names none")
    max_horizon: float | None = Field(None, description="clv: the longest horizon a request may ask for")
    default_discount_rate: float | None = Field(None, description="clv: the annual discount rate of a request that names none")


# ---- errors: one shape for every 4xx and 5xx (built in serving.errors) ----


class ErrorField(Out):
    field: str = Field(description='the request field, e.g. "customers[0].recency" ("body" for the body as a whole)')
    message: str


class ErrorDetail(Out):
    code: str = Field(description="invalid_input, over_limit, unauthorized, not_found, method_not_allowed, too_large, "
                      "unsupported_media_type, model_unavailable, not_ready, internal_error, ...")
    message: str
    fields: list[ErrorField] = Field(description="the fields at fault; empty when the request as a whole is")


class ErrorResponse(Out):
    error: ErrorDetail


# ---- /kpis ----


class OrderLineIn(BaseModel):
    """One order line in the `OrderLines` contract. Row-level problems (an unparseable date, a
    negative price, a zero quantity) are quarantined and reported, not a failed request."""

    model_config = STRICT
    order_id: str = Field(max_length=200)
    order_date: str = Field(max_length=40, description="ISO date or date-time, e.g. 2024-03-01 or 2024-03-01T10:15:00")
    customer_id: str | None = Field(None, max_length=200)
    product_id: str = Field(max_length=200)
    product_name: str | None = Field(None, max_length=500)
    category: str | None = Field(None, max_length=200)
    quantity: int = Field(description="units; negative marks a return")
    unit_price: float
    discount: float | None = None
    channel: str | None = Field(None, max_length=200)
    returned: bool | None = None


ChurnWindowDays = Annotated[int, Field(ge=1, le=3650, description="days without an order after which a customer counts as churned")]


RevenuePeriod = Literal["month", "week", "day"]


class KpiOptionsIn(BaseModel):
    model_config = STRICT
    churn_window_days: ChurnWindowDays | None = None
    revenue_period: RevenuePeriod | None = Field(None, description="the period of revenue_by_period (default month)")


class KpiRequest(BaseModel):
    model_config = STRICT
    lines: list[OrderLineIn] = Field(min_length=1)
    options: KpiOptionsIn | None = None


class QuarantinedRow(Out):
    """A rejected row of an uploaded file, named by its line as the CLI names it."""

    row: int = Field(description="line of the file (the header is line 1)")
    column: str
    reason: str = Field(description='why, e.g. "unparseable date" or "out of range"')
    value: str | None


class QuarantinedIndex(Out):
    """A rejected line of a JSON request: JSON has no line numbers, so its position in `lines`."""

    index: int = Field(description="0-based position of the line in the request's `lines`")
    column: str
    reason: str = Field(description='why, e.g. "unparseable date" or "out of range"')
    value: str | None


class KpiResponse(Out):
    accounting: dict[str, int]
    quarantine: list[QuarantinedRow | QuarantinedIndex] = Field(
        description="rejected rows: `row` (file line) for an upload, `index` (0-based) for posted lines"
    )
    kpis: dict[str, Any] = Field(description="KPI name -> its figures, or {status: unavailable, reason}")
