"""The reference profile of each family's training inputs, logged with the model for drift.

Turns a family's features into the columns the service sees in a request (the segmenter's feature
columns, the clv summary, the recommender's basket items and sizes, the forecaster's series ids) and
profiles them with `features.profile`. The forecaster's horizons are not profiled: training has no
distribution of requested horizons to compare with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.profile import categorical_profile, make_profile, numeric_profile

CLV_COLUMNS = ("frequency", "recency", "T", "monetary")
TOP_ITEMS = 20
TOP_SERIES = 50


def reference_profile(family: str, train: Any, model: Any) -> dict[str, Any] | None:
    """The profile of `train` (the features the registered model was fitted on), or None for a family without one."""
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
        return make_profile(family, {"series_id": categorical_profile(train.ids, TOP_SERIES)})
    return None
