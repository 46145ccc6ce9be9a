"""Fit BG/NBD (or MBG/NBD) and Gamma-Gamma on customer summaries (the maths is `features.btyd`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.btyd import BetaGeoFit, GammaGammaFit, fit_beta_geo, fit_gamma_gamma
from serving.models.clv import ClvModel
from training.clv.config import ClvConfig
from training.clv.data import ClvFeatures
from training.clv.scoring import arrays


@dataclass
class ClvFit:
    """Both fits, the parameters they were fitted with and the summaries they saw."""

    purchases: BetaGeoFit
    spend: GammaGammaFit
    params: dict[str, Any]
    unit: str
    table: pd.DataFrame
    zero_spend_repeaters: int = 0  # repeat customers whose purchases were all worth 0: left out of Gamma-Gamma

    def model(self, cfg: ClvConfig) -> ClvModel:
        terms = cfg.serving
        return ClvModel(
            self.purchases.params, self.purchases.model, self.spend.params, self.unit,
            terms.horizon, terms.discount_rate, terms.max_horizon,
        )


def fit_clv(feats: ClvFeatures, params: dict[str, Any]) -> ClvFit:
    """Fit both models with `params` (model, penalizer, gg_penalizer); repeat customers whose purchases were
    all free are left out of Gamma-Gamma (its support is spend > 0) and counted. NotConverged or NoRepeatPurchases
    from `features.btyd` propagate: a trial fails, a final fit stops the job before anything is registered."""
    table = feats.fit_table()
    frequency, recency, T, monetary = arrays(table)
    purchases = fit_beta_geo(frequency, recency, T, model=params["model"], penalizer=float(params["penalizer"]))
    zero = (frequency > 0) & (monetary <= 0)  # free repeat orders (e.g. unit price 0): no spend to model
    spend = fit_gamma_gamma(frequency[~zero], monetary[~zero], penalizer=float(params["gg_penalizer"]))
    return ClvFit(purchases, spend, dict(params), feats.unit, table, int(zero.sum()))
