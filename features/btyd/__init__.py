"""Buy-till-you-die customer models: BG/NBD (and MBG/NBD) purchases, Gamma-Gamma spend, CLV.

Pure numpy/scipy, no training or serving imports, so the served model can use the closed forms.
The two log-likelihoods share a name: use `bgnbd.log_likelihood` and `gamma_gamma.log_likelihood`.
Customer summaries live in `features.btyd.summary`, figures in `features.btyd.plots` (matplotlib,
so never imported from here).
"""

from __future__ import annotations

from features.btyd import bgnbd, gamma_gamma
from features.btyd.bgnbd import BetaGeoParams, Model, expected_purchases, expected_purchases_new, p_alive
from features.btyd.fit import (
    BetaGeoFit,
    GammaGammaFit,
    NoRepeatPurchases,
    NotConverged,
    fit_beta_geo,
    fit_gamma_gamma,
)
from features.btyd.gamma_gamma import GammaGammaParams, conditional_expected_value
from features.btyd.value import clv, unit_discount_rate

__all__ = [
    "BetaGeoFit", "BetaGeoParams", "GammaGammaFit", "GammaGammaParams", "Model", "NoRepeatPurchases",
    "NotConverged", "bgnbd", "clv", "conditional_expected_value", "expected_purchases",
    "expected_purchases_new", "fit_beta_geo", "fit_gamma_gamma", "gamma_gamma", "p_alive",
    "unit_discount_rate",
]
