"""One series' candidate model (`Spec`), what every series of a job shares (`Context`), and how a
spec is adapted to a series' history.

Each adaptation is recorded as a note:
- Fourier terms need >= 1.5 seasons of history and seasonal ARMA >= 2 seasons, else they are dropped
  (a two-year weekly series loses its test windows to the split and keeps its Fourier season);
- seasons longer than `seasonal_arma_max` (weekly data, s=52) get no seasonal ARMA: its state
  space has >52 states and a fit takes seconds; `fourier` sin/cos pairs carry the season instead
  (measured in bench/forecast.py);
- at most (s-1)//2 Fourier pairs: more would repeat (alias) the ones below.
Adapting is idempotent, so a backtest that adapts a spec again at a shorter origin gets what adapting
the original spec there would give.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from features.series import SeriesSet
from serving.models.series_model import NAIVE_METHODS
from training.forecast.config import ForecastConfig

TRENDS = ("n", "c", "t", "ct")


@dataclass(frozen=True)
class Spec:
    """A candidate model for one series: SARIMAX orders, trend, Fourier pairs, or a naive method."""

    method: str = "sarimax"
    order: tuple[int, int, int] = (1, 1, 1)
    seasonal: tuple[int, int, int] = (0, 0, 0)
    trend: str = "n"
    fourier: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Spec:
        method = params.get("method", "sarimax")
        if method not in ("sarimax", *NAIVE_METHODS):
            raise ValueError(f"unknown method {method!r}; known: {['sarimax', *NAIVE_METHODS]}")
        if method != "sarimax":
            return cls(method=method, order=(0, 0, 0))
        trend = params.get("trend", "n")
        if trend not in TRENDS:
            raise ValueError(f"unknown trend {trend!r}; known: {list(TRENDS)}")
        return cls(
            order=(int(params.get("p", 1)), int(params.get("d", 1)), int(params.get("q", 1))),
            seasonal=(int(params.get("P", 0)), int(params.get("D", 0)), int(params.get("Q", 0))),
            trend=trend,
            fourier=int(params.get("fourier", 0)),
        )

    def as_params(self) -> dict[str, Any]:
        if self.method != "sarimax":
            return {"method": self.method}
        (p, d, q), (P, D, Q) = self.order, self.seasonal
        return {"method": "sarimax", "p": p, "d": d, "q": q, "P": P, "D": D, "Q": Q,
                "trend": self.trend, "fourier": self.fourier}

    def label(self) -> str:
        if self.method != "sarimax":
            return self.method
        text = f"SARIMAX{self.order}"
        if any(self.seasonal):
            text += f"x{self.seasonal}"
        text += f" trend={self.trend}" if self.trend != "n" else ""
        return text + (f" fourier={self.fourier}" if self.fourier else "")


@dataclass(frozen=True)
class Context:
    """What every series of a job shares: frequency, season, regressors and fitting limits."""

    freq: str
    season: int
    calendar: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    min_train: int = 16
    seasonal_arma_max: int = 24
    maxiter: int = 50

    @classmethod
    def of(cls, feats: SeriesSet, cfg: ForecastConfig) -> Context:
        return cls(feats.freq, cfg.season, tuple(feats.calendar), tuple(feats.exog_columns),
                   cfg.min_train, cfg.seasonal_arma_max, cfg.maxiter)


def adapt(spec: Spec, n: int, ctx: Context) -> tuple[Spec, list[str]]:
    """The spec as this series' history allows it, and notes on what was changed."""
    notes: list[str] = []
    if spec.method != "sarimax":
        return spec, notes
    s = ctx.season
    if s < 2 or n < s + s // 2:
        if any(spec.seasonal) or spec.fourier:
            notes.append(f"seasonal terms dropped: {n} periods < 1.5 seasons of {s}")
        return replace(spec, seasonal=(0, 0, 0), fourier=0), notes
    if any(spec.seasonal) and n < 2 * s:
        notes.append(f"seasonal ARMA dropped: {n} periods < 2 seasons of {s}; Fourier terms carry the season")
        spec = replace(spec, seasonal=(0, 0, 0))
    if any(spec.seasonal) and s > ctx.seasonal_arma_max:
        notes.append(f"seasonal ARMA not fitted for s={s} > seasonal_arma_max={ctx.seasonal_arma_max}")
        spec = replace(spec, seasonal=(0, 0, 0))
    if spec.fourier * 2 >= s:
        spec = replace(spec, fourier=max((s - 1) // 2, 0))
    return spec, notes


def n_params(spec: Spec, ctx: Context) -> int:
    (p, _, q), (P, _, Q) = spec.order, spec.seasonal
    trend = {"n": 0, "c": 1, "t": 1, "ct": 2}[spec.trend]
    return p + q + P + Q + trend + 2 * spec.fourier + len(ctx.calendar) + len(ctx.user) + 1


def fallback_method(n: int, season: int) -> str:
    """Seasonal naive needs one full season; naive-1 needs one value."""
    return "snaive" if season > 1 and n >= season else "naive"
