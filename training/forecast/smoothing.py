"""Fitting one series' exponential-smoothing (ETS) or Theta model (statsmodels), like `fit.sarimax_model`.

Values are divided by their mean absolute value before fitting (optimiser conditioning, as for SARIMAX)
and forecasts scaled back (`SeriesModel.scale`). The series is passed as a pandas Series on a range
index: statsmodels' ETS prediction needs an index. Regressors (Fourier, calendar, user) are not used by
these models: their `Design` has none, so a served forecast needs no future regressor values. Warnings
of a fit are counted (convergence separately) and logged at debug level, as for SARIMAX.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from serving.models.series_model import Design, SeriesModel
from training.forecast.spec import Context, Spec

log = logging.getLogger(__name__)


def smoothing_model(uid: str, y: np.ndarray, ds: pd.DatetimeIndex, spec: Spec, ctx: Context, reason: str) -> SeriesModel:
    """ETS or Theta fitted on one series (`spec` already adapted to its history)."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    scale = float(np.mean(np.abs(y))) or 1.0
    endog = pd.Series(y / scale)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        warnings.simplefilter("always")
        results = _ets(endog, spec, ctx) if spec.method == "ets" else _theta(endog, spec, ctx)
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if caught:
        log.debug("series %r, %s: %d warning(s) in the fit: %s", uid, spec.label(), len(caught),
                  sorted({f"{w.category.__name__}: {w.message}" for w in caught}))
    return SeriesModel(uid, spec.method, spec.as_params(), reason or spec.label(), pd.Timestamp(ds[-1]), len(y),
                       Design(ctx.freq, ctx.season), scale=scale, results=results, warnings=len(caught),
                       convergence_warnings=n_conv)


def _ets(endog: pd.Series, spec: Spec, ctx: Context):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = None if spec.ets_season == "n" else spec.ets_season
    model = ETSModel(endog, error=spec.error, trend=None if spec.ets_trend == "n" else spec.ets_trend,
                     damped_trend=spec.damped, seasonal=seasonal,
                     seasonal_periods=ctx.season if seasonal else None)
    results = model.fit(disp=False, maxiter=max(ctx.maxiter, 200))
    if not (np.all(np.isfinite(results.params)) and np.isfinite(results.llf)):
        raise FloatingPointError("non-finite parameters or likelihood")
    return results


def _theta(endog: pd.Series, spec: Spec, ctx: Context):
    from statsmodels.tsa.forecasting.theta import ThetaModel

    results = ThetaModel(endog, period=max(ctx.season, 1), deseasonalize=spec.deseasonalize, use_test=False).fit()
    if not (np.all(np.isfinite(results.params)) and np.isfinite(results.sigma2)):
        raise FloatingPointError("non-finite parameters or residual variance")
    return results
