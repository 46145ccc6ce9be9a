"""compare_losses per family: joins on the evaluation unit, refuses different data, direction and verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.compare import DIRECTIONS, PairedResult, compare_losses, significantly_better, verdict


def forecast_losses(seed: int, series: int = 30, folds: int = 3, steps: int = 6) -> pd.DataFrame:
    """Seeded forecaster losses shaped like the backtest's: overlapping folds one period apart."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(series):
        scale = float(rng.uniform(0.5, 3.0))
        level = rng.gamma(2.0, 0.5)
        for fold in range(folds):
            for step in range(1, steps + 1):
                actual = float(rng.normal(10.0, 2.0))
                err = scale * level * rng.exponential(1.0)
                rows.append({"series_id": f"s{s}", "fold": fold, "step": step,
                             "ds": pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=fold + step), "actual": actual,
                             "yhat": actual + err, "abs_error": err, "scale": scale})
    return pd.DataFrame(rows)


def worse(frame: pd.DataFrame, factor: float, noise: float, seed: int) -> pd.DataFrame:
    out = frame.copy()
    rng = np.random.default_rng(seed)
    out["abs_error"] = np.abs(frame["abs_error"] * factor + rng.normal(0.0, noise, len(frame)) * frame["scale"])
    return out


def recommender_losses(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hit = (rng.random(n) < 0.3).astype(np.int64)
    return pd.DataFrame({"basket_id": [f"b{i}" for i in range(n)], "hidden_item": rng.integers(0, 50, n).astype(str),
                         "hit": hit, "rank": np.where(hit == 1, rng.integers(1, 6, n), np.nan)})


def segmenter_losses(base: float = 0.4, seed: int = 0) -> pd.DataFrame:
    reps = np.random.default_rng(seed).normal(base, 0.01, 50)
    return pd.DataFrame({"replicate": np.arange(50), "silhouette": reps})


def clv_losses(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actual = rng.poisson(0.6, n).astype(float)
    predicted = np.clip(actual + rng.normal(0.0, 0.8, n), 0, None)
    err = predicted - actual
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "actual": actual, "predicted": predicted,
                         "abs_error": np.abs(err), "squared_error": err**2})


FAMILIES = {"forecaster": lambda: forecast_losses(0), "recommender": recommender_losses,
            "segmenter": segmenter_losses, "clv": clv_losses}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_identical_losses_give_no_difference(family: str) -> None:
    a = FAMILIES[family]()
    res = compare_losses(family, a, a.sample(frac=1.0, random_state=3))  # row order must not matter
    assert res.difference == 0.0
    assert res.p_value >= 0.99
    assert res.ci_low <= 0.0 <= res.ci_high and res.ci_high - res.ci_low < 0.05
    assert res.n > 0 and res.detail["score_a"] == res.detail["score_b"]
    assert not significantly_better(res, DIRECTIONS[family])
    assert verdict(res, DIRECTIONS[family]).startswith("no significant difference between A and B")


def test_clearly_better_forecaster_is_significant() -> None:
    a = forecast_losses(1)
    b = worse(a, 1.3, 0.2, seed=2)
    res = compare_losses("forecaster", a, b)
    assert res.test == "diebold-mariano-hln"
    assert res.difference < 0 and res.ci_high < 0 and res.p_value < 0.01
    assert res.detail["clusters"] == 30 and res.detail["units"] == 90 and res.n == 90
    # the difference is the MASE difference: per series, the mean over folds of the fold's MASE
    mase = [f.assign(q=f.abs_error / f.scale).groupby(["series_id", "fold"]).q.mean().mean() for f in (a, b)]
    assert res.difference == pytest.approx(mase[0] - mase[1], abs=1e-12)
    assert significantly_better(res, "minimize")
    reverse = compare_losses("forecaster", b, a)
    assert reverse.difference == pytest.approx(-res.difference) and not significantly_better(reverse, "minimize")
    line = verdict(res, "minimize", names=("new", "champion"))
    assert line.startswith("new is better than champion: MASE ") and "Diebold-Mariano, HLN" in line
    assert verdict(reverse, "minimize", names=("champion", "new")).startswith("new is better than champion")


def test_pure_noise_forecasters_are_mostly_not_significant() -> None:
    significant = 0
    for seed in range(20):
        a = forecast_losses(100 + seed)
        b = a.copy()
        b["abs_error"] = forecast_losses(200 + seed)["abs_error"] * a["scale"] / forecast_losses(200 + seed)["scale"]
        significant += compare_losses("forecaster", a, b).p_value < 0.05
    assert significant <= 3


def test_forecaster_leaves_out_undefined_scales() -> None:
    a = forecast_losses(4)
    a.loc[a["series_id"] == "s0", "scale"] = np.nan
    res = compare_losses("forecaster", a, worse(a, 1.1, 0.1, seed=5))
    assert res.detail["clusters"] == 29 and res.detail["steps_scale_undefined"] == 18


def test_recommender_mcnemar_and_maximize_direction() -> None:
    b = recommender_losses(seed=1)
    a = b.copy()
    misses = np.flatnonzero(a["hit"].to_numpy() == 0)[:60]
    a.loc[misses, "hit"] = 1
    res = compare_losses("recommender", a, b)
    assert res.test == "mcnemar" and res.detail["a_only"] == 60 and res.detail["b_only"] == 0
    assert res.difference == pytest.approx(60 / 400) and res.p_value < 1e-10
    assert significantly_better(res, "maximize") and not significantly_better(res, "minimize")
    assert not significantly_better(res, "maximize", min_effect=0.2)
    assert "no meaningful difference" in verdict(res, "maximize", min_effect=0.2)
    assert verdict(res, "maximize").startswith("A is better than B: hit rate 0.472 vs 0.323, difference 0.15")


def test_segmenter_uses_given_scores_and_replicates() -> None:
    b = segmenter_losses(0.40, seed=3)
    a = b.assign(silhouette=b["silhouette"] + 0.02)
    res = compare_losses("segmenter", a, b, score_a=0.43, score_b=0.41)
    assert res.test == "bootstrap" and res.difference == pytest.approx(0.02)
    assert res.ci_low == pytest.approx(0.02) and res.p_value == pytest.approx(2 / 51)
    assert (res.detail["score_a"], res.detail["score_b"]) == (0.43, 0.41)


def test_clv_paired_bootstrap_is_seeded() -> None:
    a = clv_losses(seed=6)
    b = a.assign(abs_error=a["abs_error"] + np.random.default_rng(7).uniform(0.0, 0.2, len(a)))
    res = compare_losses("clv", a, b, seed=1)
    assert res.test == "paired-bootstrap"
    assert res.difference == pytest.approx(a["abs_error"].mean() - b["abs_error"].mean(), abs=1e-12)
    assert significantly_better(res, "minimize")
    again, other = compare_losses("clv", a, b, seed=1), compare_losses("clv", a, b, seed=2)
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)
    assert (other.ci_low, other.ci_high) != (res.ci_low, res.ci_high)


def test_different_evaluation_units_are_refused() -> None:
    a = forecast_losses(0)
    shifted = a.assign(series_id=a["series_id"] + "x")
    with pytest.raises(ValueError, match="no common evaluation units"):
        compare_losses("forecaster", a, shifted)
    half = a[a["fold"] < 2]
    with pytest.raises(ValueError, match=r"only 360 of 540 evaluation units .* different evaluation data"):
        compare_losses("forecaster", a, half)
    relabelled = a.assign(actual=a["actual"] + 1.0)
    with pytest.raises(ValueError, match="'actual' differs on 540 of 540"):
        compare_losses("forecaster", a, relabelled)
    rec = recommender_losses()
    other_hidden = rec.assign(hidden_item=rec["hidden_item"] + "_")
    with pytest.raises(ValueError, match="'hidden_item' differs"):
        compare_losses("recommender", rec, other_hidden)


def test_missing_columns_duplicates_and_unknown_family_are_named() -> None:
    a = clv_losses()
    with pytest.raises(ValueError, match="losses of B have no column 'abs_error'"):
        compare_losses("clv", a, a.drop(columns="abs_error"))
    with pytest.raises(ValueError, match="no column 'scale'"):
        compare_losses("forecaster", forecast_losses(0).drop(columns="scale"), forecast_losses(0))
    with pytest.raises(ValueError, match="repeat 1 evaluation unit"):
        compare_losses("clv", pd.concat([a, a.iloc[:1]]), a)
    with pytest.raises(ValueError, match="unknown family 'ranker'"):
        compare_losses("ranker", a, a)


def test_verdict_formats_one_line() -> None:
    res = PairedResult("diebold-mariano-hln", -0.13, -0.19, -0.07, 0.0003, 90, -4.1,
                       {"metric": "MASE", "score_a": 1.21, "score_b": 1.34})
    assert verdict(res, "minimize") == ("A is better than B: MASE 1.21 vs 1.34, difference -0.13 "
                                        "(95% CI -0.19 to -0.07), p = 0.0003 (Diebold-Mariano, HLN)")
    with pytest.raises(ValueError, match="direction"):
        significantly_better(res, "lower")


def test_forecaster_difference_is_the_objective_difference_with_unequal_folds() -> None:
    """A short series with fewer folds counts once, like in the objective (mean over series of MASE)."""
    full = forecast_losses(12)
    a = full[~((full["series_id"] == "s0") & (full["fold"] > 0))].reset_index(drop=True)
    b = worse(a, 1.2, 0.3, seed=13)
    res = compare_losses("forecaster", a, b)

    def objective(f: pd.DataFrame) -> float:
        fold_mase = f.assign(q=f.abs_error / f.scale).groupby(["series_id", "fold"]).q.mean()
        return float(fold_mase.groupby(level="series_id").mean().mean())

    assert res.n == 88 and res.detail["clusters"] == 30
    assert res.difference == pytest.approx(objective(a) - objective(b), abs=1e-12)
    assert (res.detail["score_a"], res.detail["score_b"]) == pytest.approx((objective(a), objective(b)), abs=1e-12)
