"""Conformal forecast intervals of one series: relative error quantiles calibrated on backtests, applied at forecast time.

Training computes the quantiles (`training.forecast.calibration`); this module only stores and applies
them, so a served model needs no training code. The calibrated score is the absolute error relative to
the forecast, |y - yhat| / d with d = max(|yhat|, floor): sales errors grow with the level, so a
relative width follows a series whose level moved since its calibration windows (on the 10 weekly
real series of bench/forecast.py, SARIMAX(1,1,1) with 2 Fourier pairs, absolute errors scaled per
series covered 0.65 / 0.94 at 80% / 95%, relative ones 0.76 / 0.99; the comparison with the
current calibration is in `training.forecast.calibration`). A level without a finite quantile keeps the model's own interval (too few errors to calibrate it), and
`describe` says which levels are which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Bounds = dict[int, tuple[np.ndarray, np.ndarray]]

MODEL, OWN, POOLED, SHRUNK = 0, 1, 2, 3  # where a level's quantiles come from
SOURCES = {MODEL: "model", OWN: "series", POOLED: "pooled", SHRUNK: "series+pooled"}


def denominator(yhat: np.ndarray, floor: float) -> np.ndarray:
    """What an absolute error is divided by: the forecast's size, at least `floor` (forecasts near zero)."""
    return np.maximum(np.abs(np.asarray(yhat, dtype="float64")), floor)


@dataclass(frozen=True, eq=False)
class Conformal:
    """Relative error quantiles per level and step: `q[level - 1, step - 1]` (NaN: not calibrated).

    `source[level - 1]` is MODEL, OWN (this series' errors), POOLED (every series' errors) or SHRUNK
    (this series' quantile shrunk to the pooled one; models calibrated before it existed have OWN);
    `floor` is the smallest denominator (a share of the series' mean size); `windows` says which
    backtest windows gave the errors. Quantiles grow with the level, and a level left to the model
    is widened to the calibrated level below it where that is wider: a 95% interval always
    contains the 80% one.
    """

    q: np.ndarray  # (99, calibrated steps)
    source: np.ndarray  # (99,) int8
    floor: float
    windows: str = ""

    @property
    def steps(self) -> int:
        return int(self.q.shape[1])

    def calibrated(self, level: int) -> bool:
        return self.steps > 0 and bool(np.all(np.isfinite(self.q[level - 1])))

    def half_widths(self, level: int, mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Half-widths around `mean` at a calibrated level.

        Steps past the calibrated ones take the last step's quantile, grown like the model's own
        interval (`lo`, `hi`) from that step, never less: the errors say nothing about them.
        """
        q = self.q[level - 1]
        k = min(len(mean), self.steps)
        scale = np.ones(len(mean))
        if len(mean) > self.steps:
            model_half = (np.asarray(hi, dtype="float64") - np.asarray(lo, dtype="float64")) / 2
            ref = model_half[self.steps - 1]
            ratio = model_half[self.steps:] / ref if np.isfinite(ref) and ref > 0 else np.ones(len(mean) - k)
            scale[k:] = np.maximum(np.nan_to_num(ratio, nan=1.0), 1.0)
        per_step = np.concatenate([q[:k], np.repeat(q[-1], len(mean) - k)])
        return per_step * scale * denominator(mean, self.floor)

    def apply(self, mean: np.ndarray, bounds: Bounds) -> Bounds:
        """The calibrated interval around `mean` for each level of `bounds` that has one; the model's otherwise."""
        out: Bounds = {}
        for level, (lo, hi) in bounds.items():
            if self.calibrated(level):
                width = self.half_widths(level, mean, lo, hi)
                out[level] = (mean - width, mean + width)
            else:
                out[level] = self._at_least_below(level, mean, lo, hi)
        return out

    def _at_least_below(self, level: int, mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's own interval, widened where a calibrated lower level is wider: intervals stay nested."""
        below = [lv for lv in range(1, level) if self.calibrated(lv)]
        if not below:
            return lo, hi
        floor = self.half_widths(below[-1], mean, lo, hi)
        return np.minimum(lo, mean - floor), np.maximum(hi, mean + floor)

    def describe(self, levels: list[int]) -> str:
        """e.g. "80: pooled, 95: model" (model: too few errors for that level)."""
        return ", ".join(f"{level}: {SOURCES[int(self.source[level - 1])]}" for level in levels)
