"""Each series' configuration across the trials of a study, chosen on the selection windows only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training.forecast.config import SWITCH_MARGIN


def best_per_series(
    trial_details: list[tuple[dict[str, Any], pd.DataFrame]], margin: float = SWITCH_MARGIN,
) -> dict[str, dict[str, Any]]:
    """Each series' configuration across the trials, with a note saying why.

    `trial_details` holds (params, per-series details) per trial; details need `unique_id`, `mase`
    and `snaive_mase`. A series takes the study's best configuration (lowest mean MASE over the
    series every trial scored) unless one of its own trials beats that by more than `margin`
    (0.2 = 20% lower MASE): with a few folds per series the plain per-series argmin mostly picks
    noise (measured in bench/forecast.py). A series whose chosen model does not beat seasonal
    naive in the backtest takes its own best trial if that does, else seasonal naive.
    """
    frames = [
        details[["unique_id", "mase", "snaive_mase"]].assign(trial=i)
        for i, (_, details) in enumerate(trial_details) if details is not None and not details.empty
    ]
    if not frames:
        return {}
    table = pd.concat(frames, ignore_index=True)
    mase = table.pivot_table(index="unique_id", columns="trial", values="mase", sort=False, dropna=False)
    snaive = table.groupby("unique_id", sort=False)["snaive_mase"].first()
    common = mase[np.isfinite(mase).all(axis=1)]
    overall = int(common.mean().idxmin()) if len(common) else None
    chosen: dict[str, dict[str, Any]] = {}
    for uid, row in mase.iterrows():
        chosen[str(uid)] = _choose(row[np.isfinite(row)], float(snaive[uid]), overall, margin, trial_details)
    return chosen


def _choose(
    scores: pd.Series, snaive: float, overall: int | None, margin: float,
    trial_details: list[tuple[dict[str, Any], pd.DataFrame]],
) -> dict[str, Any]:
    if scores.empty:
        return {"method": "snaive", "note": "MASE undefined in every trial: seasonal naive"}
    own = int(scores.idxmin())
    default = overall if overall in scores.index else own
    pick = own if scores[own] < (1 - margin) * scores[default] else default
    if not scores[pick] < snaive:
        pick = own
    if not scores[pick] < snaive:
        note = f"best backtest MASE {scores[own]:.3f} of {len(scores)} trial(s) does not beat seasonal naive {snaive:.3f}"
        return {"method": "snaive", "note": note}
    how = "the study's best configuration" if pick == overall else f"its own best of {len(scores)} trial(s)"
    params = {k: v for k, v in trial_details[pick][0].items() if k not in ("per_series", "note")}
    return {**params, "note": f"{how}: backtest MASE {scores[pick]:.3f} vs seasonal naive {snaive:.3f}"}
