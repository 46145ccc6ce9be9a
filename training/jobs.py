"""A training job, start to end: config -> data -> features -> study -> final fit -> MLflow -> registry.

The registry decision lives here once for every family: the new version becomes `champion` only if
it beats the baseline and the current champion on the same evaluation data; otherwise `challenger`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.contract import Loaded
from features.sources import load
from training import tracking
from training.config import JobConfig, load_job_config, resolved_yaml
from training.families import family_for
from training.family import Evaluation
from training.tuning import StudyResult, run_study

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    job: str
    family: str
    run_id: str
    experiment: str
    tracking_uri: str
    best_params: dict[str, Any]
    best: Evaluation
    baseline: Evaluation
    objective_name: str
    direction: str
    n_trials: int
    n_failed: int
    decision: tracking.Decision
    model_name: str
    seconds: float
    accounting: dict[str, int] = field(default_factory=dict)


@dataclass
class Hooks:
    """Progress callbacks for the CLI (all optional)."""

    stage: Callable[[str], None] = lambda _msg: None
    trial: Callable[[Any], None] | None = None


def run_job(config: str | Path, overrides: list[str] | None = None, hooks: Hooks | None = None) -> JobResult:
    job, model_cfg = load_job_config(config, overrides)
    return run_loaded_job(job, model_cfg, hooks or Hooks())


def run_loaded_job(job: JobConfig, model_cfg: Any, hooks: Hooks) -> JobResult:
    started = time.perf_counter()
    family = family_for(job.family)
    uri = tracking.setup(job.tracking_uri)
    hooks.stage(f"loading data ({job.data})")
    loaded = load(job.data_path())
    hooks.stage("building features")
    feats = family.features(loaded, model_cfg)
    train, holdout = family.split(feats, model_cfg)
    tags = {"ecomlab.job": job.job, "ecomlab.family": job.family, "ecomlab.data": loaded.name}
    with tracking.parent_run(job.experiment, f"{job.job}-{time.strftime('%Y%m%d-%H%M%S')}", tags) as run_id:
        _log_context(job, model_cfg, loaded, hooks)
        hooks.stage("scoring the baseline")
        baseline = family.baseline(train, holdout, model_cfg)
        tracking.log_metrics({family.objective_name: baseline.objective, **baseline.metrics}, prefix="baseline_")
        hooks.stage("tuning")
        experiment_id = tracking.experiment_of(run_id)
        study = run_study(
            family, model_cfg, train, holdout, job.tuning, run_id, experiment_id,
            study_name=f"{job.experiment}-{job.job}", on_trial=hooks.trial,
        )
        params = _final_params(family, study, model_cfg)
        _log_study(family, study, params)
        hooks.stage("fitting the final model")
        fitted = family.fit(feats, params, model_cfg)
        figures, tables, extra = family.report(fitted, feats, model_cfg)
        tracking.log_figures(figures)
        tracking.log_tables(tables)
        tracking.log_metrics(extra)
        hooks.stage("logging and registering the model")
        python_model, example_in, example_out = family.pyfunc(fitted, model_cfg)
        logged = tracking.log_model(python_model, example_in, example_out)
        decision = _register_and_decide(job, family, model_cfg, logged, holdout, study.best, baseline)
    return JobResult(
        job=job.job, family=job.family, run_id=run_id, experiment=job.experiment, tracking_uri=uri,
        best_params=params, best=study.best, baseline=baseline, objective_name=family.objective_name,
        direction=family.direction, n_trials=study.n_complete + study.n_failed, n_failed=study.n_failed,
        decision=decision, model_name=job.registry.model_name, seconds=time.perf_counter() - started,
        accounting=loaded.accounting.as_dict(),
    )


def _log_context(job: JobConfig, model_cfg: Any, loaded: Loaded, hooks: Hooks) -> None:
    tracking.log_config(resolved_yaml(job, model_cfg), job.source_file)
    tracking.log_dataset(loaded.lines, loaded.name, str(job.data), loaded.source_digest)
    tracking.log_metrics({f"data_{k}": v for k, v in loaded.accounting.as_dict().items()})
    tracking.set_tags({"ecomlab.data_digest": loaded.source_digest})
    if not loaded.quarantine.frame.empty:
        tracking.log_tables({"quarantine_summary": loaded.quarantine.summary()}, folder="data")
    if job.kpi_context:
        hooks.stage("computing KPI context")
        _log_kpis(loaded)


def _log_kpis(loaded: Loaded) -> None:
    """The KPI report of the training data, as run context (a JSON artifact and headline metrics)."""
    from features.kpis import headline, kpi_report

    report = kpi_report(loaded.lines, customers=loaded.customers, inventory=loaded.inventory)
    tracking.log_json(report, "kpis/kpi_report.json")
    tracking.log_metrics({f"kpi_{k}": v for k, v in headline(report).items()})


def _final_params(family: Any, study: StudyResult, model_cfg: Any) -> dict[str, Any]:
    """The best trial's params, or the family's own choice across trials (e.g. per series)."""
    select = getattr(family, "select", None)
    return select(study.trials, study.best_params, model_cfg) if callable(select) else study.best_params


def _log_study(family: Any, study: StudyResult, params: dict[str, Any]) -> None:
    tracking.log_params(params, prefix="best.")
    tracking.log_metrics({family.objective_name: study.best.objective, **study.best.metrics}, prefix="best_")
    tracking.log_metrics({"trials_complete": study.n_complete, "trials_failed": study.n_failed})
    if study.best.details is not None:
        tracking.log_tables({"best_trial_details": study.best.details})
    if study.study is not None:
        frame = study.study.trials_dataframe(attrs=("number", "value", "state", "duration", "params"))
        frame["duration"] = frame["duration"].dt.total_seconds()
        frame["state"] = frame["state"].astype(str)
        tracking.log_tables({"trials": frame}, folder="tuning")


def better(a: float, b: float, direction: str) -> bool:
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if direction == "maximize" else a < b


def _register_and_decide(
    job: JobConfig, family: Any, model_cfg: Any, logged: tracking.LoggedModel,
    holdout: Any, best: Evaluation, baseline: Evaluation,
) -> tracking.Decision:
    name = job.registry.model_name
    incumbent = tracking.champion_version(name)
    version = tracking.register(logged, name)
    candidate = family.score_model(tracking.load_registered(name, version), holdout, model_cfg)
    champion_score = None
    if incumbent is not None:
        try:
            champion_score = family.score_model(tracking.load_registered(name, incumbent), holdout, model_cfg)
        except Exception as exc:  # a champion that cannot be loaded or scored is reported, not fatal
            log.warning("current champion %s v%s could not be scored: %s", name, incumbent, exc)
            champion_score = float("nan")
    alias, reason = _decide(family.direction, best.objective, baseline.objective, candidate, champion_score, job)
    decision = tracking.Decision(version, alias, reason, candidate, champion_score, incumbent, baseline.objective)
    tracking.record_decision(name, decision)
    return decision


def _decide(direction, best_obj, baseline_obj, candidate, champion, job) -> tuple[str, str]:
    if job.registry.promote == "never":
        return tracking.CHALLENGER, "promotion disabled in the config (registry.promote: never)"
    if not better(best_obj, baseline_obj, direction):
        return tracking.CHALLENGER, f"does not beat the baseline ({best_obj:.4g} vs baseline {baseline_obj:.4g})"
    if champion is None:
        return tracking.CHAMPION, f"beats the baseline ({best_obj:.4g} vs {baseline_obj:.4g}); no champion yet"
    if not math.isfinite(champion):
        return tracking.CHAMPION, "beats the baseline; the current champion could not be scored"
    if better(candidate, champion, direction):
        return tracking.CHAMPION, f"beats the champion on the same evaluation data ({candidate:.4g} vs {champion:.4g})"
    return tracking.CHALLENGER, f"does not beat the champion on the same evaluation data ({candidate:.4g} vs {champion:.4g})"
