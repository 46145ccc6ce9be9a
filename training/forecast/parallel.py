"""Series-parallel work on joblib's reusable loky process pool.

The pool starts once and is kept between trials: a worker pays ~5 s of imports (pandas,
statsmodels), so workers import only the worker-side modules (`fit`, `backtest`): no MLflow, Optuna
or matplotlib. BLAS threads are limited to one per task: with the default thread pool a SARIMAX fit
ran 10x slower on the 2 cores here.

On the Spark engine (`engine: spark`, `training.engine`) the same map runs on Spark instead
(`training.forecast.spark.map_series`: one group per series, `groupBy(series).applyInPandas`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

from training.engine import spark_settings

T = TypeVar("T")
R = TypeVar("R")


def _executor(max_workers: int) -> Any:
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=max_workers, timeout=600)


def run_parallel(func: Callable[[T], R], items: list[T], max_workers: int) -> list[R]:
    """`func` over items on worker processes (in-process when one worker or one item), in order.

    On the Spark engine the items (one `SeriesTask` per series) are mapped on Spark, in order too."""
    if spark_settings() is not None and items:
        from training.forecast.spark import map_series

        return map_series(func, items)  # type: ignore[arg-type]
    if max_workers <= 1 or len(items) <= 1:
        with threadpool_limits(1):
            return [func(item) for item in items]
    return list(_executor(max_workers).map(func, items))


def _import_models() -> None:
    import statsmodels.tsa.statespace.sarimax  # noqa: F401


def warm_up(max_workers: int) -> None:
    """Start the worker processes and their imports now, without waiting (e.g. while series are built)."""
    if max_workers > 1 and spark_settings() is None:
        executor = _executor(max_workers)
        for _ in range(max_workers):
            executor.submit(_import_models)
