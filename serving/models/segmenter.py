"""The servable customer segmenter: raw customer feature rows in, segment ids and names out.

`SegmentModel` implements `serving.models.base.SegmenterModel`. It holds one fitted scikit-learn
Pipeline on RAW feature values (transform -> StandardScaler -> KMeans), the cluster -> segment id
order and the segment names, so callers pass features exactly as `features.customers` builds them.
The pipeline's log transform is `features.customers.signed_log1p`, pickled by reference: registered
models are logged with the `features` package, which the served model finds beside this one.

Imports numpy, pandas, scikit-learn and MLflow's pyfunc base only (no training code).
"""

from __future__ import annotations

from typing import Any, ClassVar

import mlflow.pyfunc
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from serving.models.base import SegmenterModel


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The feature columns as one float64 array (rows x features), or a ValueError naming the missing
    column or the first bad cell (its column and row label)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a DataFrame of customer feature rows, got {type(frame).__name__}")
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"missing feature column(s) {missing}; the segmenter needs {features}")
    out = []
    for col in features:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.argmax(bad))
            raw = frame[col].iloc[first]
            shown = raw.item() if isinstance(raw, np.generic) else raw
            raise ValueError(
                f"column {col!r} row {frame.index[first]!r}: value {shown!r} is not a finite number "
                f"({int(bad.sum())} bad row(s) in the column)"
            )
        out.append(values)
    return np.column_stack(out) if out else np.empty((len(frame), 0))


def check_features(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as a float64 frame, or the ValueError of `feature_matrix`."""
    return pd.DataFrame(feature_matrix(frame, features), index=frame.index, columns=list(features))


def segments_frame(model: SegmenterModel, model_input: pd.DataFrame) -> pd.DataFrame:
    """Any segmenter's pyfunc output: the other input columns passed through, segment_id and segment_name."""
    x = feature_matrix(model_input, model.features)
    out = model_input[[c for c in model_input.columns if c not in model.features]].copy()
    ids = np.asarray(model.assign(x), dtype=np.int64) if len(x) else np.empty(0, dtype=np.int64)
    out["segment_id"] = ids
    out["segment_name"] = pd.array([model.names[int(i)] for i in ids], dtype="string")
    return out


class SegmentModel(mlflow.pyfunc.PythonModel):
    """Customer feature rows in; segment_id and segment_name out, other input columns passed through."""

    family: ClassVar[str] = "segmenter"

    def __init__(self, pipeline: Pipeline, features: list[str], segment_of: np.ndarray, names: dict[int, str]) -> None:
        self.pipeline = pipeline
        self.features = list(features)
        self.segment_of = np.asarray(segment_of, dtype=np.int64)
        self.names = {int(k): str(v) for k, v in names.items()}

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return segments_frame(self, model_input)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Segment ids of raw feature rows (float64, columns in `features` order).

        The fitted pipeline's own steps as array arithmetic: the transform's function, the scaler's
        mean and scale, the nearest K-means centre (what `KMeans.predict` computes). A served request
        then costs microseconds instead of the ~1.5 ms of sklearn's per-call input validation; the
        steps' arrays are read once per loaded model (`_arrays`). tests/test_segment.py checks it
        matches `pipeline.predict`. Other pipelines take the slow path.
        """
        fast = self.__dict__.get("_fast")
        if fast is None:
            fast = self.__dict__["_fast"] = self._arrays()
        if fast is False:
            frame = pd.DataFrame(x, columns=self.features)
            return self.segment_of[self.pipeline.predict(frame)]
        func, mean, scale, centres = fast
        z = x if func is None else np.asarray(func(x), dtype=np.float64)
        if mean is not None:
            z = z - mean
        if scale is not None:
            z = z / scale
        distances = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        return self.segment_of[np.argmin(distances, axis=1)]

    def _arrays(self) -> tuple[Any, np.ndarray | None, np.ndarray | None, np.ndarray] | bool:
        """(transform function, scaler mean, scaler scale, K-means centres), or False for another pipeline."""
        steps = self.pipeline.named_steps
        transform, scale, kmeans = steps.get("transform"), steps.get("scale"), steps.get("kmeans")
        if not (
            isinstance(transform, FunctionTransformer) and transform.inverse_func is None and not transform.validate
            and isinstance(scale, StandardScaler) and isinstance(kmeans, KMeans) and len(steps) == 3
        ):
            return False
        return (transform.func, scale.mean_ if scale.with_mean else None, scale.scale_ if scale.with_std else None,
                np.asarray(kmeans.cluster_centers_, dtype=np.float64))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fast"}  # derived once per load, never pickled
