"""Forecast paths of the exponential-smoothing (ETS) and Theta series models, from their fitted statsmodels results.

Kept apart from `series_model` so that module stays about one concern. Both give a point forecast and a
standard error per step, the interval being normal around the point (`series_model.normal_bounds`):
- ETS: statsmodels' exact forecast variance for the additive-error models it has one for (ANN, AAN, AAdN,
  ANA, AAA, AAdA); the others' variance comes from 1000 simulated paths, drawn from a fixed seed so that a
  served forecast equals the one training computed from the same results, call after call;
- Theta: the variance of the integrated moving average the Theta model is (statsmodels'
  `prediction_intervals`: sigma^2 (1 + (h - 1)(1 + (alpha - 1)^2))).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

SMOOTHING_METHODS = ("ets", "theta")
SIMULATION_SEED = 0
THETA = 2.0  # the classic Theta method's weight on the long-run trend line


def smoothing_path(method: str, results: Any, n_obs: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Point forecasts and standard errors of steps 1..`steps`, in the units the model was fitted in."""
    if method == "ets":
        pred = results.get_prediction(start=n_obs, end=n_obs + steps - 1, rng=np.random.default_rng(SIMULATION_SEED))
        mean = np.asarray(pred.predicted_mean, dtype="float64")
        se = np.sqrt(np.maximum(np.asarray(pred.forecast_variance, dtype="float64"), 0.0))
        return mean, se
    if method == "theta":
        mean = np.asarray(results.forecast(steps, theta=THETA), dtype="float64")
        bounds = results.prediction_intervals(steps, theta=THETA, alpha=0.05)
        z = NormalDist().inv_cdf(0.975)
        se = (bounds["upper"].to_numpy(dtype="float64") - bounds["lower"].to_numpy(dtype="float64")) / (2 * z)
        return mean, se
    raise ValueError(f"unknown smoothing method {method!r}; known: {SMOOTHING_METHODS}")
