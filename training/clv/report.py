"""What a fitted customer-lifetime model is logged with: its parameters under their own names, the
frequency-spend correlation, the heuristic CLV KPI beside the model's and the naive one, and figures.

Pure: the calibration plot refits a NEW model on the calibration summaries only (the registered one
has seen the holdout), so it shows how the model predicts a period it never saw.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from features.btyd.plots import calibration_holdout_figure, clv_by_segment_figure, p_alive_matrix_figure
from features.rfm import grid_segment, rfm_scores
from training.clv.baseline import NaiveRate
from training.clv.config import ClvConfig
from training.clv.data import ClvFeatures
from training.clv.fit import ClvFit, fit_clv
from training.clv.scoring import arrays
from training.family import Report


def rfm_segments(table: pd.DataFrame) -> np.ndarray:
    """The RFM grid's segment of each summarised customer (features.rfm): recency scored as the time since
    the last purchase (T - recency), frequency as purchases (repeat + 1), monetary as mean repeat spend."""
    rfm = pd.DataFrame({"recency": table["T"] - table["recency"], "frequency": table["frequency"] + 1,
                        "monetary": table["monetary"]}, index=table.index)
    scores = rfm_scores(rfm)
    return grid_segment(scores["r"].to_numpy(), scores["f"].to_numpy(), scores["m"].to_numpy())


def parameter_table(fitted: ClvFit) -> pd.DataFrame:
    rows = []
    for part, fit in (("purchases", fitted.purchases), ("spend", fitted.spend)):
        model = fitted.purchases.model if part == "purchases" else "gamma_gamma"
        for name, value in asdict(fit.params).items():
            rows.append({"part": part, "model": model, "parameter": name, "value": value,
                         "std_error": fit.std_errors.get(name, np.nan)})
    return pd.DataFrame(rows)


def clv_report(fitted: ClvFit, feats: ClvFeatures, cfg: ClvConfig) -> Report:
    model = fitted.model(cfg)
    terms = cfg.serving
    table = fitted.table
    f, r, t, m = arrays(table)
    values = model.value(f, r, t, m, terms.horizon, terms.discount_rate)
    naive = NaiveRate(fitted.unit, terms.horizon, terms.discount_rate, terms.max_horizon).fit(table)
    naive_clv = naive.value(f, r, t, m, terms.horizon, terms.discount_rate)["clv"]
    metrics = {
        **model.parameters(),
        "purchases_log_likelihood": fitted.purchases.log_likelihood,
        "spend_log_likelihood": fitted.spend.log_likelihood,
        "freq_spend_correlation": fitted.spend.correlation,
        "customers_fitted": float(len(table)),
        "repeat_customers_fitted": float((table["frequency"] > 0).sum()),
        "zero_spend_repeaters": float(fitted.zero_spend_repeaters),
        "model_mean_clv": float(np.mean(values["clv"])),
        "naive_mean_clv": float(np.mean(naive_clv)),
        **{f"se_{k}": v for k, v in {**fitted.purchases.std_errors, **fitted.spend.std_errors}.items()},
    }
    if feats.heuristic_clv is not None:
        metrics["heuristic_clv_kpi"] = feats.heuristic_clv
    comparison = pd.DataFrame([
        {"method": f"{fitted.purchases.model} + gamma_gamma", "mean_clv": metrics["model_mean_clv"],
         "horizon": terms.horizon, "unit": fitted.unit, "annual_discount_rate": terms.discount_rate},
        {"method": "naive calibration rate", "mean_clv": metrics["naive_mean_clv"],
         "horizon": terms.horizon, "unit": fitted.unit, "annual_discount_rate": 0.0},
        {"method": "clv KPI (value x frequency / churn; expected lifetime, undiscounted)",
         "mean_clv": feats.heuristic_clv if feats.heuristic_clv is not None else np.nan,
         "horizon": np.nan, "unit": "", "annual_discount_rate": 0.0},
    ])
    figures = {
        "p_alive_matrix": p_alive_matrix_figure(
            model.bg, model.model, int(np.quantile(f, 0.99)) + 1, float(t.max()), float(t.max()),
        ),
        "clv_by_segment": clv_by_segment_figure(values["clv"], rfm_segments(table)),
    }
    calibration = feats.table
    if "frequency_holdout" in calibration.columns:
        calib_fit = fit_clv(ClvFeatures(calibration, feats.unit), fitted.params).model(cfg)
        cf, cr, ct, _ = arrays(calibration)
        predicted = calib_fit.expected_purchases(cf, cr, ct, calibration["duration_holdout"].to_numpy(dtype=np.float64))
        figures["calibration_holdout"] = calibration_holdout_figure(calibration, predicted)
    return Report(figures=figures, tables={"parameters": parameter_table(fitted), "clv_comparison": comparison},
                  metrics=metrics)
