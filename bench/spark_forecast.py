"""Many-series forecasts, local engine against Spark (issue 13): series per second for the per-series work.

N seeded synthetic weekly series (product-level: level, trend, a yearly season, noise; 2 years each) get
the forecaster's per-series work a job gives them: the rolling-origin backtest of one configuration
(the job's default, SARIMAX(1,1,1) with 2 Fourier pairs) and the final fit, once on the local engine
(joblib's loky pool, `max_workers` processes) and once on Spark `local[2]` (`engine: spark`:
`groupBy(series).applyInPandas` running the same per-series code, training/forecast/spark.py). Spark's
session start is timed apart and not counted. The two engines' forecasts are checked equal.

    .venv/bin/python bench/spark_forecast.py [--series 500] [--weeks 104] [--workers 2] [--repeat 1]

Prints a table: engine, series, seconds, series per second, and the first series' forecasts' largest
difference between the engines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per fit, as the pool sets it

from features.series import SeriesSet  # noqa: E402
from training.forecast.backtest import SeriesBacktest  # noqa: E402
from training.forecast.config import ForecastConfig  # noqa: E402
from training.forecast.fit import Context, _Fit, tasks  # noqa: E402
from training.forecast.parallel import run_parallel  # noqa: E402


def synthetic_series(n: int, weeks: int, seed: int = 7) -> SeriesSet:
    """`n` weekly product series: level x (1 + trend) x yearly season + noise, positive."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-01", periods=weeks, freq="W-SUN")
    t = np.arange(weeks)
    frames = []
    for i in range(n):
        level = rng.lognormal(6, 1)
        trend = rng.normal(0, 0.004)
        season = 1 + rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * (t + rng.integers(52)) / 52)
        y = level * (1 + trend * t) * season * rng.lognormal(0, 0.15, weeks)
        frames.append(pd.DataFrame({"unique_id": f"p{i:04d}", "ds": ds, "y": np.maximum(y, 0.0)}))
    return SeriesSet(frame=pd.concat(frames, ignore_index=True), freq="W")


def per_series_work(feats: SeriesSet, cfg: ForecastConfig, params: dict) -> tuple[list, list]:
    """What a job does per series for one configuration: the backtest on the selection windows, then the fit."""
    ctx = Context.of(feats, cfg)
    windows = (cfg.selection_folds, cfg.horizon, cfg.step)
    backtests = run_parallel(SeriesBacktest(ctx, windows, cfg.levels), tasks(feats, params), cfg.max_workers)
    models = run_parallel(_Fit(ctx), tasks(feats, params), cfg.max_workers)
    return backtests, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--workers", type=int, default=2, help="local engine worker processes")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per engine (the best is kept)")
    args = parser.parse_args()

    import yaml

    model = yaml.safe_load((REPO / "configs" / "forecast.yaml").read_text())["model"]
    cfg = ForecastConfig.model_validate({**model, "max_workers": args.workers})
    params = {"method": "sarimax", "p": 1, "d": 1, "q": 1, "trend": "n", "fourier": 2}
    feats = synthetic_series(args.series, args.weeks)
    print(f"{args.series} weekly series x {args.weeks} weeks; per series: backtest on {cfg.selection_folds} windows of "
          f"{cfg.horizon} weeks + final fit of SARIMAX(1,1,1)+2 Fourier pairs; 2 cores")

    rows = []
    results = {}
    for engine in ("local", "spark"):
        if engine == "spark":
            from training.engine import engine_scope

            started = time.perf_counter()
            scope = engine_scope("spark")
            scope.__enter__()
            print(f"Spark session start: {time.perf_counter() - started:.1f} s (not counted below)")
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            results[engine] = per_series_work(feats, cfg, params)
            best = min(best, time.perf_counter() - started)
        rows.append((engine, args.series, best))
        if engine == "spark":
            scope.__exit__(None, None, None)

    local_models, spark_models = results["local"][1], results["spark"][1]
    first_local, first_spark = local_models[0].forecast(8, [80, 95]), spark_models[0].forecast(8, [80, 95])
    numbers = first_local.select_dtypes("number").columns
    diff = float(np.max(np.abs(first_local[numbers].to_numpy() - first_spark[numbers].to_numpy())))
    same_specs = [(m.method, m.params) for m in local_models] == [(m.method, m.params) for m in spark_models]
    print(f"\n{'engine':8} {'series':>7} {'seconds':>9} {'series/s':>9}")
    for engine, n, seconds in rows:
        label = f"local ({args.workers} workers)" if engine == "local" else "spark local[2]"
        print(f"{label:22} {n:>7} {seconds:>9.1f} {n / seconds:>9.2f}")
    print(f"\nsame per-series specs on both engines: {same_specs}; first series' forecast, largest difference: {diff:.2e}")


if __name__ == "__main__":
    main()
