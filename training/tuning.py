"""The Optuna study of a job: one nested MLflow run per trial, failures recorded, the study goes on."""

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
from training.family import Evaluation

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)


@dataclass
class StudyResult:
    best_params: dict[str, Any]
    best: Evaluation
    n_complete: int
    n_failed: int
    trials: list[tuple[dict[str, Any], Evaluation]] = field(default_factory=list)
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
    holdout: Any,
    tuning: Tuning,
    parent_id: str,
    experiment_id: str,
    study_name: str,
    on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
) -> StudyResult:
    study = make_study(family.direction, tuning, study_name)
    seeds = getattr(family, "initial_trials", None)
    if callable(seeds) and not study.trials:  # a fresh study starts from the family's well-tried candidates
        for params in seeds(model_cfg)[: tuning.n_trials]:
            study.enqueue_trial(params, skip_if_exists=True)
    evaluations: dict[int, tuple[dict[str, Any], Evaluation]] = {}
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        run_id = tracking.start_trial_run(parent_id, experiment_id, trial.number)
        params: dict[str, Any] = {}
        try:
            params = family.search_space(trial, model_cfg)
            ev = family.evaluate(train, holdout, params, model_cfg)
        except Exception as exc:  # a failing trial is recorded, the study goes on
            tracking.end_trial_run(run_id, params, {}, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        metrics = {family.objective_name: ev.objective, **ev.metrics}
        tracking.end_trial_run(run_id, params, metrics)
        trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("params", params)
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        with lock:
            evaluations[trial.number] = (params, ev)
        return ev.objective

    callbacks = [lambda _study, frozen: on_trial(frozen)] if on_trial else []
    study.optimize(
        objective,
        n_trials=tuning.n_trials,
        timeout=tuning.timeout,
        n_jobs=tuning.n_jobs,
        catch=(Exception,),
        callbacks=callbacks,
        gc_after_trial=False,
    )
    states = [t.state for t in study.trials]
    n_complete = states.count(optuna.trial.TrialState.COMPLETE)
    n_failed = states.count(optuna.trial.TrialState.FAIL)
    if n_complete == 0:
        errors = {t.user_attrs.get("error", "?") for t in study.trials if t.state == optuna.trial.TrialState.FAIL}
        raise RuntimeError(f"every trial failed ({n_failed}); errors: {sorted(errors)[:3]}")
    best_trial = study.best_trial
    if best_trial.number in evaluations:
        best_params, best_eval = evaluations[best_trial.number]
    else:  # resumed study: the best trial ran in an earlier process
        best_params = best_trial.user_attrs.get("params", best_trial.params)
        metrics = best_trial.user_attrs.get("metrics", {})
        best_eval = Evaluation(objective=float(best_trial.value), metrics=metrics)
    ordered = [evaluations[k] for k in sorted(evaluations)]
    return StudyResult(best_params, best_eval, n_complete, n_failed, ordered, study)
