"""The engine a training job runs on (`engine:` in its config, `--engine` on the command line).

`engine: pandas` (the default) runs everything in this process and its worker pool. `engine: spark`
runs the per-series forecast work (`training.forecast.spark`) and the itemset mining
(`training.rules.spark`) on Spark; the rest of the job (the study, scoring, tracking) stays here.
The engine is held for the duration of a job (`engine_scope`), process-wide rather than in a
context variable, so Optuna's trial threads (`tuning.n_jobs > 1`) see it too. Importing this module
never imports pyspark.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from features.spark.settings import SparkSettings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

_SPARK: SparkSettings | None = None  # the settings of the job running on Spark, None on the pandas engine


@contextmanager
def engine_scope(engine: str, settings: SparkSettings | None = None) -> Iterator[None]:
    """Run the enclosed job on `engine`; for spark the session starts here, so a missing Java or an
    unreachable master fails before any work (`features.spark.session.SparkUnavailable`)."""
    global _SPARK
    previous = _SPARK
    if engine == "spark":
        settings = settings or SparkSettings()
        session(settings)
        _SPARK = settings
    else:
        _SPARK = None
    try:
        yield
    finally:
        _SPARK = previous


def spark_settings() -> SparkSettings | None:
    """The Spark settings of the running job, or None when it runs on the pandas engine."""
    return _SPARK


def session(settings: SparkSettings | None = None) -> SparkSession:
    """The process's active Spark session (a test's, or one an earlier step started), else a new one from `settings`."""
    from features.spark.session import spark_session

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return spark_session(settings)  # raises SparkUnavailable with the install hint
    active = SparkSession.getActiveSession()
    return active if active is not None else spark_session(settings or _SPARK or SparkSettings())
