"""The reference profile of each family's training inputs, logged with the model for drift.

Turns a family's features into the columns the service sees in a request (the segmenter's feature
columns, the clv summary, the recommender's basket items and sizes, the forecaster's series ids and
horizons) and profiles them with `features.profile`.

The forecaster's horizons: training has no distribution of requested horizons, but it knows the
horizon its backtest scored (`backtest.horizon`), so the reference is "every request within it": one
edge at that horizon, all the share below. Requests for longer horizons (forecasts beyond what was
validated) fill the upper bin and raise its PSI; shorter ones never do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.profile import categorical_profile, make_profile, numeric_profile

CLV_COLUMNS = ("frequency", "recency", "T", "monetary")
TOP_ITEMS = 20
TOP_SERIES = 50


def horizon_profile(backtested: int, n: int) -> dict[str, Any]:
    """Requested horizons against the backtested one: bin 0 holds h <= `backtested` (all of the reference), bin 1 longer."""
    return {"kind": "numeric", "edges": [float(backtested)], "shares": [1.0, 0.0], "n": int(n)}


def reference_profile(family: str, train: Any, model: Any, model_cfg: Any = None) -> dict[str, Any] | None:
    """The profile of `train` (the features the registered model was fitted on), or None for a family without one.
    `model_cfg`: the family's model config (the forecaster's gives the backtested horizon)."""
    if family == "segmenter":
        table = train.table
        return make_profile(family, {f: numeric_profile(table[f]) for f in model.features})
    if family == "clv":
        table = train.fit_table()
        return make_profile(family, {c: numeric_profile(table[c]) for c in CLV_COLUMNS})
    if family == "recommender":
        counts = np.asarray(train.matrix.sum(axis=0)).ravel()
        sizes = np.asarray(train.matrix.sum(axis=1)).ravel()
        items = categorical_profile(train.items, TOP_ITEMS, weights=counts)
        items["n"] = int(counts.sum())
        return make_profile(family, {"items": items, "basket_size": numeric_profile(sizes)})
    if family == "forecaster":
        features = {"series_id": categorical_profile(train.ids, TOP_SERIES)}
        horizon = getattr(model_cfg, "horizon", None)
        if horizon:
            features["horizon"] = horizon_profile(int(horizon), len(train.ids))
        return make_profile(family, features)
    return None
