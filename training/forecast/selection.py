"""Each series' configuration across the trials of a study, chosen on the selection windows only.

The candidates of a series are the study's trials (one configuration each, backtested on every series)
and, where the trials' per-step losses are given, the equal-weight means of its 2..`combine_max` best
trials of different model types (its best SARIMAX, ETS, Theta...; of different configurations where the
study tried one type only): a combination's forecast at each fold and step is the mean of its members' forecasts
there, scored like a trial (MASE per fold, mean over the folds) on the same windows, without refitting.

With a few folds per series, backtest differences are mostly noise (measured in bench/forecast.py), so:
- the best single model is the study's best configuration (lowest mean MASE over the series every
  trial scored) unless one of the series' own trials beats it by more than `margin` (0.2 = 20% lower);
- the best combination is preferred unless that single model is CLEARLY better: by more than `margin`
  in mean MASE AND on every selection fold (a paired comparison). A combination within noise of the
  best single model, or better, is taken: averaging forecasts of different kinds seldom loses much
  and often wins (the mean of AutoARIMA, AutoETS and AutoTheta is the best statsforecast peer);
- seasonal naive replaces the choice where it is better: with a combination, only where it is clearly
  better than the best candidate (by `margin`); without one, wherever no trial beats it.
Each choice carries a note saying which and why (logged per series, and the fitted model's reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.models.series_model import COMBO
from training.forecast.config import SWITCH_MARGIN
from training.forecast.spec import Spec


@dataclass(frozen=True)
class Candidate:
    """A configuration for one series and its selection-window scores."""

    params: dict[str, Any]
    mase: float
    folds: np.ndarray  # MASE per selection fold (fold order), empty where the losses are unknown
    label: str


def best_per_series(
    trial_details: list[tuple[dict[str, Any], pd.DataFrame]], margin: float = SWITCH_MARGIN,
    trial_losses: list[pd.DataFrame | None] | None = None, combine_max: int = 3,
) -> dict[str, dict[str, Any]]:
    """Each series' configuration across the trials, with a note saying why (see the module doc).

    `trial_details` holds (params, per-series details) per trial; details need `unique_id`, `mase`
    and `snaive_mase`. `trial_losses`: each trial's per-step losses (`backtest.LOSS_COLUMNS`), in the
    same order; without them no combination is a candidate.
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
    losses = _by_series(trial_losses or [])
    chosen: dict[str, dict[str, Any]] = {}
    for uid, row in mase.iterrows():
        scores = row[np.isfinite(row)]
        own_losses = {i: frames_[str(uid)] for i, frames_ in losses.items() if str(uid) in frames_}
        chosen[str(uid)] = _choose(scores, float(snaive[uid]), overall, margin, trial_details, own_losses, combine_max)
    return chosen


def _by_series(trial_losses: list[pd.DataFrame | None]) -> dict[int, dict[str, pd.DataFrame]]:
    out = {}
    for i, frame in enumerate(trial_losses):
        if frame is not None and len(frame):
            frame = frame.sort_values(["series_id", "fold", "step"])
            out[i] = {str(uid): g.reset_index(drop=True) for uid, g in frame.groupby("series_id", sort=False)}
    return out


def fold_mase(frame: pd.DataFrame, yhat: np.ndarray | None = None) -> np.ndarray:
    """MASE per fold of per-step losses (`yhat` replaces the forecasts, e.g. by a combination's)."""
    yhat = frame["yhat"].to_numpy(dtype="float64") if yhat is None else yhat
    err = np.abs(frame["actual"].to_numpy(dtype="float64") - yhat)
    per = pd.DataFrame({"fold": frame["fold"].to_numpy(), "err": err, "scale": frame["scale"].to_numpy(dtype="float64")})
    agg = per.groupby("fold", sort=True).agg(err=("err", "mean"), scale=("scale", "first"))
    return (agg["err"] / agg["scale"]).to_numpy(dtype="float64")


def _params(trial_details: list[tuple[dict[str, Any], pd.DataFrame]], i: int) -> dict[str, Any]:
    return {k: v for k, v in trial_details[i][0].items() if k not in ("per_series", "note")}


def _single(i: int, scores: pd.Series, trial_details: list, losses: dict[int, pd.DataFrame]) -> Candidate:
    params = _params(trial_details, i)
    folds = fold_mase(losses[i]) if i in losses else np.empty(0)
    return Candidate(params, float(scores[i]), folds, Spec.from_params(params).label())


def combination(members: list[pd.DataFrame]) -> np.ndarray | None:
    """The mean forecast of members' per-step losses at each (fold, step); None where their windows differ."""
    keys = [m[["fold", "step"]].to_numpy() for m in members]
    if any(k.shape != keys[0].shape or not np.array_equal(k, keys[0]) for k in keys[1:]):
        return None
    return np.mean([m["yhat"].to_numpy(dtype="float64") for m in members], axis=0)


def ranked_members(scores: pd.Series, trial_details: list, losses: dict[int, pd.DataFrame]) -> list[int]:
    """A series' trials to combine, best first: its best trial of each model type (diverse forecasts average
    out more error than near-copies of one model); with one type only, its best distinct configurations."""
    order = [int(i) for i in scores.sort_values(kind="stable").index if int(i) in losses]
    specs = {i: Spec.from_params(_params(trial_details, i)) for i in order}
    by_type = {specs[i].method: i for i in reversed(order)}  # each key ends on its best trial
    distinct = by_type if len(by_type) >= 2 else {specs[i]: i for i in reversed(order)}
    return sorted(distinct.values(), key=order.index)


def _best_combination(
    scores: pd.Series, trial_details: list, losses: dict[int, pd.DataFrame], combine_max: int,
) -> Candidate | None:
    """The best of the means of the series' 2..combine_max best members (None: no losses to combine)."""
    ranked = ranked_members(scores, trial_details, losses)
    best = None
    for k in range(2, min(combine_max, len(ranked)) + 1):
        members = ranked[:k]
        yhat = combination([losses[i] for i in members])
        if yhat is None:
            continue
        folds = fold_mase(losses[members[0]], yhat)
        score = float(np.mean(folds))
        if math.isfinite(score) and (best is None or score < best.mase):
            params = {"method": COMBO, "members": [_params(trial_details, i) for i in members]}
            best = Candidate(params, score, folds, Spec.from_params(params).label())
    return best


def clearly_better(a: Candidate, b: Candidate, margin: float) -> bool:
    """`a` beats `b` by more than `margin` in mean MASE and on every fold (when both have fold scores)."""
    paired = len(a.folds) == len(b.folds) and len(a.folds) > 0
    return a.mase < (1 - margin) * b.mase and (not paired or bool(np.all(a.folds < b.folds)))


def _choose(
    scores: pd.Series, snaive: float, overall: int | None, margin: float,
    trial_details: list[tuple[dict[str, Any], pd.DataFrame]], losses: dict[int, pd.DataFrame], combine_max: int,
) -> dict[str, Any]:
    if scores.empty:
        return {"method": "snaive", "note": "MASE undefined in every trial: seasonal naive"}
    own = int(scores.idxmin())
    default = overall if overall in scores.index else own
    single = own if scores[own] < (1 - margin) * scores[default] else default
    how = "the study's best configuration" if single == overall else f"its own best of {len(scores)} trial(s)"
    best, mine = _single(single, scores, trial_details, losses), _single(own, scores, trial_details, losses)
    combo = _best_combination(scores, trial_details, losses, combine_max)
    if combo is None:
        return _legacy(snaive, best, mine, how, len(scores))
    if clearly_better(best, combo, margin):
        pick, why = best, f"{how}, clearly better than the best combination ({combo.mase:.3f})"
    else:
        pick = combo
        relation = "within noise of" if best.mase < combo.mase else "better than"
        why = f"combination {relation} the best single model ({best.label} {best.mase:.3f})"
    if not pick.mase < snaive:
        top = min([mine, combo], key=lambda c: c.mase)
        if top.mase < snaive:
            pick, why = top, "the best candidate beating seasonal naive"
        elif snaive < (1 - margin) * combo.mase:
            note = f"seasonal naive {snaive:.3f} clearly better than the best candidate ({top.label} {top.mase:.3f})"
            return {"method": "snaive", "note": note}
        else:
            pick, why = combo, "combination kept: within noise of seasonal naive"
    return {**pick.params, "note": f"{why}: backtest MASE {pick.mase:.3f} vs seasonal naive {snaive:.3f}"}


def _legacy(snaive: float, best: Candidate, mine: Candidate, how: str, n_trials: int) -> dict[str, Any]:
    """Without combinations: the single model where it beats seasonal naive, else the series' own best, else seasonal naive."""
    pick = best
    if not pick.mase < snaive:
        pick, how = mine, f"its own best of {n_trials} trial(s)"
    if not pick.mase < snaive:
        note = f"best backtest MASE {mine.mase:.3f} of {n_trials} trial(s) does not beat seasonal naive {snaive:.3f}"
        return {"method": "snaive", "note": note}
    return {**pick.params, "note": f"{how}: backtest MASE {pick.mase:.3f} vs seasonal naive {snaive:.3f}"}
