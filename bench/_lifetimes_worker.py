"""lifetimes 0.11.3 fits, run by bench/clv.py (and used for the CDNOW reference numbers in tests).

lifetimes needs pandas<3 and numpy<2, so this runs in a throwaway env and imports nothing from
ecomlab. Usage:

    uv run --no-project --with lifetimes==0.11.3 --with 'pandas<3' --with 'numpy<2' --with 'scipy<1.14' \
        python bench/_lifetimes_worker.py IN.csv OUT.json [--penalizer 0.0] [--models bgnbd,mbgnbd,gg]

IN: columns frequency, recency, T, monetary (the CDNOW file's x, t_x, T, zbar are accepted too).
OUT: per model the fitted parameters (alpha in the data's time unit, as lifetimes reports it), fit
seconds, lifetimes' own objective at its optimum (`_negative_log_likelihood_`: the MEAN negative
log-likelihood on lifetimes' rescaled time, T / max T, plus the penalty) and `log_likelihood`: the
SUM of the log-likelihood in the data's own time unit, penalty excluded, computed with lifetimes'
own likelihood function at its fitted parameters.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter

RENAME = {"x": "frequency", "t_x": "recency", "zbar": "monetary"}


def fit_beta_geo(cls, data: pd.DataFrame, penalizer: float) -> dict:
    f, r, t = data["frequency"].to_numpy(), data["recency"].to_numpy(), data["T"].to_numpy()
    started = time.perf_counter()
    fitter = cls(penalizer_coef=penalizer).fit(f, r, t)
    seconds = time.perf_counter() - started
    params = {k: float(fitter.params_[k]) for k in ("r", "alpha", "a", "b")}
    log_params = np.log([params[k] for k in ("r", "alpha", "a", "b")])
    mean_nll = fitter._negative_log_likelihood(log_params, f.astype(int), r, t, np.ones(len(f)), 0.0)
    return {"params": params, "seconds": seconds, "objective_scaled_mean": float(fitter._negative_log_likelihood_),
            "log_likelihood": float(-mean_nll * len(f)), "n": int(len(f))}


def fit_gamma_gamma(data: pd.DataFrame, penalizer: float) -> dict:
    rep = data[data["frequency"] > 0]
    f, m = rep["frequency"].to_numpy(), rep["monetary"].to_numpy()
    started = time.perf_counter()
    fitter = GammaGammaFitter(penalizer_coef=penalizer).fit(f, m)
    seconds = time.perf_counter() - started
    params = {k: float(fitter.params_[k]) for k in ("p", "q", "v")}
    log_params = np.log([params[k] for k in ("p", "q", "v")])
    mean_nll = fitter._negative_log_likelihood(log_params, f, m, np.ones(len(f)), 0.0)
    return {"params": params, "seconds": seconds, "objective_scaled_mean": float(fitter._negative_log_likelihood_),
            "log_likelihood": float(-mean_nll * len(f)), "n": int(len(f))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--penalizer", type=float, default=0.0)
    parser.add_argument("--models", default="bgnbd,mbgnbd,gg")
    args = parser.parse_args()
    data = pd.read_csv(args.src).rename(columns=RENAME)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in args.models.split(","):
            if model == "bgnbd":
                out[model] = fit_beta_geo(BetaGeoFitter, data, args.penalizer)
            elif model == "mbgnbd":
                out[model] = fit_beta_geo(ModifiedBetaGeoFitter, data, args.penalizer)
            elif model == "gg":
                out[model] = fit_gamma_gamma(data, args.penalizer)
            else:
                raise SystemExit(f"unknown model {model!r}")
    with open(args.dst, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
