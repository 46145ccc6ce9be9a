"""The customer-lifetime family (`ClvFamily`): BG/NBD or MBG/NBD for purchases, Gamma-Gamma for spend.

Served as `serving.models.clv.ClvModel` (parameters only; the closed forms are `features.btyd`).
Modules: config (the job's `model:` section), data (calibration/holdout summaries), fit, scoring (the
one score: holdout purchases per customer), baseline (naive calibration rate), report, family.
"""

from training.clv.baseline import NaiveRate
from training.clv.config import ClvConfig
from training.clv.data import ClvFeatures, NoRepeatPurchases, build_features
from training.clv.family import ClvFamily
from training.clv.fit import ClvFit, fit_clv
from training.clv.scoring import score_clv

__all__ = [
    "ClvConfig", "ClvFamily", "ClvFeatures", "ClvFit", "NaiveRate", "NoRepeatPurchases", "build_features", "fit_clv",
    "score_clv",
]
