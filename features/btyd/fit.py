"""Maximum-likelihood fits of the CLV models: one import point for BG/NBD and Gamma-Gamma.

The objectives, gradients and penalty forms are documented in fit_bgnbd.py and fit_gg.py; the
optimiser, row compression, standard errors and the two errors in _optimise.py.
"""

from __future__ import annotations

from features.btyd._optimise import NoRepeatPurchases, NotConverged
from features.btyd.fit_bgnbd import BetaGeoFit, fit_beta_geo
from features.btyd.fit_gg import GammaGammaFit, fit_gamma_gamma

__all__ = ["BetaGeoFit", "GammaGammaFit", "NoRepeatPurchases", "NotConverged", "fit_beta_geo", "fit_gamma_gamma"]
