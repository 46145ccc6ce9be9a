"""One conversion to JSON-ready values, shared by the KPI calculators, the CLI's report and the service.

Why one: a KPI figure must read the same in `kpis.json`, an MLflow artifact and a `/kpis` response;
JSON has no NaN, infinity, numpy scalar, timestamp or frame, so each becomes the plain value below.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd


def json_safe(value: Any) -> Any:
    """Frames to records, numpy scalars to Python, NaN/inf to None, dates to ISO strings, keys to str."""
    if isinstance(value, pd.DataFrame):
        return [json_safe(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return json_safe(value.to_dict())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, datetime, date, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if value is None or value is pd.NA or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value
