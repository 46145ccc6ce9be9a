"""Conformal forecast intervals: quantiles of relative errors from a rolling-origin backtest.

The score of a forecast is its absolute error relative to the forecast, r = |y - yhat| / d with
d = max(|yhat|, floor) (`serving.models.intervals.denominator`; floor = `FLOOR_SHARE` of the series'
mean |y|). The guarantee (split conformal with a normalised score; Vovk et al.; Lei et al. 2018): if
the n calibration scores of a step h and the score of a new forecast at step h are exchangeable, the
interval yhat +/- q d, with q the k-th smallest calibration score and k = ceil((n + 1)(1 - alpha)),
covers the new value with probability >= 1 - alpha (and < 1 - alpha + 1/(n + 1) without ties). So a
level needs n >= (1 - alpha) / alpha scores (4 at 80%, 19 at 95%); fewer and q would be infinite.

Which quantile, per series and step (`calibrate`): two such quantiles, the series' OWN scores' (valid
for that series if its errors are exchangeable over time) and the POOLED one of every series of the set
(valid marginally over series), mixed as q = w q_own + (1 - w) q_pooled with w = n / (n + shrink) (n:
the series' own scores at that step; `calibration.shrink`, 30 by default). q lies between the two, so
the interval contains the narrower of the two conformal intervals and its coverage is at least the
smaller of their two coverages: >= 1 - alpha where both exchangeabilities hold. Where series differ,
it is conservative (tests/training/test_forecast_calibration.py: 0.82 at 80% on 150 series of mixed
noise, pooled alone 0.78 with the noisiest series at 0.57). Where the series' own quantile is
infinite (n too small for the level) the pooled one stands alone; quantiles are then made
non-decreasing in the level so that a 95% interval contains the 80% one. A level without any finite
quantile keeps the model's own interval, widened to the calibrated level below it (`Conformal.apply`).

Which windows (`calibrate_models`): `calibration.folds` rolling origins (default 20),
`calibration.step` (default 1) period apart, ending with the data the model is fitted on, keeping
only origins that leave `min_train` periods to fit on (shorter histories fall back to naive methods:
their errors are not the served model's); each series' recipe is refitted before every origin, like
the score. The candidate is fitted on the data before the first test origin, so the test windows it
is scored on stay out of its calibration; the registered model, refitted on all the data, is
calibrated on the windows ending with it.

Measured on bench/forecast.py's 11 real series (8 trials; chosen models' errors; width: mean ratio of
interval widths to the method before, 3 origins every h pooled). Test: the held-out windows, never
used to calibrate. Check: the selection windows before them, calibrated on data before those.
| scores; 20 origins every period unless said     | test 80% / 95% | width 80% | check 80% / 95% |
| relative, pooled per step, 3 origins every h (before) | 0.693 / 0.976 | 1.00 |   -   |
| relative, pooled per step                     | 0.705 / 0.919 | 0.94 | 0.745 / 0.947 |
| MASE-scaled (|e| / the series' MASE scale), pooled | 0.594 / 0.793 | 0.83 |   -   |
| relative, own per step                        | 0.749 / 0.908 | 1.05 |   -   |
| relative, own shrunk to pooled, shrink 30     | 0.813 / 0.951 | 0.98 | 0.786 / 0.947 |
| relative, own shrunk to pooled, shrink 60     | 0.752 / 0.951 | 0.96 | 0.776 / 0.947 |
| same, origins with < 16 periods kept          | 0.813 / 0.951 | 0.98 | 0.854 / 0.992 |
The test windows end in the year-end peak of all three sources: harder than any window before them,
so errors are not exchangeable there and every exchangeable method under-covers it somewhat.
MASE-scaled scores cannot follow a series whose level rose since its calibration windows; relative
ones pooled over series miss lumpy series (uci/Netherlands: 0.08 at 80%); its own scores fix that.
With 12-42 test points per series the coverage of the 11 has a standard error of about 0.03.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from features.series import SeriesSet
from serving.models.intervals import MODEL, POOLED, SHRUNK, Conformal, denominator
from serving.models.series_model import SeriesModel
from training.forecast.backtest import Windows
from training.forecast.config import ForecastConfig
from training.forecast.scoring import backtest_tables

log = logging.getLogger(__name__)

LEVELS = np.arange(1, 100)  # every level a request may ask for
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


def shrunk(own: np.ndarray, pooled: np.ndarray, counts: np.ndarray, shrink: float) -> np.ndarray:
    """(99, steps) w own + (1 - w) pooled with w = n / (n + shrink) per step, pooled where own is NaN; non-decreasing in the level."""
    w = counts / (counts + shrink) if shrink > 0 else (counts > 0).astype("float64")
    q = np.where(np.isfinite(own), w * own + (1 - w) * pooled, pooled)
    q = np.where(np.isfinite(pooled), q, np.nan)
    return np.where(np.isfinite(q), np.fmax.accumulate(np.nan_to_num(q, nan=-np.inf), axis=0), np.nan)


def calibrate(
    losses: pd.DataFrame, floors: dict[str, float], steps: int, windows: str, shrink: float = 30.0,
) -> dict[str, Conformal]:
    """Each series' conformal quantiles from backtest `losses` (see the module doc: own shrunk to pooled).

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
        q_own = quantile_rows(own)
        q = shrunk(q_own, pooled, np.isfinite(own).sum(axis=0).astype("float64"), shrink)
        ok = np.isfinite(q).all(axis=1)
        q[~ok] = np.nan
        mixed = np.isfinite(q_own).any(axis=1) & ok
        source = np.where(mixed, SHRUNK, np.where(ok, POOLED, MODEL)).astype("int8")
        out[uid] = Conformal(q, source, float(series_floor), windows)
    return out


def long_enough(losses: pd.DataFrame, lengths: pd.Series, windows: Windows, min_train: int) -> pd.DataFrame:
    """The errors of origins that leave at least `min_train` periods to fit on: shorter fits fall back, unlike the served model."""
    if losses.empty:
        return losses
    cuts = {str(uid): windows.origins(int(n)) for uid, n in lengths.items()}
    cut = np.array([cuts[str(uid)][int(fold)] for uid, fold in zip(losses["series_id"], losses["fold"])])
    return losses[cut >= min_train].reset_index(drop=True)


def calibrate_models(models: dict[str, SeriesModel], feats: SeriesSet, params: dict[str, Any], cfg: ForecastConfig) -> None:
    """Give every model conformal intervals from a backtest of the recipes on the last windows of `feats`."""
    opts = cfg.calibration
    windows = Windows(feats, opts.folds, cfg.horizon, opts.step)
    lengths = feats.frame.groupby("unique_id", sort=False).size()
    what = f"{windows.folds} window(s) of {windows.horizon} every {windows.step} ending {feats.frame['ds'].max().date()}"
    if len(lengths) == 0 or int(lengths.max()) < windows.horizon + 2:  # origins too early are skipped
        log.warning("no series is long enough to calibrate intervals on %s: the models' own intervals", what)
        losses = pd.DataFrame(columns=["series_id", "step", "yhat", "abs_error"])
    else:
        losses = long_enough(backtest_tables(windows, params, cfg)[1], lengths, windows, cfg.min_train)
    floors = {str(uid): FLOOR_SHARE * float(np.mean(np.abs(frame["y"].to_numpy(dtype="float64"))))
              for uid, frame in feats.frame.groupby("unique_id", sort=False)}
    for uid, conformal in calibrate(losses, floors, cfg.horizon, what, opts.shrink).items():
        if uid in models:
            models[uid].conformal = conformal
    fallback = [uid for uid, m in models.items() if m.conformal is None or not all(m.conformal.calibrated(lv) for lv in cfg.levels)]
    if fallback:
        log.info("%d series keep the model's own interval at some level (too few backtest errors), e.g. %s",
                 len(fallback), fallback[:5])
