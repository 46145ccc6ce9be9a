"""Requests into the served models' array inputs, their Protocol results into response models, and
the store's models as /models answers.

Straight from the validated rows to numpy and back: a DataFrame per request costs ~2 ms, more than
the model call for a few rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.btyd.checks import FIELDS as SUMMARY_FIELDS
from features.btyd.checks import first_problem

from serving.errors import ApiError, BadRequest
from serving.models.base import BasketRecommendation, SeriesForecast
from serving.models.registry import FAMILIES
from serving.schemas import (
    BasketRecommendations,
    ClvCustomer,
    ClvResult,
    CustomerRow,
    ForecastPoint,
    ModelDetail,
    ModelsResponse,
    Recommendation,
    ServedModel,
)
from serving.schemas import SeriesForecast as SeriesForecastOut
from serving.store import ModelStore, ModelUnavailable
from serving.tracking_uri import redact


def feature_matrix(customers: list[CustomerRow], features: list[str]) -> np.ndarray:
    """Rows x `features` (the segmenter's columns, in its order) as float64; a missing value names its row and column."""
    if not features or not customers:
        return np.empty((len(customers), len(features)))
    rows = [[getattr(c, col, None) for col in features] for c in customers]
    for i, row in enumerate(rows):
        if None in row:  # numpy would read it as NaN
            col = features[row.index(None)]
            raise BadRequest(f"customers[{i}].{col}: required by the served model (features: {features})")
    return np.array(rows, dtype=np.float64)


def clv_arrays(customers: list[ClvCustomer]) -> tuple[np.ndarray, ...]:
    """frequency, recency, T and monetary as float64 arrays; a row that breaks a summary rule (recency > T,
    repeat purchases without spend, ...) is a 400 naming `customers[i].<field>` and the rule."""
    values = {f: np.array([getattr(c, f) for c in customers], dtype=np.float64) for f in SUMMARY_FIELDS}
    problem = first_problem(values)
    if problem is not None:
        pos, column, reason, _ = problem
        field = f"customers[{pos}].{column}"
        raise BadRequest(f"{field}: {values[column][pos]:g} is {reason}", fields=[{"field": field, "message": reason}])
    return tuple(values[f] for f in SUMMARY_FIELDS)


def clv_answer(customers: list[ClvCustomer], values: dict[str, np.ndarray]) -> list[ClvResult]:
    columns = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in values.items()}
    return [
        ClvResult(customer_id=c.customer_id, expected_purchases=columns["expected_purchases"][i],
                  p_alive=columns["p_alive"][i], expected_value=columns["expected_value"][i], clv=columns["clv"][i])
        for i, c in enumerate(customers)
    ]


def series_answer(fc: SeriesForecast) -> SeriesForecastOut:
    """One series' forecast as response points; a NaN bound (no interval at that step) is left out."""
    days = fc.starts.strftime("%Y-%m-%d").tolist()
    yhat = np.asarray(fc.mean, dtype=np.float64).tolist()
    bounds = {str(level): (np.asarray(lo).tolist(), np.asarray(hi).tolist()) for level, (lo, hi) in fc.bounds.items()}
    points = [
        ForecastPoint(
            step=h + 1, ds=days[h], yhat=yhat[h],
            intervals={lv: [lo[h], hi[h]] for lv, (lo, hi) in bounds.items() if lo[h] == lo[h] and hi[h] == hi[h]},
        )
        for h in range(len(yhat))
    ]
    return SeriesForecastOut(series_id=fc.series_id, model=fc.method, points=points)


def basket_answer(rec: BasketRecommendation) -> BasketRecommendations:
    """One basket's ranked items, each with the rules that fired for it, and its unknown items."""
    recommendations = [
        Recommendation(item=str(item), score=float(score), rules=[str(r) for r in fired])
        for item, score, fired in zip(rec.items, rec.scores, rec.rules, strict=True)
    ]
    return BasketRecommendations(recommendations=recommendations, unknown_items=[str(x) for x in rec.unknown_items])


def models_answer(store: ModelStore) -> ModelsResponse:
    """Each configured model: name, version, alias, run id, key metrics and status."""
    from bentoml._internal.context import server_context

    rows = [ServedModel(**{k: v for k, v in m.items() if k != "loaded_at"}) for m in store.describe()]
    return ModelsResponse(models=rows, registry=redact(store.uri), registry_error=store.registry_error,
                          worker=server_context.worker_index)


def model_detail(store: ModelStore, family: str) -> ModelDetail:
    """One configured model with what a request to it may name (its Protocol's attributes); 404 for a
    family that is not configured."""
    rows = {m["family"]: m for m in store.describe()}
    if family not in rows:
        known = f"configured: {sorted(rows)}" if family in FAMILIES else f"families: {sorted(FAMILIES)}"
        raise ApiError(f"family: no model {family!r} is served ({known})", status=404)
    detail = ModelDetail(**{k: v for k, v in rows[family].items() if k != "loaded_at"})
    try:
        model = store.get(family).model
    except ModelUnavailable:
        return detail
    return detail.model_copy(update=_inputs(family, model))


def _inputs(family: str, model: Any) -> dict[str, Any]:
    if family == "forecaster":
        return {"series_ids": [str(s) for s in model.series_ids], "default_levels": [int(v) for v in model.default_levels]}
    if family == "segmenter":
        return {"features": [str(f) for f in model.features], "segments": {str(k): str(v) for k, v in model.names.items()}}
    if family == "recommender":
        return {"default_k": int(model.default_k), "max_k": int(model.max_k)}
    if family == "clv":
        return {"unit": str(model.unit), "default_horizon": float(model.default_horizon),
                "max_horizon": float(model.max_horizon), "default_discount_rate": float(model.default_discount_rate)}
    return {}
