"""The clv family's feature table: per-customer calibration summaries with their holdout outcomes.

Built from order lines by `features.btyd.summary.summarise` (calibration period, then a holdout), or
taken from a customer-summary source that carries holdout columns. The whole-period summary of every
customer (`full`) is what the registered model is refit on after the decision's scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.btyd import NoRepeatPurchases
from features.btyd.summary import CustomerSummary, summarise
from features.contract import Loaded, sales
from training.clv.config import ClvConfig

HOLDOUT = ["frequency_holdout", "duration_holdout"]


@dataclass(frozen=True)
class ClvFeatures:
    """`table`: index customer_id; frequency, recency, T, monetary and the holdout columns."""

    table: pd.DataFrame
    unit: str
    full: pd.DataFrame | None = None  # whole-period summaries; None on a split's parts
    cutoff: pd.Timestamp | None = None
    heuristic_clv: float | None = None  # the clv KPI (features.kpis) on the calibration lines
    dropped: dict[str, int] = field(default_factory=dict)

    def subset(self, positions: np.ndarray) -> ClvFeatures:
        return replace(self, table=self.table.iloc[positions], full=None)

    def fit_table(self) -> pd.DataFrame:
        """What `fit` uses: the whole-period summaries where present (the final refit), else calibration."""
        return self.table if self.full is None else self.full


def build_features(loaded: Loaded, cfg: ClvConfig) -> ClvFeatures:
    """Summaries from a customer-summary source, or from the source's order lines split at the cutoff."""
    if loaded.summary is not None:
        table = loaded.summary
        missing = [c for c in HOLDOUT if c not in table.columns]
        if missing:
            raise ValueError(
                f"{loaded.name}: the customer summary has no holdout column(s) {missing}: a clv job scores "
                "predicted against actual holdout purchases; map them in the data config or train on order lines"
            )
        unit = getattr(loaded, "summary_unit", None) or cfg.features.unit
        feats = ClvFeatures(table, unit)
    else:
        opts = cfg.features
        calibration: CustomerSummary = summarise(loaded.lines, opts.unit, opts.cutoff, opts.holdout)
        whole = summarise(loaded.lines, opts.unit)
        cut = calibration.cutoff
        feats = ClvFeatures(calibration.table, opts.unit, whole.table, cut, _heuristic(loaded.lines, cut), calibration.dropped)
    if not (feats.table["frequency"] > 0).any():
        raise NoRepeatPurchases(
            f"{loaded.name}: no customer made a repeat purchase in the calibration period "
            f"({len(feats.table)} customers): BG/NBD and Gamma-Gamma have nothing to fit"
        )
    return feats


def _heuristic(lines: pd.DataFrame, cutoff: pd.Timestamp | None) -> float | None:
    """The textbook CLV KPI (average value x frequency / churn) on the calibration lines, for comparison."""
    from features.kpis import clv

    calibration = lines if cutoff is None else lines[lines["order_date"] < cutoff.normalize() + pd.Timedelta(days=1)]
    if sales(calibration)["customer_id"].notna().sum() == 0:
        return None
    value = clv(calibration).get("clv_mean")
    return None if value is None else float(value)
