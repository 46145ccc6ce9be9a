"""What the BG/NBD and Gamma-Gamma fits share: errors, row compression, the optimiser, standard errors.

The fits minimise lifetimes' objective form, mean negative log-likelihood + penalizer * sum(params**2),
over log-parameters with L-BFGS-B and analytic gradients. A fit counts as converged only when the
optimiser says so (or stopped in a line search with a gradient already at rounding level) and no
log-parameter sits at its bound; otherwise NotConverged says which model and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]

#: L-BFGS-B may stop in a line search once the mean objective's gradient is at rounding level
GRADIENT_FLOOR = 1e-6
#: log-parameters may move this far from their start; reaching it means a parameter ran to 0 or inf
LOG_SPAN = 20.0
#: a standard error above this many times its parameter means no maximum either: the likelihood is flat along
#: that direction to within the Hessian's rounding, which floating point may leave barely positive definite
MAX_RELATIVE_SE = 100.0


_THREADPOOLS: list[ThreadpoolController] = []


def _one_blas_thread():
    """A context with one BLAS thread; the controller is found once (scanning the libraries costs ~6 ms)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


class NotConverged(ValueError):
    """The optimiser did not reach a proper maximum of the likelihood."""


class NoRepeatPurchases(ValueError):
    """No customer has a repeat purchase, so dropout and spend cannot be estimated."""


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: OpenBLAS threads its dot on long vectors, which on shared cores made
    each likelihood evaluation 50x slower (2 cores, load 3); a ufunc and a pairwise sum do not."""
    return float(np.multiply(a, b).sum())


def softplus_and_sigmoid(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + e^z) and 1 / (1 + e^-z) from one exp, stable at both ends."""
    e = np.exp(-np.abs(z))
    return np.maximum(z, 0.0) + np.log1p(e), np.where(z >= 0, 1.0, e) / (1.0 + e)


def as_float(name: str, values: ArrayLike) -> np.ndarray:
    """A 1-d float array; ValueError naming `name` on NaN or infinite entries."""
    out = np.asarray(values, dtype="float64").reshape(-1)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} has {int((~np.isfinite(out)).sum())} missing or infinite values")
    return out


def as_weights(weights: ArrayLike | None, n: int) -> np.ndarray:
    """Row weights (customers per row), ones by default; must be finite and >= 0."""
    if weights is None:
        return np.ones(n)
    w = as_float("weights", weights)
    if w.shape[0] != n or np.any(w < 0):
        raise ValueError(f"weights must be {n} non-negative numbers")
    return w


@dataclass(frozen=True)
class Compressed:
    """Distinct rows of the input columns, how many customers (summed weights) share each, and per
    column its distinct values and each row's code into them (so callers need not sort again)."""

    columns: list[np.ndarray]
    weights: np.ndarray
    uniques: list[np.ndarray]
    codes: list[np.ndarray]


def compress(columns: Sequence[np.ndarray], weights: np.ndarray) -> Compressed:
    """Identical rows merged by hash factorisation (no sort: ~0.2 s for 1M rows of 3 columns)."""
    key = np.zeros(columns[0].shape[0], dtype="int64")
    span = 1
    factorised = [pd.factorize(col) for col in columns]
    for codes, uniques in factorised:
        if span * len(uniques) >= 2**62:
            key, _ = pd.factorize(key)
            span = int(key.max()) + 1 if key.size else 1
        key = key * len(uniques) + codes
        span *= len(uniques)
    rows, _ = pd.factorize(key)
    n_rows = int(rows.max()) + 1 if rows.size else 0
    first = np.empty(n_rows, dtype="int64")
    first[rows[::-1]] = np.arange(rows.size)[::-1]
    return Compressed([c[first] for c in columns], np.bincount(rows, weights, minlength=n_rows),
                      [np.asarray(u) for _, u in factorised], [c[first] for c, _ in factorised])


def penalised_objective(log_likelihood_and_gradient: Callable[[np.ndarray, Any], tuple[float, np.ndarray]],
                        rows: Any, penalizer: float) -> Objective:
    """The minimised function of the log parameters: mean negative log-likelihood plus
    `penalizer * sum(params ** 2)` (lifetimes' `penalizer_coef` form), and its gradient."""
    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, grad = log_likelihood_and_gradient(params, rows)
        value = -ll / rows.n + penalizer * dot(params, params)
        return value, -params * grad / rows.n + 2.0 * penalizer * params**2
    return f


def numeric_hessian(objective: Objective, theta: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Forward differences of the analytic gradient from the optimum, symmetrised (k + 1 evaluations)."""
    k = theta.size
    at = objective(theta)[1]
    hess = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = step
        hess[:, j] = (objective(theta + e)[1] - at) / step
    return (hess + hess.T) / 2


def std_errors(hess_total: np.ndarray, natural: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Delta method: Cov(natural) = J H^-1 J with J = diag(natural), H the Hessian in log-parameters.

    At the optimum the gradient is zero, so this equals the inverse Hessian in natural parameters.
    NaN when the Hessian is not positive definite (a flat or saddle direction).
    """
    try:
        np.linalg.cholesky(hess_total)
        cov = np.linalg.inv(hess_total)
    except np.linalg.LinAlgError:
        return {n: float("nan") for n in names}
    return {n: float(v * np.sqrt(c)) for n, v, c in zip(names, natural, np.diag(cov), strict=True)}


@dataclass(kw_only=True)
class FitOutcome:
    """What every lifetime fit reports beside its parameters: the log-likelihood (summed over customers,
    in the caller's unit), customers fitted, the optimiser's account and the standard errors."""

    log_likelihood: float
    n: int
    converged: bool
    iterations: int
    std_errors: dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class Optimum:
    """The fitted natural parameters, their standard errors and the optimiser's account."""

    theta: np.ndarray
    natural: np.ndarray
    std_errors: dict[str, float]
    iterations: int
    message: str


def _where(names: Sequence[str], theta: np.ndarray, grad: np.ndarray) -> str:
    values = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, np.exp(theta), strict=True))
    return f"at {values} (scaled), largest gradient {np.max(np.abs(grad)):.2e}"


def minimise(objective: Objective, theta0: np.ndarray, what: str, names: Sequence[str], n: float,
             unit_factor: np.ndarray) -> Optimum:
    """L-BFGS-B within theta0 +- LOG_SPAN, then standard errors; NotConverged unless a proper maximum.

    `n` turns the mean objective's Hessian into the total's; `unit_factor` maps the fitted
    (scaled) parameters to the caller's units. A maximum needs a positive definite Hessian: without
    one the likelihood is flat along some direction, i.e. parameters run off to 0 or infinity.
    """
    bounds = [(t - LOG_SPAN, t + LOG_SPAN) for t in theta0]
    # one BLAS thread: L-BFGS-B's small BLAS calls on threads cost 4x the whole fit on 2 busy cores
    with np.errstate(all="ignore"), _one_blas_thread():
        res = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 2000, "maxcor": 20, "ftol": 1e-15, "gtol": 1e-10})
    message = str(res.message)
    if not np.isfinite(res.fun) or not np.all(np.isfinite(res.x)):
        raise NotConverged(f"{what}: the likelihood is not finite where the optimiser stopped ({message})")
    if not res.success and not np.max(np.abs(res.jac)) < GRADIENT_FLOOR:
        raise NotConverged(f"{what}: the optimiser stopped after {res.nit} iterations ({message.strip()}) "
                           f"{_where(names, res.x, res.jac)}")
    stuck = [n for n, t, (lo, hi) in zip(names, res.x, bounds, strict=True) if min(t - lo, hi - t) < 1e-3]
    if stuck:
        raise NotConverged(f"{what}: {', '.join(stuck)} ran to 0 or infinity (log-parameter at its bound "
                           f"{LOG_SPAN} from the start); the data do not identify the model, try a penalizer")
    natural = np.exp(res.x) * unit_factor
    with np.errstate(all="ignore"), _one_blas_thread():
        errors = std_errors(numeric_hessian(objective, res.x) * n, natural, names)
    relative = [errors[n] / v for n, v in zip(names, natural, strict=True) if v > 0]
    if not all(np.isfinite(list(errors.values()))) or max(relative, default=0.0) > MAX_RELATIVE_SE:
        raise NotConverged(f"{what}: no proper maximum, the likelihood is flat along some direction "
                           f"(parameters running off to 0 or infinity) {_where(names, res.x, res.jac)}; "
                           "try a penalizer")
    return Optimum(res.x, natural, errors, int(res.nit), message)


def weighted_correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Pearson correlation with case weights; NaN when either side is constant or absent (sums with
    `dot`, not np.average, whose BLAS call cost ~2.5 ms per 60k rows on these cores)."""
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    dx, dy = x - dot(w, x) / total, y - dot(w, y) / total
    sxx, syy = dot(w, dx * dx), dot(w, dy * dy)
    return float(dot(w, dx * dy) / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else float("nan")
