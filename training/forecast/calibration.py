"""Conformal forecast intervals: quantiles of relative errors from a rolling-origin backtest.

The score of a forecast is its absolute error relative to the forecast, r = |y - yhat| / d with
d = max(|yhat|, floor) (`serving.models.intervals.denominator`; floor = `FLOOR_SHARE` of the series'
mean |y|). The guarantee (split conformal with a normalised score; Vovk et al.; Lei et al. 2018): if
the n calibration scores of a step h and the score of a new forecast at step h are exchangeable, the
interval yhat +/- q d, with q the k-th smallest calibration score and k = ceil((n + 1)(1 - alpha)),
covers the new value with probability >= 1 - alpha (and < 1 - alpha + 1/(n + 1) without ties). So a
level needs n >= (1 - alpha) / alpha scores (4 at 80%, 19 at 95%); fewer and q would be infinite.
Time series errors are not exactly exchangeable (a shift after the calibration windows breaks it):
the guarantee is the design target, the test-window coverage each run logs is the check.

Which scores, per series (`calibrate`), one source for all of its levels so that q grows with the level:
- OWN: the series' own scores at each step, when every step has at least `OWN_MIN` (19: enough for
  a 95% interval; with the default 3 folds no series has them);
- POOLED: else every series' scores at that step (relative errors mix series of any size): the
  guarantee is then marginal over series, not per series;
- MODEL: a level that source has too few scores for keeps the model's own interval, widened to the
  calibrated level below it where that is wider (`Conformal.apply`), and `Conformal.describe` says so.

Which windows (`calibrate_models`): the last `backtest.folds` rolling-origin windows of the data the
model is fitted on, each series' recipe refitted before every origin, like the score. The candidate
is fitted on the data before the first test origin, so its errors come from windows that end there
(the selection windows when `selection_folds` equals `folds`) and the test windows it is scored on
stay out of its calibration. The registered model, refitted on all the data, is calibrated on the
test windows themselves, which no selection used. (Windows before the selection ones, which
selection did not use either, gave about the same test coverage on the 10 weekly real series of
bench/forecast.py with SARIMAX(1,1,1) and 2 Fourier pairs: 0.75 / 0.95 against 0.76 / 0.99 at
80% / 95%, so the most recent windows are used.) A current champion scored on the same test
windows it was calibrated on has optimistic coverage there; its MASE, the decision's number, is not affected.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from features.series import SeriesSet
from serving.models.intervals import MODEL, OWN, POOLED, Conformal, denominator
from serving.models.series_model import SeriesModel
from training.forecast.backtest import Windows
from training.forecast.config import ForecastConfig
from training.forecast.scoring import backtest_tables

log = logging.getLogger(__name__)

LEVELS = np.arange(1, 100)  # every level a request may ask for
OWN_MIN = 19  # a series' own scores per step that calibrate its 95% interval: (1 - 0.05) / 0.05
FLOOR_SHARE = 0.1  # smallest denominator, as a share of the series' mean |y|: forecasts near zero


def quantile_rows(errors: np.ndarray) -> np.ndarray:
    """(99, steps) finite-sample conformal quantiles of `errors` (n, steps) per level; NaN where n is too small.

    Row L - 1 is the k-th smallest score with k = ceil((n + 1) L / 100) (integer arithmetic: no rounding).
    NaN scores (a step a fold did not reach, an undefined ratio) are left out of that step's n.
    """
    steps = errors.shape[1]
    out = np.full((len(LEVELS), steps), np.nan)
    for j in range(steps):
        col = np.sort(errors[:, j][np.isfinite(errors[:, j])])
        n = len(col)
        k = -(-(n + 1) * LEVELS // 100)
        ok = k <= n
        out[ok, j] = col[k[ok] - 1]
    return out


def _by_step(frame: pd.DataFrame, column: str, steps: int) -> np.ndarray:
    """(rows per step, steps) matrix of `column`, NaN-padded where a step has fewer rows."""
    cols = [frame.loc[frame["step"] == h, column].to_numpy(dtype="float64") for h in range(1, steps + 1)]
    n = max((len(c) for c in cols), default=0)
    return np.column_stack([np.pad(c, (0, n - len(c)), constant_values=np.nan) for c in cols]) if n else np.empty((0, steps))


def calibrate(losses: pd.DataFrame, floors: dict[str, float], steps: int, windows: str) -> dict[str, Conformal]:
    """Each series' conformal quantiles from backtest `losses` (see the module doc for OWN / POOLED / MODEL).

    `floors`: each series' smallest denominator (from the data its model is fitted on).
    """
    losses = losses.astype({"step": "int64", "yhat": "float64", "abs_error": "float64"})
    losses = losses[losses["step"] <= steps]
    floor = losses["series_id"].map(floors).astype("float64").fillna(0.0).to_numpy()
    d = denominator(losses["yhat"].to_numpy(), 0.0)
    d = np.maximum(d, floor)
    scored = losses.assign(r=np.divide(losses["abs_error"].to_numpy(), d, out=np.full(len(d), np.nan), where=d > 0))
    pooled = quantile_rows(_by_step(scored, "r", steps))
    by_series = dict(tuple(scored.groupby("series_id", sort=False)))
    out = {}
    for uid, series_floor in floors.items():
        own = _by_step(by_series[uid], "r", steps) if uid in by_series else np.empty((0, steps))
        if np.isfinite(own).sum(axis=0).min(initial=len(own)) >= OWN_MIN:
            q, kind = quantile_rows(own), OWN
        else:
            q, kind = pooled.copy(), POOLED
        ok = np.isfinite(q).all(axis=1)
        q[~ok] = np.nan
        out[uid] = Conformal(q, np.where(ok, kind, MODEL).astype("int8"), float(series_floor), windows)
    return out


def calibrate_models(models: dict[str, SeriesModel], feats: SeriesSet, params: dict[str, Any], cfg: ForecastConfig) -> None:
    """Give every model conformal intervals from a backtest of the recipes on the last windows of `feats`."""
    windows = Windows(feats, cfg.backtest.folds, cfg.horizon, cfg.step)
    lengths = feats.frame.groupby("unique_id", sort=False).size()
    what = f"{windows.folds} window(s) of {windows.horizon} every {windows.step} ending {feats.frame['ds'].max().date()}"
    if len(lengths) == 0 or int(lengths.max()) < windows.span + 2:
        log.warning("no series is long enough to calibrate intervals on %s: the models' own intervals", what)
        losses = pd.DataFrame(columns=["series_id", "step", "yhat", "abs_error"])
    else:
        losses = backtest_tables(windows, params, cfg)[1]
    floors = {str(uid): FLOOR_SHARE * float(np.mean(np.abs(frame["y"].to_numpy(dtype="float64"))))
              for uid, frame in feats.frame.groupby("unique_id", sort=False)}
    for uid, conformal in calibrate(losses, floors, cfg.horizon, what).items():
        if uid in models:
            models[uid].conformal = conformal
    fallback = [uid for uid, m in models.items() if m.conformal is None or not all(m.conformal.calibrated(lv) for lv in cfg.levels)]
    if fallback:
        log.info("%d series keep the model's own interval at some level (too few backtest errors), e.g. %s",
                 len(fallback), fallback[:5])
