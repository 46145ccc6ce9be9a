"""The KPI report's customer-lifetime section: BG/NBD + Gamma-Gamma fitted on the report's own lines.

Why two fits: the holdout check must predict purchases the model never saw, so one BG/NBD is
fitted on a calibration period and scored on the holdout after it; the headline figures (P(alive),
CLV) describe customers today, so a second BG/NBD and the Gamma-Gamma are fitted on the whole
history with the same settings, and their parameters are the ones reported. A calibration fit that
fails leaves the headline standing: only the holdout check says why it is missing.

Choices (fixed here, stated in the section's `method`):
- holdout: the last quarter of the observed span (first to last sales day with a customer id),
  rounded to whole units and at least `MIN_HOLDOUT` units; a history shorter than
  `MIN_HISTORY` units (a 4-unit holdout after three times as much calibration) is too short;
- penalizers (lifetimes' form, `features.btyd.fit_bgnbd` / `fit_gg`): BG/NBD tries `PENALIZERS`
  in order, 0.001 then 0 (the plain MLE), and reports the one used: the plain MLE runs away on the
  default synthetic shop (a and b drift apart until the optimiser stops, "ABNORMAL"), 0.001 costs
  0.11 % of the log-likelihood where both converge (-102,332.5 -> -102,443.9 on a 2,000-customer
  synthetic shop), and on UCI Online Retail any penalty drives a to its bound while the plain MLE is
  interior (a = 0.0034, weeks); Gamma-Gamma `GG_PENALIZER` = 0,
  since its penalty acts on v in currency units: 0.001 pulled v from 952 to 8.7 (and the
  log-likelihood down by 346) on a 2,000-customer synthetic shop;
- CLV over `HORIZON_WEEKS` weeks at `ANNUAL_DISCOUNT_RATE` a year (`features.btyd.value.clv`);
- naive baseline: the calibration purchase rate (frequency / T, 0 where T is 0) x holdout length,
  scored like the model by MAE and RMSE per customer (MAE alone barely separates them when most
  customers buy nothing in the holdout);
- segments: `features.kpis.rfm.rfm_table`, the KPI report's own RFM segments of the same lines.
When the data cannot support the models (no customer ids, too short a history, no repeat
purchases, a whole-history fit that does not converge) the section is `{"status": "unavailable",
"reason": ...}` with no figures, the KPI report's convention, so the report is written all the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from features.btyd.bgnbd import expected_purchases, p_alive
from features.btyd.fit import BetaGeoFit, GammaGammaFit, NoRepeatPurchases, NotConverged, fit_beta_geo, fit_gamma_gamma
from features.btyd.gamma_gamma import conditional_expected_value
from features.btyd.plots import UNIT_WORDS, calibration_holdout_figure, clv_by_segment_figure, p_alive_matrix_figure
from features.btyd.summary import CustomerSummary, summarise
from features.btyd.value import clv
from features.contract import sales
from features.jsonsafe import json_safe

MODEL = "bgnbd"
PENALIZERS = (0.001, 0.0)
GG_PENALIZER = 0.0
MIN_HOLDOUT = 4
MIN_HISTORY = 4 * MIN_HOLDOUT
HORIZON_WEEKS = 52
ANNUAL_DISCOUNT_RATE = 0.10
UNIT_DAYS = {"D": 1, "W": 7}
MAX_MATRIX_FREQUENCY = 40
CORRELATION_WARNING = 0.3  # |Pearson r| from which the Gamma-Gamma independence assumption is called doubtful


class _Unsupported(ValueError):
    """The data cannot support the section; the message is the reason shown in the report."""


def lifetime_section(lines: pd.DataFrame, unit: str = "W") -> tuple[dict[str, Any], dict[str, Figure]]:
    """Headline figures (JSON-ready) and the three figures; or an "unavailable" section and no figures."""
    if unit not in UNIT_DAYS:
        raise ValueError(f"unit must be one of {sorted(UNIT_DAYS)}, got {unit!r}")
    try:
        return _section(lines, unit)
    except (_Unsupported, NoRepeatPurchases, NotConverged) as exc:
        return {"status": "unavailable", "reason": str(exc)}, {}


def holdout_length(span_units: float) -> int:
    """Whole units of holdout: the last quarter of the span, at least MIN_HOLDOUT."""
    return max(MIN_HOLDOUT, int(round(span_units / 4)))


def naive_holdout_purchases(table: pd.DataFrame) -> np.ndarray:
    """The baseline: each customer keeps buying at their calibration rate (frequency / T) through the holdout."""
    f = table["frequency"].to_numpy(dtype=np.float64)
    age = table["T"].to_numpy(dtype=np.float64)
    rate = np.divide(f, age, out=np.zeros_like(f), where=age > 0)
    return rate * table["duration_holdout"].to_numpy(dtype=np.float64)


def _span_units(lines: pd.DataFrame, unit: str) -> float:
    bought = sales(lines)
    bought = bought[bought["customer_id"].notna()]
    if bought.empty:
        raise _Unsupported("no sales line has a customer id")
    days = pd.to_datetime(bought["order_date"]).dt.normalize()
    return (days.max() - days.min()).days / UNIT_DAYS[unit]


def _section(lines: pd.DataFrame, unit: str) -> tuple[dict[str, Any], dict[str, Figure]]:
    words = UNIT_WORDS[unit]
    span = _span_units(lines, unit)
    if span < MIN_HISTORY:
        raise _Unsupported(f"the history spans {span:g} {words}; the holdout check needs at least {MIN_HISTORY} {words}")
    holdout = holdout_length(span)
    calibration = summarise(lines, unit=unit, holdout=holdout)
    whole = summarise(lines, unit=unit)
    bg, penalizer = _fit_purchases(whole.table, "the whole history")
    gg = _fit_spend(whole.table)
    headline, values = _headline(whole, bg, gg, unit)
    headline["bgnbd_fit"]["penalizer"] = penalizer
    figures = {}
    try:
        cal_fit, cal_penalizer = _fit_purchases(calibration.table, f"the calibration period up to {calibration.cutoff.date()}")
    except _Unsupported as exc:
        headline["holdout_check"] = {"status": "unavailable", "reason": str(exc)}
    else:
        predicted = expected_purchases(cal_fit.params, MODEL, calibration.table["duration_holdout"].to_numpy(dtype=np.float64),
                                       *_rft(calibration.table))
        headline["holdout_check"] = {**_holdout_scores(calibration, predicted, holdout, words), "penalizer": cal_penalizer}
        figures["clv_calibration_holdout"] = calibration_holdout_figure(calibration.table, predicted, unit=unit)
    figures["clv_p_alive_matrix"] = _matrix(bg, whole.table, unit)
    figures["clv_by_segment"] = clv_by_segment_figure(values, _segments(lines, whole.table.index))
    return json_safe(headline), figures


def _fit_purchases(table: pd.DataFrame, period: str) -> tuple[BetaGeoFit, float]:
    """BG/NBD on one period's summary with the first penalizer that converges; a failure names the period."""
    failures = []
    for penalizer in PENALIZERS:
        try:
            return fit_beta_geo(*_rft(table), model=MODEL, penalizer=penalizer), penalizer
        except NoRepeatPurchases as exc:
            raise _Unsupported(f"{period}: {exc}") from exc
        except NotConverged as exc:
            failures.append(f"penalizer {penalizer:g}: {exc}")
    raise _Unsupported(f"{period}: no BG/NBD fit converged ({'; '.join(failures)})")


def _fit_spend(table: pd.DataFrame) -> GammaGammaFit:
    """Gamma-Gamma on the repeat customers with a positive spend: a day of zero-priced lines only (free items)
    has value 0, outside the model's support, so such customers are left out of the fit (and counted)."""
    f, m = table["frequency"].to_numpy(dtype=np.float64), table["monetary"].to_numpy(dtype=np.float64)
    if not ((f > 0) & (m > 0)).any() and (f > 0).any():
        raise _Unsupported("no repeat purchase has a positive value: Gamma-Gamma needs spend > 0")
    return fit_gamma_gamma(f, m, penalizer=GG_PENALIZER, weights=(m > 0).astype(np.float64))


def _rft(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(table[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T"))  # type: ignore[return-value]


def _headline(whole: CustomerSummary, bg: BetaGeoFit, gg: GammaGammaFit, unit: str) -> tuple[dict[str, Any], np.ndarray]:
    """Figures of today's customers from the whole-history fits, and each customer's CLV (for the segment plot)."""
    table = whole.table
    horizon = HORIZON_WEEKS * 7 / UNIT_DAYS[unit]
    f, r, t = _rft(table)
    m = table["monetary"].to_numpy(dtype=np.float64)
    values = np.asarray(clv(bg.params, MODEL, gg.params, f, r, t, m, horizon=horizon,
                            annual_discount_rate=ANNUAL_DISCOUNT_RATE, unit=unit), dtype=np.float64)
    headline = {
        "method": f"BG/NBD (penalizer {PENALIZERS[0]:g}, else 0) and Gamma-Gamma (penalizer {GG_PENALIZER:g}) by "
                  f"maximum likelihood on the whole history, time in {UNIT_WORDS[unit]}; the holdout check refits BG/NBD "
                  f"on the calibration period; CLV over {HORIZON_WEEKS} weeks at {ANNUAL_DISCOUNT_RATE:.0%} a year; "
                  "log-likelihoods are sums over customers",
        "customers": len(table),
        "repeat_customers": int((f > 0).sum()),
        "repeat_customers_without_spend": int(((f > 0) & (m <= 0)).sum()),
        "observation_end": str(whole.end.date()),
        "mean_p_alive": float(np.mean(p_alive(bg.params, MODEL, f, r, t))),
        f"mean_expected_purchases_{HORIZON_WEEKS}_weeks": float(np.mean(expected_purchases(bg.params, MODEL, horizon, f, r, t))),
        "mean_expected_order_value": float(np.mean(conditional_expected_value(gg.params, f, m))),
        f"mean_clv_{HORIZON_WEEKS}_weeks": float(values.mean()),
        f"total_clv_{HORIZON_WEEKS}_weeks": float(values.sum()),
        "annual_discount_rate": ANNUAL_DISCOUNT_RATE,
        "frequency_spend_correlation": float(gg.correlation),
        "spend_model_caveat": spend_caveat(gg.correlation),
        "bgnbd_fit": {**{k: float(getattr(bg.params, k)) for k in ("r", "alpha", "a", "b")},
                      "log_likelihood": float(bg.log_likelihood), "iterations": int(bg.iterations)},
        "gamma_gamma_fit": {**{k: float(getattr(gg.params, k)) for k in ("p", "q", "v")},
                            "log_likelihood": float(gg.log_likelihood), "customers": int(gg.n),
                            "iterations": int(gg.iterations)},
    }
    return headline, values


def spend_caveat(correlation: float) -> str:
    """Gamma-Gamma assumes spend per purchase independent of frequency; say so when the data disagree."""
    if np.isfinite(correlation) and abs(correlation) >= CORRELATION_WARNING:
        return (f"frequency and spend per purchase correlate ({correlation:.2f}): Gamma-Gamma assumes they are "
                "independent, so its expected order values (and the CLV) may be biased")
    return "none: frequency and spend per purchase are about independent, as Gamma-Gamma assumes"


def _holdout_scores(calibration: CustomerSummary, predicted: np.ndarray, holdout: int, words: str) -> dict[str, Any]:
    """MAE and RMSE per customer of predicted holdout purchases, the model's and the naive baseline's."""
    table = calibration.table
    actual = table["frequency_holdout"].to_numpy(dtype=np.float64)
    naive = naive_holdout_purchases(table)
    out: dict[str, Any] = {
        "calibration_end": str(calibration.cutoff.date()) if calibration.cutoff is not None else None,
        f"holdout_{words}": holdout,
        "customers": len(table),
        "customers_first_seen_in_holdout": int(calibration.dropped.get("customers_first_seen_after_cutoff", 0)),
        "mean_actual_purchases": float(actual.mean()),
        "mean_predicted_purchases": float(predicted.mean()),
    }
    for name, guess in (("model", predicted), ("baseline", naive)):
        out[f"{name}_mae"] = float(np.mean(np.abs(guess - actual)))
        out[f"{name}_rmse"] = float(np.sqrt(np.mean((guess - actual) ** 2)))
    return out


def _matrix(bg: BetaGeoFit, table: pd.DataFrame, unit: str) -> Figure:
    """P(alive) for the oldest customers' age, up to the 99th percentile of frequency (at least 1)."""
    age = float(table["T"].max())
    top = int(np.clip(np.ceil(np.quantile(table["frequency"], 0.99)), 1, MAX_MATRIX_FREQUENCY))
    return p_alive_matrix_figure(bg.params, MODEL, top, age, age, unit=unit)


def _segments(lines: pd.DataFrame, customers: pd.Index) -> np.ndarray:
    """The KPI report's RFM segment of each customer ("unscored" for any the RFM table lacks)."""
    from features.kpis.rfm import rfm_table

    table = rfm_table(lines)
    by_id = pd.Series(table["segment"].to_numpy(), index=table["customer_id"].astype(str).to_numpy())
    return by_id.reindex(customers.astype(str)).fillna("unscored").to_numpy(dtype=object)
