"""A training job, start to end: config -> data -> features -> study -> candidate -> MLflow -> registry.

Every number the registry decision uses comes from the family's one `score`, on the split's `test`
data, which no fit, trial or selection has seen: the baseline (fitted on train), the candidate
(the chosen parameters fitted on train) and the current champion. The CLI, the run's metrics and
the version's tags all show these same numbers (`tracking.Decision`).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.config_io import ConfigError
from features.contract import Loaded
from features.sources import load
from training import tracking
from training.config import JobConfig, load_job_config, resolved_yaml
from training.decision import Scores, decide
from training.engine import engine_scope
from training.families import family_for
from training.family import Evaluation, Split
from training.gate import gate_tags, run_gate
from training.identity import evaluation_identity
from training.profiles import reference_profile
from training.tuning import POLL_SECONDS, StudyResult, TrialRuns, WorkerResult, collect, end_abandoned_runs, open_study, run_study, work

log = logging.getLogger(__name__)
HANDED_SPLIT = "ECOMLAB_WORKER_SPLIT"  # set for the workers `--workers` starts: the file holding their tuning data


@dataclass
class JobResult:
    job: str
    family: str
    run_id: str
    experiment: str
    tracking_uri: str
    best_params: dict[str, Any]
    candidate: Evaluation  # the chosen parameters fitted on train, scored on test
    baseline: Evaluation  # scored on the same test data
    tuning_best: Evaluation  # the best trial on the tuning data (valid)
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
    note: Callable[[str], None] = lambda _msg: None  # a line worth keeping on screen (how workers join)


@dataclass(frozen=True)
class Workers:
    """`ecomlab train CONFIG --workers N`: N worker processes (each `ecomlab train CONFIG --join RUN_ID`
    with the same overrides) run the trials of one study in `tuning.storage`."""

    count: int
    config: Path
    overrides: tuple[str, ...] = ()


def run_job(
    config: str | Path, overrides: list[str] | None = None, hooks: Hooks | None = None, replace_unloadable: bool = False,
    workers: int | None = None,
) -> JobResult:
    job, model_cfg = load_job_config(config, overrides)
    plan = Workers(workers, Path(config), tuple(overrides or ())) if workers else None
    return run_loaded_job(job, model_cfg, hooks or Hooks(), replace_unloadable, plan)


def run_loaded_job(
    job: JobConfig, model_cfg: Any, hooks: Hooks, replace_unloadable: bool = False, workers: Workers | None = None,
) -> JobResult:
    """`replace_unloadable`: a current champion that cannot be loaded or scored (e.g. registered by an
    older layout) is replaced, and the decision says so; otherwise the new version is a challenger.

    With `workers` the trials run in worker processes; the baseline, the final fit and the
    registration still happen once, here, after the workers end."""
    if workers and workers.count > 1 and job.tuning.storage is None:
        raise ConfigError(
            f"{job.source_file}: tuning.storage: --workers {workers.count} needs a shared study storage, "
            "e.g. --set tuning.storage=postgresql://user@host/db"
        )
    with engine_scope(job.engine, job.spark):  # spark: the session starts (or fails in one line) before any work
        return _run_loaded_job(job, model_cfg, hooks, replace_unloadable, workers)


def _run_loaded_job(job: JobConfig, model_cfg: Any, hooks: Hooks, replace_unloadable: bool, workers: Workers | None) -> JobResult:
    started = time.perf_counter()
    family = family_for(job.family)
    hooks.stage(f"loading data ({job.data})")
    loaded = load(job.data_path())  # before MLflow is set up: a data mistake fails in moments
    uri = tracking.setup(job.tracking_uri)
    hooks.stage("building features")
    feats = family.features(loaded, model_cfg)
    split: Split = family.split(feats, model_cfg)
    tags = {"ecomlab.job": job.job, "ecomlab.family": job.family, "ecomlab.data": loaded.name, "ecomlab.engine": job.engine}
    with tracking.parent_run(job.experiment, f"{job.job}-{time.strftime('%Y%m%d-%H%M%S')}", tags) as run_id:
        _log_context(job, model_cfg, loaded, hooks)
        hooks.stage("tuning")
        runs = TrialRuns(run_id, tracking.experiment_of(run_id))
        if workers and job.tuning.storage:  # one worker and no storage: an in-memory study, here
            study = _tune_on_workers(job, family, model_cfg, runs, workers, loaded.source_digest, uri, hooks, split)
        else:
            study = run_study(family, model_cfg, split.train, split.valid, job.tuning, study_name(job), runs, hooks.trial)
        hooks.stage("scoring the baseline")
        baseline = family.score(family.baseline(split.train, model_cfg), split.test, model_cfg)
        params = family.select(study.trials, study.best_params, model_cfg)
        hooks.stage("scoring the candidate on the evaluation data")
        fitted = family.fit(split.train, params, model_cfg)
        model = family.servable(fitted, model_cfg)
        candidate = family.score(model, split.test, model_cfg)
        _log_scores(family, study, params, candidate, baseline)
        tracking.set_tags(evaluation_identity(family.name, model_cfg.model_dump(mode="json"), candidate.losses))
        if family.refit_on_all_data:
            hooks.stage("refitting on all the data")
            fitted = family.fit(feats, params, model_cfg)
            model = family.servable(fitted, model_cfg)
        report = family.report(fitted, feats, model_cfg)
        tracking.log_figures(report.figures)
        tracking.log_tables(report.tables)
        tracking.log_metrics(report.metrics)
        tracking.log_losses(dict(report.losses))
        hooks.stage("logging and registering the model")
        profile = reference_profile(family.name, feats if family.refit_on_all_data else split.train, model, model_cfg)
        logged = tracking.log_model(model, *family.example(model, fitted, model_cfg), profile=profile)
        scores = Scores(family.direction, family.objective_name, candidate.objective, baseline.objective)
        evaluated = (candidate, baseline)
        decision = _register_and_decide(job, family, model_cfg, logged, split.test, scores, evaluated, replace_unloadable)
    return JobResult(
        job=job.job, family=job.family, run_id=run_id, experiment=job.experiment, tracking_uri=uri,
        best_params=params, candidate=candidate, baseline=baseline, tuning_best=study.best,
        objective_name=family.objective_name, direction=family.direction,
        n_trials=study.n_complete + study.n_failed, n_failed=study.n_failed, decision=decision,
        model_name=job.registry.model_name, seconds=time.perf_counter() - started,
        accounting=loaded.accounting.as_dict(),
    )


def study_name(job: JobConfig) -> str:
    return job.tuning.study_name or f"{job.experiment}-{job.job}"


def _tune_on_workers(
    job: JobConfig, family: Any, model_cfg: Any, runs: TrialRuns, workers: Workers, digest: str, uri: str, hooks: Hooks,
    split: Split,
) -> StudyResult:
    """Create (or resume) the shared study, start the workers, follow the study until they end, read it back.

    The workers started here are handed the tuning data this process has built (train and valid, never test,
    in a file of the temporary folder named by HANDED_SPLIT), so each starts its trials without loading the
    data and building the features again (~15 s of a worker's start-up for 50,000 synthetic customers). A
    worker joining from another machine (`--join`) loads and builds them itself."""
    study = open_study(family, model_cfg, job.tuning, study_name(job))
    study.set_user_attr("ecomlab.parent_run", runs.parent_id)
    study.set_user_attr("ecomlab.data_digest", digest)
    tracking.set_tags({"ecomlab.workers": str(workers.count), "ecomlab.study": study.study_name})
    command = [sys.executable, "-m", "training.cli", "train", str(workers.config), "--join", runs.parent_id]
    for override in workers.overrides:
        command += ["--set", override]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    joining = " ".join(["ecomlab", *command[3:]])
    hooks.note(f"{workers.count} workers tune study {study.study_name!r}; add one on another machine with `{joining}`")
    with tempfile.TemporaryDirectory(prefix="ecomlab-workers-") as folder:
        if job.engine == "pandas":  # Spark frames live in this process's session
            handed = Path(folder) / "split.pickle"
            try:
                with handed.open("wb") as out:
                    pickle.dump((digest, split.train, split.valid), out, protocol=pickle.HIGHEST_PROTOCOL)
                env[HANDED_SPLIT] = str(handed)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # the workers load the data themselves
                log.warning("the workers load the data themselves: the tuning data cannot be handed over (%s)", exc)
        logs = [Path(folder) / f"worker-{i}.log" for i in range(workers.count)]
        procs = [subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env) for log in logs]
        reported: set[int] = set()
        try:
            while any(p.poll() is None for p in procs):
                time.sleep(POLL_SECONDS)
                _report_trials(study, reported, hooks)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait()
        _report_trials(study, reported, hooks)
        end_abandoned_runs(study, runs.parent_id)
        result = collect(study)
        broken = [(p.returncode, _last_line(log)) for p, log in zip(procs, logs, strict=True) if p.returncode != 0]
    if broken and result.n_complete < job.tuning.n_trials:
        code, line = broken[0]
        raise RuntimeError(
            f"{len(broken)} of {workers.count} workers failed (exit {code}: {line}); "
            f"the study holds {result.n_complete} of {job.tuning.n_trials} complete trials"
        )
    tracking.log_metrics({"trials_retried": result.n_retried})
    return result


def _report_trials(study: Any, reported: set[int], hooks: Hooks) -> None:
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.number not in reported:
            reported.add(trial.number)
            if hooks.trial is not None:
                hooks.trial(trial)


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no output"


def join_job(job: JobConfig, model_cfg: Any, parent_run_id: str, hooks: Hooks | None = None) -> WorkerResult:
    """`ecomlab train CONFIG --join RUN_ID`: one worker adding trials to the study job run RUN_ID is tuning.

    The study must exist, belong to that run and have been built from the same data (same digest)."""
    hooks = hooks or Hooks()
    if job.tuning.storage is None:
        raise ConfigError(f"{job.source_file}: tuning.storage: --join needs the study's RDB storage URL")
    family = family_for(job.family)
    handed = os.environ.pop(HANDED_SPLIT, None)  # started by `--workers`: the coordinator's tuning data
    if handed:
        with open(handed, "rb") as f:
            digest, train, valid = pickle.load(f)
    else:
        hooks.stage(f"loading data ({job.data})")
        loaded = load(job.data_path())
        digest = loaded.source_digest
    study = open_study(family, model_cfg, job.tuning, study_name(job), create=False)
    owner = study.user_attrs.get("ecomlab.parent_run")
    if owner != parent_run_id:
        raise ConfigError(f"{job.source_file}: study {study.study_name!r} is tuned by job run {owner}, not {parent_run_id}")
    if study.user_attrs.get("ecomlab.data_digest") != digest:
        raise ConfigError(f"{job.source_file}: data: {job.data} differs from the data the job run {parent_run_id} tunes on")
    tracking.setup(job.tracking_uri)
    runs = TrialRuns(parent_run_id, tracking.experiment_of(parent_run_id))
    with engine_scope(job.engine, job.spark):
        if not handed:
            hooks.stage("building features")
            split: Split = family.split(family.features(loaded, model_cfg), model_cfg)
            train, valid = split.train, split.valid
        hooks.stage("tuning")
        return work(family, model_cfg, train, valid, job.tuning, study_name(job), runs, hooks.trial)


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


def _log_scores(family: Any, study: StudyResult, params: dict[str, Any], candidate: Evaluation, baseline: Evaluation) -> None:
    """`best_*`: the candidate on the evaluation data (the decision's number); `tuning_best_*`: the best trial."""
    objective = family.objective_name
    tracking.log_params(params, prefix="best.")
    tracking.log_metrics({objective: candidate.objective, **candidate.metrics}, prefix="best_")
    tracking.log_metrics({objective: baseline.objective, **baseline.metrics}, prefix="baseline_")
    tracking.log_metrics({objective: study.best.objective, **study.best.metrics}, prefix="tuning_best_")
    tracking.log_metrics({"trials_complete": study.n_complete, "trials_failed": study.n_failed})
    tables = {name: ev.details for name, ev in (("candidate_details", candidate), ("baseline_details", baseline))}
    tracking.log_tables({k: v for k, v in tables.items() if v is not None})
    tracking.log_losses({"candidate": candidate.losses, "baseline": baseline.losses})
    if study.study is not None:
        frame = study.study.trials_dataframe(attrs=("number", "value", "state", "duration", "params"))
        frame["duration"] = frame["duration"].dt.total_seconds()
        frame["state"] = frame["state"].astype(str)
        tracking.log_tables({"trials": frame}, folder="tuning")


def _register_and_decide(
    job: JobConfig, family: Any, model_cfg: Any, logged: tracking.LoggedModel,
    test: Any, scores: Scores, evaluated: tuple[Evaluation, Evaluation], replace_unloadable: bool,
) -> tracking.Decision:
    """Score the current champion on the same test data, run the gate's paired tests, decide, record."""
    name = job.registry.model_name
    incumbent = tracking.champion_version(name)
    version = tracking.register(logged, name)
    champion_eval: Evaluation | None = None
    if incumbent is not None:
        try:
            champion = tracking.load_registered(name, incumbent, family.name)
            champion_eval = family.score(champion, test, model_cfg)
            scores.champion = champion_eval.objective
        except Exception as exc:  # any failure to load or score it is reported, never a silent replacement
            scores.champion_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
            log.warning("current champion %s v%s could not be loaded or scored: %s", name, incumbent, scores.champion_error)
    gate = job.registry.decision
    run_gate(family.name, scores, *evaluated, champion_eval, gate)
    alias, reason = decide(scores, promote=job.registry.promote, replace_unloadable=replace_unloadable, gate=gate)
    decision = tracking.Decision(
        version, alias, reason, scores.candidate, scores.champion, incumbent, scores.baseline,
        champion_error=scores.champion_error, objective=scores.objective, refit_on_all_data=family.refit_on_all_data,
        gate=gate_tags(scores, gate),
    )
    tracking.record_decision(name, decision)
    if champion_eval is not None:
        tracking.log_metrics({scores.objective: champion_eval.objective}, prefix="champion_")
        tracking.log_losses({"champion": champion_eval.losses})
    return decision
