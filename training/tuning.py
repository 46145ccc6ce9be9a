"""The one Optuna runner: every study of the project (jobs, tests, benchmarks) goes through `run_study`.

Trials are scored on the split's tuning data (`Split.valid`) only. With a parent MLflow run each
trial is one nested run; failures are recorded and the study goes on.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from training import tracking
from training.config import Tuning
from training.family import Evaluation, TrialResult

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)


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


def make_study(direction: str, tuning: Tuning, default_name: str) -> optuna.Study:
    """In memory by default; an RDB storage URL makes the study resumable and shareable."""
    return optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=tuning.seed),
        storage=tuning.storage,
        study_name=tuning.study_name or default_name,
        load_if_exists=tuning.storage is not None,
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
    """Tune `family` on (train, valid); a fresh study starts from the family's well-tried candidates."""
    study = make_study(family.direction, tuning, study_name)
    if not study.trials:
        for params in family.initial_trials(model_cfg)[: tuning.n_trials]:
            study.enqueue_trial(params, skip_if_exists=True)
    evaluations: dict[int, TrialResult] = {}
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        run_id = tracking.start_trial_run(runs.parent_id, runs.experiment_id, trial.number) if runs else None
        params: dict[str, Any] = {}
        try:
            params = family.search_space(trial, model_cfg)
            ev = family.evaluate(train, valid, params, model_cfg)
        except Exception as exc:  # a failing trial is recorded with its traceback, the study goes on
            if run_id:
                tracking.end_trial_run(run_id, params, {}, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        metrics = {family.objective_name: ev.objective, **ev.metrics}
        if run_id:
            tracking.end_trial_run(run_id, params, metrics)
            trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("params", params)
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        with lock:
            evaluations[trial.number] = TrialResult(params, ev)
        return ev.objective

    callbacks = [lambda _study, frozen: on_trial(frozen)] if on_trial else []
    study.optimize(
        objective, n_trials=tuning.n_trials, timeout=tuning.timeout, n_jobs=tuning.n_jobs,
        catch=(Exception,), callbacks=callbacks, gc_after_trial=False,
    )
    return _result(study, evaluations)


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
        metrics = best_trial.user_attrs.get("metrics", {})
        best = TrialResult(best_trial.user_attrs.get("params", best_trial.params), Evaluation(float(best_trial.value), metrics))
    ordered = [evaluations[k] for k in sorted(evaluations)]
    return StudyResult(best.params, best.evaluation, n_complete, n_failed, ordered, study)
