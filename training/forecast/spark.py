"""The forecaster's per-series work on Spark: `groupBy(series).applyInPandas(...)`.

`map_series(func, tasks)` is the Spark implementation of `parallel.run_parallel`'s map, the one seam
every per-series step of the family goes through (the fits of `fit.fit_all`, the rolling-origin
backtests of trials, scores and calibration in `scoring.backtest_tables`). The series' periods become
rows of a Spark DataFrame (`unique_id`, position, `ds`, `y`, regressors); each group, one series, is
turned back into the same `SeriesTask` the local engine builds and given to the same `func`
(`fit.fit_series`, `backtest.backtest_series`), so the chosen orders and the forecasts are those of
the local engine. A group's result (a fitted `SeriesModel`, a backtest's rows and losses) is
returned pickled, one row per series, and put back in the tasks' order on the driver. An exception
raised for a series is raised again here, as the local engine would raise it.

The series are built on the driver by `features.series` (pandas); what grows with the number of
series, the fitting, runs on the executors. On a cluster, the executors need this package installed
(`pip install ecomlab[spark]` in their environment, or `spark.submit.pyFiles`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from serving.models.intervals import Conformal
from training.engine import session
from training.forecast.fit import SeriesTask
from training.forecast.spec import Spec

R = TypeVar("R")

RESULT_SCHEMA = "key long, ok boolean, payload binary"


@dataclass(frozen=True)
class TaskMeta:
    """What a task holds besides its periods: travels with the function to the executors."""

    uid: str
    spec: Spec
    note: str
    conformal: Conformal | None
    unit: str  # the resolution of `ds` (pandas 3 keeps s, ms, us or ns)
    tz: str | None
    user: tuple[str, ...] | None  # regressor column names, None when the task has no regressors


def long_frame(tasks: list[SeriesTask]) -> tuple[pd.DataFrame, dict[int, TaskMeta]]:
    """One row per period of every task: key (the task's position), unique_id, pos, ds (integer ticks), y, x0..xN."""
    parts, meta = [], {}
    for key, task in enumerate(tasks):
        n = len(task.y)
        part = pd.DataFrame({"key": np.full(n, key, dtype="int64"), "unique_id": task.uid,
                             "pos": np.arange(n, dtype="int64"), "ds": task.ds.asi8, "y": np.asarray(task.y, dtype="float64")})
        user = None if task.user is None else tuple(str(c) for c in task.user.columns)
        if task.user is not None:
            for i, column in enumerate(task.user.columns):
                part[f"x{i}"] = task.user[column].to_numpy()
        if n == 0:  # a group per task even without periods: the function says what it makes of it
            part = pd.DataFrame({"key": [key], "unique_id": [task.uid], "pos": [-1], "ds": [0], "y": [np.nan]})
        parts.append(part)
        tz = None if task.ds.tz is None else str(task.ds.tz)
        meta[key] = TaskMeta(task.uid, task.spec, task.note, task.conformal, task.ds.unit, tz, user)
    return pd.concat(parts, ignore_index=True), meta


def task_of(group: pd.DataFrame, meta: TaskMeta) -> SeriesTask:
    """The `SeriesTask` the local engine built, from a group's rows (in any order) and the task's metadata."""
    rows = group[group["pos"] >= 0].sort_values("pos")
    ds = pd.DatetimeIndex(rows["ds"].to_numpy(dtype="int64").view(f"datetime64[{meta.unit}]"), name="ds")
    if meta.tz is not None:
        ds = ds.tz_localize("UTC").tz_convert(meta.tz)
    user = None
    if meta.user is not None:
        user = pd.DataFrame({name: rows[f"x{i}"].to_numpy() for i, name in enumerate(meta.user)})
    return SeriesTask(meta.uid, rows["y"].to_numpy(dtype="float64"), ds, user, meta.spec, meta.note, meta.conformal)


@dataclass
class GroupRunner:
    """The function `applyInPandas` runs per series: rebuild the task, call `func`, return the result pickled."""

    func: Callable[[SeriesTask], Any]
    meta: dict[int, TaskMeta]

    def __call__(self, group: pd.DataFrame) -> pd.DataFrame:
        key = int(group["key"].iloc[0])
        try:
            result, ok = self.func(task_of(group, self.meta[key])), True
        except Exception as exc:  # raised again on the driver, as the local engine raises it
            result, ok = exc, False
        return pd.DataFrame({"key": [key], "ok": [ok], "payload": [_dumps(result)]})


def _dumps(result: Any) -> bytes:
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle: its type and message
        if not isinstance(result, BaseException):
            raise
        return pickle.dumps(RuntimeError(f"{type(result).__name__}: {result}"))


def map_series(func: Callable[[SeriesTask], R], tasks: list[SeriesTask]) -> list[R]:
    """`func` over every task on Spark, one `applyInPandas` group per series; results in the tasks' order."""
    spark = session()
    frame, meta = long_frame(tasks)
    # as many partitions as spark.sql.shuffle.partitions (at most one per series), fixed by number: adaptive
    # execution coalesces a groupBy's shuffle of these few bytes into one partition, i.e. one core for every fit
    parts = max(1, min(len(tasks), int(spark.conf.get("spark.sql.shuffle.partitions") or 1)))
    groups = spark.createDataFrame(frame).repartition(parts, "unique_id", "key").groupBy("unique_id", "key")
    runner = GroupRunner(func, meta)

    def run(group: pd.DataFrame) -> pd.DataFrame:  # a plain function: Spark counts a callable's `self` as the key argument
        return runner(group)

    rows = groups.applyInPandas(run, schema=RESULT_SCHEMA)
    results: dict[int, Any] = {}
    failures: dict[int, BaseException] = {}
    for row in rows.collect():
        value = pickle.loads(row["payload"])
        (results if row["ok"] else failures)[int(row["key"])] = value
    if failures:
        raise failures[min(failures)]
    missing = [tasks[k].uid for k in range(len(tasks)) if k not in results]
    if missing:
        raise RuntimeError(f"Spark returned no result for {len(missing)} series, e.g. {missing[:5]}")
    return [results[k] for k in range(len(tasks))]

