"""statsforecast's peers on rolling-origin folds, run by bench/forecast.py in a throwaway env.

statsforecast needs pandas<3, so this script cannot run in the project venv and imports nothing
from ecomlab. Usage (what bench/forecast.py runs):

    uv run --no-project --with statsforecast==2.1.1 --with pandas==2.3.3 \
        python bench/_statsforecast_worker.py IN.parquet OUT.parquet [MODEL ...]

MODEL: any of `MODELS` (default all) and COMBO, the mean of AutoARIMA, AutoETS and AutoTheta
(their point forecasts and their bounds averaged, as the issue's table measured it; its time is the
sum of theirs, which are then fitted once for both). IN: unique_id, y (in time order), season,
horizon, folds, step per row. OUT: one row per (model, unique_id, fold, step) with yhat,
lo_<level>, hi_<level>, plus failed/error/seconds per fold. A fit that raises is counted as failed
and replaced by seasonal naive, so every method is scored on every fold.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from statsforecast.models import AutoARIMA, AutoCES, AutoETS, AutoTheta, DynamicOptimizedTheta

LEVELS = [80, 95]
MODELS = {
    "AutoARIMA": AutoARIMA,
    "AutoETS": AutoETS,
    "AutoTheta": AutoTheta,
    "DynamicOptimizedTheta": DynamicOptimizedTheta,
    "AutoCES": AutoCES,
}
COMBO = "mean of AutoARIMA, AutoETS, AutoTheta"
COMBO_MEMBERS = ("AutoARIMA", "AutoETS", "AutoTheta")


def cutoffs(n: int, horizon: int, folds: int, step: int) -> list[int]:
    span = horizon + (folds - 1) * step
    return [c for c in (n - span + i * step for i in range(folds)) if c >= 2]


def snaive(y: np.ndarray, horizon: int, season: int) -> dict[str, np.ndarray]:
    s = season if len(y) >= season else 1
    mean = y[-s:][np.arange(horizon) % s]
    return {"mean": mean, **{f"{b}-{lv}": mean for lv in LEVELS for b in ("lo", "hi")}}


def one_fold(name: str, y: np.ndarray, horizon: int, season: int) -> tuple[dict[str, np.ndarray], str, float]:
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = MODELS[name](season_length=season).forecast(y=y, h=horizon, level=LEVELS)
        if not all(np.all(np.isfinite(out[k])) for k in ("mean", *(f"{b}-{lv}" for lv in LEVELS for b in ("lo", "hi")))):
            raise FloatingPointError("non-finite forecast or bounds")
        return out, "", time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - counted as a failed fit; seasonal naive stands in
        return snaive(y, horizon, season), f"{type(exc).__name__}: {exc}"[:300], time.perf_counter() - started


def combine(parts: list[tuple[dict[str, np.ndarray], str, float]]) -> tuple[dict[str, np.ndarray], str, float]:
    keys = parts[0][0].keys()
    out = {k: np.mean([np.asarray(p[0][k], dtype="float64") for p in parts], axis=0) for k in keys}
    return out, "; ".join(p[1] for p in parts if p[1]), sum(p[2] for p in parts)


def rows_of(model: str, uid: str, fold: int, out: dict[str, np.ndarray], error: str, seconds: float) -> list[dict]:
    rows = []
    for i in range(len(out["mean"])):
        row = {"model": model, "unique_id": uid, "fold": fold, "step": i + 1, "yhat": float(out["mean"][i]),
               "failed": bool(error), "error": error, "seconds": seconds if i == 0 else 0.0}
        for lv in LEVELS:
            row[f"lo_{lv}"], row[f"hi_{lv}"] = float(out[f"lo-{lv}"][i]), float(out[f"hi-{lv}"][i])
        rows.append(row)
    return rows


def main(src: str, dst: str, wanted: list[str]) -> None:
    unknown = [m for m in wanted if m not in MODELS and m != COMBO]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {[*MODELS, COMBO]}")
    fitted = list(dict.fromkeys([m for m in wanted if m in MODELS] + (list(COMBO_MEMBERS) if COMBO in wanted else [])))
    frame = pd.read_parquet(src)
    rows = []
    for uid, g in frame.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(dtype="float64")
        season, horizon, folds, step = (int(g[c].iloc[0]) for c in ("season", "horizon", "folds", "step"))
        for fold, cut in enumerate(cutoffs(len(y), horizon, folds, step)):
            h = min(horizon, len(y) - cut)
            outs = {name: one_fold(name, y[:cut], h, season) for name in fitted}
            if COMBO in wanted:
                outs[COMBO] = combine([outs[m] for m in COMBO_MEMBERS])
            for name in wanted:
                rows += rows_of(name, str(uid), fold, *outs[name])
            print(f"{uid} fold {fold}: " + ", ".join(f"{n} {o[2]:.1f} s{' FAILED' if o[1] else ''}" for n, o in outs.items()),
                  file=sys.stderr, flush=True)
    pd.DataFrame(rows).to_parquet(dst, index=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:] or [*MODELS, COMBO])
