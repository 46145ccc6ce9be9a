"""The naive segmenter every candidate must beat: RFM quintile scores summed and cut into k groups.

It implements `serving.models.base.SegmenterModel` (features, names, assign, predict), so
`score_segments` scores it exactly like a K-means model. Quintile scores are `features.rfm`'s, the
KPI's, learnt on the training customers: a new customer gets the training quintiles. The sum
R + F + M (3..15) is cut into `k` groups at its training quantiles; segment 0 has the highest sums.
Names come from the same rules as a K-means model's (`training.segment.naming`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from features.rfm import RFM, axis_score
from serving.models.segmenter import feature_matrix, segments_frame
from training.segment.naming import describe_segments


class RFMBaseline:
    """Quintile RFM score sums cut into k groups; quintiles and cuts learnt on the training customers."""

    family: ClassVar[str] = "segmenter"

    def __init__(self, k: int) -> None:
        self.k = k
        self.features = list(RFM)
        self.names: dict[int, str] = {}

    def fit(self, table: pd.DataFrame) -> RFMBaseline:
        x = feature_matrix(table, self.features)
        self.reference_ = x.copy()
        totals = self._totals(x)
        self.total_edges_ = np.quantile(totals, np.linspace(0, 1, self.k + 1)[1:-1])
        self.names, self.profiles_ = describe_segments(table, self.assign(x), self.features, self.k)
        return self

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Segment ids of raw (recency, frequency, monetary) rows: 0 for the highest score sums."""
        group = np.searchsorted(self.total_edges_, self._totals(np.asarray(x, dtype=np.float64)), side="right")
        return (self.k - 1 - group).astype(np.int64)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return segments_frame(self, model_input)

    def _totals(self, x: np.ndarray) -> np.ndarray:
        return sum(axis_score(f, x[:, i], self.reference_[:, i]) for i, f in enumerate(self.features))
