"""Reference profiles of a model's inputs and the drift statistics against them (numpy/scipy only).

A profile is made once from the training inputs and stored with the model as JSON; the service and
`ecomlab drift` compare recent inputs with it. Numeric features keep quantile bin edges and the share
of training rows per bin; categorical ones the shares of their top categories plus "other". Both are
compared the same way: observed shares per bin against the reference shares (PSI), plus a KS p-value
(numeric, on the cumulative shares at the edges) or a chi-square p-value (categorical).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PROFILE_ARTIFACT = "reference_profile"  # the key in the logged model's artifacts (artifacts/reference_profile.json)
PROFILE_FILE = f"{PROFILE_ARTIFACT}.json"
PROFILE_VERSION = 1
EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
OTHER = "__other__"


def numeric_profile(values: Any, bins: int = 10) -> dict[str, Any]:
    """Interior quantile edges (ties merged, so a discrete feature gets fewer bins) and the share per bin."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        raise ValueError("a numeric profile needs at least one finite value")
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(numeric_bins(edges, x), minlength=len(edges) + 1)
    return {"kind": "numeric", "edges": edges.tolist(), "shares": (counts / len(x)).tolist(), "n": int(len(x))}


def categorical_profile(values: Iterable[Any], top: int = 20, weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Shares of the `top` most frequent categories (ties by label) and of everything else as "other"."""
    labels = [str(v) for v in values]
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(labels) == 0 or w.sum() <= 0:
        raise ValueError("a categorical profile needs at least one value")
    totals: dict[str, float] = {}
    for label, weight in zip(labels, w, strict=True):
        totals[label] = totals.get(label, 0.0) + float(weight)
    kept = sorted(totals, key=lambda k: (-totals[k], k))[:top]
    total = float(w.sum())
    shares = [totals[k] / total for k in kept]
    return {"kind": "categorical", "categories": kept, "shares": [*shares, max(0.0, 1.0 - sum(shares))], "n": len(labels)}


def make_profile(family: str, features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"version": PROFILE_VERSION, "family": family, "features": features}


def numeric_bins(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bin index of each value: bin i holds edges[i-1] < x <= edges[i] (bin 0 everything up to the first edge)."""
    return np.searchsorted(edges, x, side="left")


def category_codes(categories: Sequence[str]) -> dict[str, int]:
    """Category -> bin index; a category not in the profile falls in the last bin ("other")."""
    return {c: i for i, c in enumerate(categories)}


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float | None
    p_value: float | None
    test: str  # "ks" or "chi2"
    window: int
    status: str  # ok, warn, alert, insufficient


def psi(expected: np.ndarray, observed: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of observed shares against expected shares (empty bins get `epsilon`)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), epsilon, None)
    o = np.clip(np.asarray(observed, dtype=np.float64), epsilon, None)
    e, o = e / e.sum(), o / o.sum()
    return float(np.sum((o - e) * np.log(o / e)))


def ks_pvalue(expected: np.ndarray, counts: np.ndarray) -> float:
    """One-sample Kolmogorov-Smirnov p-value on the binned distribution: the largest gap between the
    reference's and the window's cumulative shares at the edges (conservative with ties, since the
    gap is only looked at on the edges)."""
    from scipy.special import kolmogorov

    n = int(counts.sum())
    gap = float(np.max(np.abs(np.cumsum(counts / n) - np.cumsum(expected))))
    return float(kolmogorov(np.sqrt(n) * gap))


def chi2_pvalue(expected: np.ndarray, counts: np.ndarray, epsilon: float = EPSILON) -> float:
    from scipy.stats import chisquare

    e = np.clip(np.asarray(expected, dtype=np.float64), epsilon, None)
    e = e / e.sum() * counts.sum()
    return float(chisquare(counts, e).pvalue)


def status_of(value: float, warn: float, alert: float) -> str:
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


def counts_of(spec: dict[str, Any], values: Any) -> np.ndarray:
    """Bin counts of raw values (numbers, or category labels) under one feature's profile."""
    bins = len(spec["shares"])
    if spec["kind"] == "numeric":
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        return np.bincount(numeric_bins(np.asarray(spec["edges"]), x), minlength=bins)
    codes = category_codes(spec["categories"])
    other = bins - 1
    return np.bincount(np.fromiter((codes.get(str(v), other) for v in values), dtype=np.int64), minlength=bins)


def compare(
    name: str, spec: dict[str, Any], counts: np.ndarray, warn: float = 0.1, alert: float = 0.25, min_window: int = 1
) -> FeatureDrift:
    """The drift of one feature from its bin counts in a window: PSI, p-value and status."""
    n = int(counts.sum())
    test = "ks" if spec["kind"] == "numeric" else "chi2"
    if n < max(1, min_window):
        return FeatureDrift(name, spec["kind"], None, None, test, n, "insufficient")
    expected = np.asarray(spec["shares"], dtype=np.float64)
    value = psi(expected, counts / n)
    p = ks_pvalue(expected, counts) if test == "ks" else chi2_pvalue(expected, counts)
    return FeatureDrift(name, spec["kind"], round(value, 6), p, test, n, status_of(value, warn, alert))


def compare_frame(
    profile: dict[str, Any], columns: dict[str, Any], warn: float = 0.1, alert: float = 0.25, min_window: int = 1
) -> list[FeatureDrift]:
    """Every profiled feature found in `columns` (name -> raw values) against the profile."""
    out = []
    for name, spec in profile["features"].items():
        if name in columns:
            out.append(compare(name, spec, counts_of(spec, columns[name]), warn, alert, min_window))
    return out
