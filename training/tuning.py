"""The one Optuna runner: every study of the project (jobs, workers, tests, benchmarks) goes through here.

Trials are scored on the split's tuning data (`Split.valid`) only. With a parent MLflow run each
trial is one nested run; failures are recorded and the study goes on.

Two ways to run a study:
- `run_study`: one process (Optuna's `n_jobs` threads), `n_trials` trials per call;
- `work`: one of many worker processes sharing an RDB study (`ecomlab train --workers/--join`). A
  worker runs trials until the study holds `n_trials` COMPLETE trials. A trial claims one of the
  `n_trials` places when it starts; one that finds every place taken by lower-numbered running or
  complete trials is pruned unrun, so concurrent workers never overshoot. Heartbeats mark a killed
  worker's trial FAIL and `RetryHeartbeatStaleTrialCallback` queues it again (Optuna 5 names; the
  older `failed_trial_callback`/`RetryFailedTrialCallback` are deprecated aliases).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import optuna
import pandas as pd
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from features.config_io import ConfigError
from serving.tracking_uri import is_unreachable
from serving.tracking_uri import redact
from training import tracking
from training.config import Tuning
from training.family import Evaluation, TrialResult
from training.places import _ahead, _places
from training.worker_storage import WorkerStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

SIGNATURE_ATTR = "ecomlab.search_space"  # study user attr: family, direction and parameter distributions
POLL_SECONDS = 0.5  # how often an idle worker looks for stale or freed places


@dataclass(frozen=True)
class TrialRuns:
    """Where trial runs are logged: the job's parent run and its experiment."""

    parent_id: str
    experiment_id: str


@dataclass
class StudyResult:
    best_params: dict[str, Any]
    best: Evaluation
    n_complete: int
    n_failed: int
    trials: list[TrialResult] = field(default_factory=list)
    study: optuna.Study | None = None
    n_retried: int = 0  # trials queued again after their worker stopped beating (killed, lost)


@dataclass(frozen=True)
class WorkerResult:
    """What one worker did: trials it completed, failed and pruned unrun (every place already taken)."""

    complete: int
    failed: int
    pruned: int
    study_complete: int


def storage_for(tuning: Tuning) -> WorkerStorage | None:
    """In memory without a URL; an RDB URL (sqlite:///, postgresql://) gets heartbeats and stale-trial retry,
    behind the cache layer that answers this process's running trial from memory (`training.worker_storage`)."""
    if tuning.storage is None:
        return None
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5: the warning says nothing to a user
        warnings.simplefilter("ignore")
        return WorkerStorage(RDBStorage(
            tuning.storage,
            heartbeat_interval=tuning.heartbeat_interval,
            grace_period=tuning.grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=tuning.max_retry),
        ))


def search_signature(family: Any, model_cfg: Any) -> dict[str, Any]:
    """Family, direction and the distributions `search_space` samples, read off a throwaway trial."""
    scratch = optuna.create_study(direction=family.direction, sampler=optuna.samplers.RandomSampler(seed=0))
    trial = scratch.ask()
    family.search_space(trial, model_cfg)
    dists = {k: optuna.distributions.distribution_to_json(v) for k, v in sorted(trial.distributions.items())}
    return {"family": family.name, "direction": family.direction, "distributions": dists}


def open_study(family: Any, model_cfg: Any, tuning: Tuning, name: str, create: bool = True) -> optuna.Study:
    """The study (`tuning.study_name`, else `name`), created or loaded; a stored study made for another search space is refused (ConfigError).

    A fresh study starts from the family's well-tried candidates."""
    name = tuning.study_name or name
    storage = storage_for(tuning)
    sampler = optuna.samplers.TPESampler(seed=tuning.seed)
    if storage is None:
        study = optuna.create_study(direction=family.direction, sampler=sampler, study_name=name)
    elif create:
        study = optuna.create_study(direction=family.direction, sampler=sampler, storage=storage, study_name=name, load_if_exists=True)
    else:
        try:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        except KeyError:
            raise ConfigError(f"tuning.study_name: no study {name!r} in {redact(tuning.storage or '')}; start the job first") from None
    if storage is not None:
        _check_signature(study, search_signature(family, model_cfg), tuning)
    if create and not study.trials:
        for params in family.initial_trials(model_cfg)[: tuning.n_trials]:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def _check_signature(study: optuna.Study, signature: dict[str, Any], tuning: Tuning) -> None:
    stored = study.user_attrs.get(SIGNATURE_ATTR)
    if stored is None:
        ours = signature["distributions"]
        foreign = {k for t in study.trials for k, d in t.distributions.items()
                   if optuna.distributions.distribution_to_json(d) != ours.get(k)}
        if foreign or (study.trials and study.direction.name.lower() != signature["direction"]):
            stored = {"family": "?", "direction": study.direction.name.lower(), "distributions": {k: "other" for k in foreign}}
        else:
            study.set_user_attr(SIGNATURE_ATTR, signature)
            return
    if stored != signature:
        differ = sorted(k for k in set(stored["distributions"]) | set(signature["distributions"])
                        if stored["distributions"].get(k) != signature["distributions"].get(k))
        what = (f"family {stored['family']}, not {signature['family']}" if stored["family"] != signature["family"]
                else f"parameters {', '.join(differ)} differ" if differ else "direction differs")
        raise ConfigError(
            f"tuning.study_name: study {study.study_name!r} in {redact(tuning.storage or '')} holds another search space "
            f"({what}); set another tuning.study_name or storage"
        )


def _objective(
    family: Any, model_cfg: Any, train: Any, valid: Any, runs: TrialRuns | None,
    evaluations: dict[int, TrialResult], keep_details: bool, claim: Callable[[optuna.Trial], None] | None = None,
) -> Callable[[optuna.Trial], float]:
    lock = threading.Lock()
    lost: list[str] = []  # why the tracking store stopped answering, if it did: the study stops

    def tracked(trial: optuna.Trial, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if is_unreachable(exc):  # every later trial would fail the same way: stop instead of churning
                lost.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:500] if str(exc) else ''}")
                trial.study.stop()
            raise

    def objective(trial: optuna.Trial) -> float:
        if claim is not None:
            claim(trial)
        run_id = tracked(trial, tracking.start_trial_run, runs.parent_id, runs.experiment_id, trial.number) if runs else None
        worker = f"{socket.gethostname()}:{os.getpid()}"
        if run_id:  # written now: a killed worker's run is ended by `end_abandoned_runs`
            trial.set_user_attr("run", {"worker": worker, "run_id": run_id, "parent_run": runs.parent_id})
        params: dict[str, Any] = {}
        try:
            params = family.search_space(trial, model_cfg)
            ev = family.evaluate(train, valid, params, model_cfg)
        except Exception as exc:  # a failing trial is recorded with its traceback, the study goes on
            if run_id:
                tracked(trial, tracking.end_trial_run, run_id, params, {}, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        metrics = {family.objective_name: ev.objective, **ev.metrics}
        if run_id:
            tracked(trial, tracking.end_trial_run, run_id, params, metrics)
        result: dict[str, Any] = {"params": params, "metrics": {k: float(v) for k, v in metrics.items()}, "worker": worker}
        if keep_details and ev.details is not None:  # another process's `select` reads them back (`collect`)
            result["details"] = ev.details.to_json(orient="split", date_format="iso")
        trial.set_user_attr("result", result)  # one write per trial: every RDB write is a round trip
        with lock:
            evaluations[trial.number] = TrialResult(params, ev)
        return ev.objective

    objective.lost = lost  # type: ignore[attr-defined]
    return objective


class TrackingLost(RuntimeError):
    """The tracking store stopped answering during tuning, beyond MLflow's own retries."""


def _check_tracking(objective: Callable[[optuna.Trial], float]) -> None:
    lost = getattr(objective, "lost", [])
    if lost:
        raise TrackingLost(
            "the tracking store stopped answering during tuning, beyond MLflow's retries "
            f"(MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR): {lost[0]}"
        )


def run_study(
    family: Any,
    model_cfg: Any,
    train: Any,
    valid: Any,
    tuning: Tuning,
    study_name: str,
    runs: TrialRuns | None = None,
    on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
) -> StudyResult:
    """Tune `family` on (train, valid) in this process: `tuning.n_trials` more trials."""
    study = open_study(family, model_cfg, tuning, study_name)
    evaluations: dict[int, TrialResult] = {}
    objective = _objective(family, model_cfg, train, valid, runs, evaluations, tuning.storage is not None)
    callbacks = [lambda _study, frozen: on_trial(frozen)] if on_trial else []
    study.optimize(
        objective, n_trials=tuning.n_trials, timeout=tuning.timeout, n_jobs=tuning.n_jobs,
        catch=(Exception,), callbacks=callbacks, gc_after_trial=False,
    )
    _check_tracking(objective)
    return _result(study, evaluations)


def state_counts(study: optuna.Study) -> Counter[TrialState]:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def _claim(study: optuna.Study, n_trials: int) -> Callable[[optuna.Trial], None]:
    """Prune a trial whose place is taken: `n_trials` lower-numbered trials already run or ran to completion."""

    def claim(trial: optuna.Trial) -> None:
        if _ahead(study, trial.number) >= n_trials:
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("every place of the study is taken")

    return claim


def work(
    family: Any, model_cfg: Any, train: Any, valid: Any, tuning: Tuning, study_name: str,
    runs: TrialRuns | None, on_trial: Callable[[FrozenTrial], None] | None = None,
) -> WorkerResult:
    """Run trials of the shared study until it holds `tuning.n_trials` COMPLETE trials.

    Stops early at `tuning.timeout` seconds or once the study holds `n_trials` FAIL trials of its own
    making (a search space where everything fails must not loop for ever)."""
    study = open_study(family, model_cfg, tuning, study_name, create=False)
    objective = _objective(family, model_cfg, train, valid, runs, {}, True, _claim(study, tuning.n_trials))
    mine: Counter[TrialState] = Counter()

    def tally(_study: optuna.Study, frozen: FrozenTrial) -> None:
        mine[frozen.state] += 1
        if on_trial is not None and frozen.state == TrialState.COMPLETE:
            on_trial(frozen)

    deadline = time.monotonic() + tuning.timeout if tuning.timeout else float("inf")
    while time.monotonic() < deadline:
        counts, own_failures = _places(study)
        if counts[TrialState.COMPLETE] >= tuning.n_trials or own_failures >= tuning.n_trials:
            break
        if counts[TrialState.COMPLETE] + counts[TrialState.RUNNING] >= tuning.n_trials:
            time.sleep(POLL_SECONDS)  # every place is taken: wait for them to end or go stale
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fail_stale_trials(study)  # (`optimize` checks too, before each trial)
            continue
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[tally], gc_after_trial=False)
        _check_tracking(objective)
    return WorkerResult(mine[TrialState.COMPLETE], mine[TrialState.FAIL], mine[TrialState.PRUNED],
                        state_counts(study)[TrialState.COMPLETE])


def end_abandoned_runs(study: optuna.Study, parent_id: str) -> int:
    """End FAILED the trial runs (under `parent_id`) of workers that stopped beating: their trials were
    failed by heartbeat and queued again, but nobody was left to close their runs."""
    abandoned = [t.user_attrs["run"]["run_id"] for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                 if "error" not in t.user_attrs and t.user_attrs.get("run", {}).get("parent_run") == parent_id]
    for run_id in abandoned:
        tracking.end_trial_run(run_id, {}, {}, error="its worker stopped beating (killed or lost); the trial was queued again")
    return len(abandoned)


def collect(study: optuna.Study) -> StudyResult:
    """The study as stored: every COMPLETE trial rebuilt from its user attributes, whichever process ran it."""
    trials = study.get_trials(deepcopy=False)
    evaluations = {t.number: _stored(t) for t in trials if t.state == TrialState.COMPLETE}
    result = _result(study, evaluations)
    result.n_retried = sum(1 for t in trials if RetryHeartbeatStaleTrialCallback.retry_history(t))
    return result


def _stored(trial: FrozenTrial) -> TrialResult:
    result = trial.user_attrs.get("result", {})
    details = result.get("details")
    return TrialResult(result.get("params", trial.params), Evaluation(
        float(trial.value), result.get("metrics", {}),
        details=pd.read_json(StringIO(details), orient="split") if details is not None else None,
    ))


def _result(study: optuna.Study, evaluations: dict[int, TrialResult]) -> StudyResult:
    states = [t.state for t in study.trials]
    n_complete = states.count(optuna.trial.TrialState.COMPLETE)
    n_failed = states.count(optuna.trial.TrialState.FAIL)
    if n_complete == 0:
        errors = {t.user_attrs.get("error", "?") for t in study.trials if t.state == optuna.trial.TrialState.FAIL}
        raise RuntimeError(f"every trial failed ({n_failed}); errors: {sorted(errors)[:3]}")
    best_trial = study.best_trial
    if best_trial.number in evaluations:
        best = evaluations[best_trial.number]
    else:  # resumed study: the best trial ran in an earlier process
        best = _stored(best_trial)
    ordered = [evaluations[k] for k in sorted(evaluations)]
    return StudyResult(best.params, best.evaluation, n_complete, n_failed, ordered, study)

