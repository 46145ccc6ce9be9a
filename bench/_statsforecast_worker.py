"""statsforecast's AutoARIMA on rolling-origin folds, run by bench/forecast.py in a throwaway env.

statsforecast needs pandas<3, so this script cannot run in the project venv and imports nothing
from ecomlab. Usage (what bench/forecast.py runs):

    uv run --no-project --with statsforecast==2.1.1 --with pandas==2.3.3 \
        python bench/_statsforecast_worker.py IN.parquet OUT.parquet

IN: unique_id, y (in time order), season, horizon, folds, step per row. OUT: one row per
(unique_id, fold, step) with yhat, lo_<level>, hi_<level>, plus failed/error/seconds per fold. A fit
that raises is counted as failed and replaced by seasonal naive, so every method is scored on
every fold.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from statsforecast.models import AutoARIMA

LEVELS = [80, 95]


def cutoffs(n: int, horizon: int, folds: int, step: int) -> list[int]:
    span = horizon + (folds - 1) * step
    return [c for c in (n - span + i * step for i in range(folds)) if c >= 2]


def snaive(y: np.ndarray, horizon: int, season: int) -> dict[str, np.ndarray]:
    s = season if len(y) >= season else 1
    mean = y[-s:][np.arange(horizon) % s]
    return {"mean": mean, **{f"{b}-{lv}": mean for lv in LEVELS for b in ("lo", "hi")}}


def one_fold(y: np.ndarray, horizon: int, season: int) -> tuple[dict[str, np.ndarray], str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = AutoARIMA(season_length=season).forecast(y=y, h=horizon, level=LEVELS)
        if not np.all(np.isfinite(out["mean"])):
            raise FloatingPointError("non-finite forecast")
        return out, ""
    except Exception as exc:  # noqa: BLE001 - counted as a failed fit; seasonal naive stands in
        return snaive(y, horizon, season), f"{type(exc).__name__}: {exc}"[:300]


def main(src: str, dst: str) -> None:
    frame = pd.read_parquet(src)
    rows = []
    for uid, g in frame.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(dtype="float64")
        season, horizon, folds, step = (int(g[c].iloc[0]) for c in ("season", "horizon", "folds", "step"))
        for fold, cut in enumerate(cutoffs(len(y), horizon, folds, step)):
            h = min(horizon, len(y) - cut)
            started = time.perf_counter()
            out, error = one_fold(y[:cut], h, season)
            seconds = time.perf_counter() - started
            for i in range(h):
                row = {"unique_id": uid, "fold": fold, "step": i + 1, "yhat": float(out["mean"][i]),
                       "failed": bool(error), "error": error, "seconds": seconds if i == 0 else 0.0}
                for lv in LEVELS:
                    row[f"lo_{lv}"], row[f"hi_{lv}"] = float(out[f"lo-{lv}"][i]), float(out[f"hi-{lv}"][i])
                rows.append(row)
            print(f"{uid} fold {fold}: {seconds:.1f} s{' FAILED ' + error if error else ''}", file=sys.stderr, flush=True)
    pd.DataFrame(rows).to_parquet(dst, index=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
