"""Requests into the served models' array inputs, and their Protocol results into response models.

Straight from the validated rows to numpy and back: a DataFrame per request costs ~2 ms, more than
the model call for a few rows.
"""

from __future__ import annotations

import numpy as np
from bentoml.exceptions import InvalidArgument

from serving.models.base import BasketRecommendation, SeriesForecast
from serving.schemas import BasketRecommendations, CustomerRow, ForecastPoint, Recommendation
from serving.schemas import SeriesForecast as SeriesForecastOut


def feature_matrix(customers: list[CustomerRow], features: list[str]) -> np.ndarray:
    """Rows x `features` (the segmenter's columns, in its order) as float64; a missing value names its row and column."""
    columns = []
    for col in features:
        values = [getattr(c, col, None) for c in customers]
        if None in values:
            raise InvalidArgument(f"customers[{values.index(None)}].{col}: required by the served model (features: {features})")
        columns.append(np.array(values, dtype=np.float64))
    return np.column_stack(columns) if columns else np.empty((len(customers), 0))


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
