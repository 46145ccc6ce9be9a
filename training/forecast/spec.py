"""One series' candidate model (`Spec`), what every series of a job shares (`Context`), and how a
spec is adapted to a series' history.

Each adaptation is recorded as a note:
- Fourier terms need >= 1.5 seasons of history and seasonal ARMA >= 2 seasons, else they are dropped
  (a two-year weekly series loses its test windows to the split and keeps its Fourier season);
- seasons longer than `seasonal_arma_max` (weekly data, s=52) get no seasonal ARMA: its state
  space has >52 states and a fit takes seconds; `fourier` sin/cos pairs carry the season instead
  (measured in bench/forecast.py);
- at most (s-1)//2 Fourier pairs: more would repeat (alias) the ones below;
- ETS: a season needs >= 2 seasons of history and s <= `seasonal_arma_max` (one state per period of the
  season; statsforecast's AutoETS stops at 24 too); multiplicative error or season needs every value > 0,
  else it becomes additive; a damped trend needs a trend;
- Theta: deseasonalising (classical decomposition) needs >= 2 seasons, else the series is used as it is;
- a combination adapts each of its members.
Adapting is idempotent, so a backtest that adapts a spec again at a shorter origin gets what adapting
the original spec there would give.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from features.series import SeriesSet
from serving.models.series_model import COMBO, NAIVE_METHODS
from training.forecast.config import METHODS, ForecastConfig

TRENDS = ("n", "c", "t", "ct")
ERRORS = ("add", "mul")
ETS_TRENDS = ("n", "add")
ETS_SEASONS = ("n", "add", "mul")
KNOWN = (*METHODS, *NAIVE_METHODS, COMBO)


def _choice(params: dict[str, Any], key: str, default: str, known: tuple[str, ...]) -> str:
    value = params.get(key, default)
    if value not in known:
        raise ValueError(f"unknown {key} {value!r}; known: {list(known)}")
    return value


@dataclass(frozen=True)
class Spec:
    """A candidate model for one series: SARIMAX orders, trend and Fourier pairs; ETS error/trend/season;
    Theta with or without deseasonalising; a naive method; or an equal-weight combination of such specs."""

    method: str = "sarimax"
    order: tuple[int, int, int] = (1, 1, 1)
    seasonal: tuple[int, int, int] = (0, 0, 0)
    trend: str = "n"
    fourier: int = 0
    error: str = "add"  # ETS
    ets_trend: str = "n"  # ETS
    damped: bool = False  # ETS
    ets_season: str = "n"  # ETS
    deseasonalize: bool = False  # Theta
    members: tuple[Spec, ...] = ()  # combination

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Spec:
        method = _choice(params, "method", "sarimax", KNOWN)
        if method == "ets":
            trend = _choice(params, "ets_trend", "n", ETS_TRENDS)
            return cls(method="ets", order=(0, 0, 0), error=_choice(params, "error", "add", ERRORS), ets_trend=trend,
                       damped=bool(params.get("damped", False)) and trend != "n",
                       ets_season=_choice(params, "ets_season", "n", ETS_SEASONS))
        if method == "theta":
            return cls(method="theta", order=(0, 0, 0), deseasonalize=bool(params.get("deseasonalize", False)))
        if method == COMBO:
            members = tuple(cls.from_params(m) for m in params.get("members") or [])
            if len(members) < 2 or any(m.method == COMBO for m in members):
                raise ValueError("a combination needs at least 2 member specs, none of them a combination")
            return cls(method=COMBO, order=(0, 0, 0), members=members)
        if method != "sarimax":
            return cls(method=method, order=(0, 0, 0))
        return cls(
            order=(int(params.get("p", 1)), int(params.get("d", 1)), int(params.get("q", 1))),
            seasonal=(int(params.get("P", 0)), int(params.get("D", 0)), int(params.get("Q", 0))),
            trend=_choice(params, "trend", "n", TRENDS),
            fourier=int(params.get("fourier", 0)),
        )

    def as_params(self) -> dict[str, Any]:
        if self.method == "ets":
            return {"method": "ets", "error": self.error, "ets_trend": self.ets_trend, "damped": self.damped,
                    "ets_season": self.ets_season}
        if self.method == "theta":
            return {"method": "theta", "deseasonalize": self.deseasonalize}
        if self.method == COMBO:
            return {"method": COMBO, "members": [m.as_params() for m in self.members]}
        if self.method != "sarimax":
            return {"method": self.method}
        (p, d, q), (P, D, Q) = self.order, self.seasonal
        return {"method": "sarimax", "p": p, "d": d, "q": q, "P": P, "D": D, "Q": Q,
                "trend": self.trend, "fourier": self.fourier}

    def label(self) -> str:
        if self.method == "ets":  # Hyndman's ETS(error, trend, season) letters
            letter = {"n": "N", "add": "A", "mul": "M"}
            trend = letter[self.ets_trend] + ("d" if self.damped else "")
            return f"ETS({letter[self.error]},{trend},{letter[self.ets_season]})"
        if self.method == "theta":
            return "Theta" + (" deseasonalised" if self.deseasonalize else "")
        if self.method == COMBO:
            return "mean of [" + " + ".join(m.label() for m in self.members) + "]"
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


def adapt(spec: Spec, n: int, ctx: Context, positive: bool = True) -> tuple[Spec, list[str]]:
    """The spec as this series' history allows it, and notes on what was changed.

    `positive`: every value of the history is > 0 (multiplicative ETS terms need it).
    """
    notes: list[str] = []
    if spec.method == "ets":
        return _adapt_ets(spec, n, ctx, positive)
    if spec.method == "theta":
        if spec.deseasonalize and (ctx.season < 2 or n < 2 * ctx.season):
            notes.append(f"not deseasonalised: {n} periods < 2 seasons of {ctx.season}")
            spec = replace(spec, deseasonalize=False)
        return spec, notes
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


def _adapt_ets(spec: Spec, n: int, ctx: Context, positive: bool) -> tuple[Spec, list[str]]:
    notes: list[str] = []
    s = ctx.season
    if spec.ets_season != "n" and (s < 2 or s > ctx.seasonal_arma_max or n < 2 * s):
        why = f"s={s} > seasonal_arma_max={ctx.seasonal_arma_max}" if s > ctx.seasonal_arma_max else f"{n} periods < 2 seasons of {s}"
        notes.append(f"ETS season dropped: {why}")
        spec = replace(spec, ets_season="n")
    if not positive and "mul" in (spec.error, spec.ets_season):
        notes.append("multiplicative ETS terms made additive: the history has values <= 0")
        spec = replace(spec, error="add", ets_season="add" if spec.ets_season == "mul" else spec.ets_season)
    if spec.ets_trend == "n" and spec.damped:
        spec = replace(spec, damped=False)
    return spec, notes


def n_params(spec: Spec, ctx: Context) -> int:
    """Estimated parameters (initial states included): a fit needs twice as many periods (see `fit`)."""
    if spec.method == "ets":  # alpha and the initial level; beta, b0, phi; gamma and s initial seasonals
        trend = 2 + spec.damped if spec.ets_trend != "n" else 0
        return 2 + trend + (1 + ctx.season if spec.ets_season != "n" else 0)
    if spec.method == "theta":  # alpha, the drift and the initial level
        return 3
    (p, _, q), (P, _, Q) = spec.order, spec.seasonal
    trend = {"n": 0, "c": 1, "t": 1, "ct": 2}[spec.trend]
    return p + q + P + Q + trend + 2 * spec.fourier + len(ctx.calendar) + len(ctx.user) + 1


def fallback_method(n: int, season: int) -> str:
    """Seasonal naive needs one full season; naive-1 needs one value."""
    return "snaive" if season > 1 and n >= season else "naive"
