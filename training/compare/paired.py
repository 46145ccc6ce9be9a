"""Compare two runs of one family from their per-unit losses: the one entry point the CLI and the registry gate call.

`compare_losses(family, a, b)` pairs the two loss tables on the family's evaluation unit, refuses
tables scored on different evaluation data, and runs the family's paired test:
- forecaster: panel Diebold-Mariano (HLN-style correction) on MASE-scaled errors, one unit per
  (series, fold), the variance clustered by series (`stats.panel_diebold_mariano`); units weighted
  by 1 / the series' folds, so the difference is that of the objective (mean over series of MASE);
- recommender: exact McNemar on the per-basket hits, Newcombe CI of the hit-rate difference;
- segmenter: the paired bootstrap replicates of the silhouette (`stats.replicate_difference`);
- clv: paired bootstrap of the mean absolute error over customers (holdout errors are skewed and
  mostly zero, so a resampling CI is safer than a t interval; customers have no time order for DM).
`difference` is always A minus B in the objective's units; `DIRECTIONS` says which sign is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from training.compare.stats import PairedResult, mcnemar, panel_diebold_mariano, paired_bootstrap, replicate_difference

DIRECTIONS = {"forecaster": "minimize", "recommender": "maximize", "segmenter": "maximize", "clv": "minimize"}
MIN_OVERLAP = 0.9  # share of each table's units that must be common: below it, the evaluation data differs


@dataclass(frozen=True)
class _Units:
    keys: tuple[str, ...]  # the evaluation unit
    values: tuple[str, ...]  # loss columns the test reads
    same: tuple[str, ...]  # columns that describe the evaluation data: must agree on every common unit
    metric: str  # the objective's name in a verdict


UNITS = {
    "forecaster": _Units(("series_id", "fold", "step"), ("abs_error", "scale"), ("actual",), "MASE"),
    "recommender": _Units(("basket_id",), ("hit",), ("hidden_item",), "hit rate"),
    "segmenter": _Units(("replicate",), ("silhouette",), (), "silhouette"),
    "clv": _Units(("customer_id",), ("abs_error",), ("actual",), "holdout MAE"),
}
TEST_NAMES = {"diebold-mariano-hln": "Diebold-Mariano, HLN", "mcnemar": "McNemar, exact",
              "paired-bootstrap": "paired bootstrap", "bootstrap": "bootstrap replicates"}


def _check_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str, family: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise ValueError(f"the {family} losses of {name} have no column '{col}'")
    dup = int(frame.duplicated(list(columns)).sum())
    if dup:
        raise ValueError(f"the {family} losses of {name} repeat {dup} evaluation unit(s) {columns}")


def _normalised_keys(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Ids compared as text (a Parquet round trip may change an id's dtype), folds/steps as numbers."""
    out = frame.copy()
    for key in keys:
        if not pd.api.types.is_numeric_dtype(out[key]):
            out[key] = out[key].astype(str)
    return out


def join_units(family: str, a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The common units of both tables (columns suffixed _a and _b); refuses different evaluation data."""
    if family not in UNITS:
        raise ValueError(f"unknown family '{family}': expected one of {', '.join(UNITS)}")
    spec = UNITS[family]
    _check_columns(a, spec.keys + spec.values, "A", family)
    _check_columns(b, spec.keys + spec.values, "B", family)
    same = tuple(c for c in spec.same if c in a.columns and c in b.columns)
    cols = list(dict.fromkeys(spec.keys + spec.values + same))
    left, right = _normalised_keys(a[cols], spec.keys), _normalised_keys(b[cols], spec.keys)
    joined = left.merge(right, on=list(spec.keys), suffixes=("_a", "_b"))
    if joined.empty:
        raise ValueError(f"no common evaluation units {spec.keys}: the runs were scored on different evaluation data")
    share = len(joined) / max(len(a), len(b))
    if share < MIN_OVERLAP:
        raise ValueError(f"only {len(joined)} of {max(len(a), len(b))} evaluation units {spec.keys} are common "
                         f"({share:.0%} < {MIN_OVERLAP:.0%}): the runs were scored on different evaluation data")
    for col in same:
        x, y = joined[f"{col}_a"], joined[f"{col}_b"]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            differ = ~np.isclose(x.to_numpy(np.float64), y.to_numpy(np.float64), equal_nan=True)
        else:
            differ = (x.astype(str) != y.astype(str)).to_numpy()
        if differ.any():
            raise ValueError(f"'{col}' differs on {int(differ.sum())} of {len(joined)} common units: "
                             "the runs were scored on different evaluation data")
    return joined


def _forecaster(joined: pd.DataFrame, alpha: float) -> tuple[PairedResult, float, float]:
    """Scaled errors per step, averaged per (series, fold); units with an undefined MASE scale are left out."""
    sa = joined["abs_error_a"].to_numpy(np.float64) / joined["scale_a"].to_numpy(np.float64)
    sb = joined["abs_error_b"].to_numpy(np.float64) / joined["scale_b"].to_numpy(np.float64)
    ok = np.isfinite(sa) & np.isfinite(sb)
    if not ok.any():
        raise ValueError("no common unit has a defined MASE scale: nothing to compare")
    steps = pd.DataFrame({"series_id": joined["series_id"][ok], "fold": joined["fold"][ok], "a": sa[ok], "b": sb[ok]})
    units = steps.groupby(["series_id", "fold"], sort=True)[["a", "b"]].mean().reset_index()
    folds = units.groupby("series_id")["fold"].transform("size").to_numpy(np.float64)
    result = panel_diebold_mariano(units["a"] - units["b"], units["series_id"].to_numpy(), alpha, 1.0 / folds)
    per_series = units.groupby("series_id")[["a", "b"]].mean()
    result = replace(result, detail={**result.detail, "units": len(units), "steps": int(ok.sum()),
                                     "steps_scale_undefined": int((~ok).sum())})
    return result, float(per_series["a"].mean()), float(per_series["b"].mean())


def compare_losses(family: str, a: pd.DataFrame, b: pd.DataFrame, *, alpha: float = 0.05, seed: int = 0,
                   score_a: float | None = None, score_b: float | None = None) -> PairedResult:
    """The family's paired test of run A against run B on their common evaluation units.

    `score_a`/`score_b` (the runs' logged objectives) are shown in verdicts; when absent they are
    computed from the losses on the common units. detail holds "metric", "score_a" and "score_b".
    """
    joined = join_units(family, a, b)
    if family == "forecaster":
        result, sa, sb = _forecaster(joined, alpha)
    elif family == "recommender":
        result = mcnemar(joined["hit_a"].to_numpy(), joined["hit_b"].to_numpy(), alpha)
        sa, sb = float(joined["hit_a"].mean()), float(joined["hit_b"].mean())
    elif family == "segmenter":
        given = None if score_a is None or score_b is None else score_a - score_b
        result = replicate_difference(joined["silhouette_a"], joined["silhouette_b"], alpha, given)
        sa, sb = float(joined["silhouette_a"].mean()), float(joined["silhouette_b"].mean())
    else:
        result = paired_bootstrap(joined["abs_error_a"], joined["abs_error_b"], seed=seed, alpha=alpha)
        sa, sb = float(joined["abs_error_a"].mean()), float(joined["abs_error_b"].mean())
    shown = {"metric": UNITS[family].metric, "score_a": sa if score_a is None else float(score_a),
             "score_b": sb if score_b is None else float(score_b), "alpha": alpha}
    return replace(result, detail={**result.detail, **shown})


def _check_direction(direction: str) -> None:
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got '{direction}'")


def significantly_better(result: PairedResult, direction: str, alpha: float = 0.05, min_effect: float = 0.0) -> bool:
    """A beats B: p < alpha, the CI excludes 0 on A's side, and the difference is at least `min_effect`."""
    _check_direction(direction)
    sign = 1.0 if direction == "maximize" else -1.0
    bound = result.ci_low if sign > 0 else -result.ci_high
    return result.p_value < alpha and bound > 0 and sign * result.difference >= min_effect


def _num(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) and abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def verdict(result: PairedResult, direction: str, alpha: float = 0.05, min_effect: float = 0.0,
            names: tuple[str, str] = ("A", "B")) -> str:
    """One line: who is better (or no significant difference), scores, difference, CI, p and test."""
    a, b = names
    flipped = replace(result, difference=-result.difference, ci_low=-result.ci_high, ci_high=-result.ci_low)
    if significantly_better(result, direction, alpha, min_effect):
        head = f"{a} is better than {b}"
    elif significantly_better(flipped, direction, alpha, min_effect):
        head = f"{b} is better than {a}"
    elif significantly_better(result, direction, alpha) or significantly_better(flipped, direction, alpha):
        head = f"no meaningful difference between {a} and {b} (below the minimum effect {_num(min_effect)})"
    else:
        head = f"no significant difference between {a} and {b}"
    d = result.detail
    scores = f"{d['metric']} {_num(float(d['score_a']))} vs {_num(float(d['score_b']))}, " if "metric" in d else ""
    level = f"{100 * (1 - float(d.get('alpha', alpha))):.3g}%"
    return (f"{head}: {scores}difference {_num(result.difference)} ({level} CI {_num(result.ci_low)} to "
            f"{_num(result.ci_high)}), {_p(result.p_value)} ({TEST_NAMES.get(result.test, result.test)})")
