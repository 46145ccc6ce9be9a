"""The training platform: configs, the Optuna study, MLflow runs and the registry decision."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from features.config_io import ConfigError, Strict
from tests.helpers import REPO
from training import tracking
from training.config import load_job_config
from training.decision import Scores, better, decide
from training.family import Evaluation, Report, Split
from training.jobs import run_job


def write_job(tmp_path: Path, n_customers: int = 300, **overrides) -> Path:
    data = {"name": "tiny-synthetic", "format": "synthetic", "synthetic": {"n_customers": n_customers, "weeks": 52, "seed": 7}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    job = yaml.safe_load((REPO / "configs" / "segment.yaml").read_text())
    job["data"] = "data.yaml"
    job["experiment"] = "test-segment"
    job["tuning"]["n_trials"] = 3
    job["kpi_context"] = False
    job["model"]["evaluation"]["stability_seeds"] = 1
    job["model"]["search"]["n_init"] = [2]
    for key, value in overrides.items():
        node = job
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    path = tmp_path / "segment.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


# ---- configs ----


def test_shipped_job_configs_validate() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        if path.name == "serve.yaml":
            continue
        job, model_cfg = load_job_config(path)
        assert job.registry.model_name and model_cfg is not None


def test_config_typo_names_the_key_and_file(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["tuning"]["n_trails"] = 5
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"segment.yaml: tuning.n_trails: unknown key"):
        load_job_config(path)


def test_wrong_type_in_family_section_names_the_key(tmp_path: Path) -> None:
    path = write_job(tmp_path, **{"model.search.k_min": "three"})
    with pytest.raises(ConfigError, match=r"segment.yaml: model.search.k_min: .*integer"):
        load_job_config(path)


def test_override_from_command_line(tmp_path: Path) -> None:
    job, _ = load_job_config(write_job(tmp_path), ["tuning.n_trials=7", "tuning.storage=sqlite:///x.db"])
    assert job.tuning.n_trials == 7 and job.tuning.storage == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="key.path=value"):
        load_job_config(write_job(tmp_path), ["tuning.n_trials"])


def test_missing_data_config_is_named(tmp_path: Path) -> None:
    path = write_job(tmp_path, data="nowhere.yaml")
    with pytest.raises(ConfigError, match="data config not found: nowhere.yaml"):
        load_job_config(path)


def test_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000") == "sqlite:///elsewhere.db"


# ---- decisions ----


def test_decision_rules() -> None:
    def alias(direction, candidate, baseline, champion=None, error=None, **kw):
        return decide(Scores(direction, "m", candidate, baseline, champion, error), **kw)[0]

    assert alias("maximize", 0.5, 0.6) == "challenger"  # loses to the baseline
    assert alias("maximize", 0.7, 0.6) == "champion"  # first model that beats it
    assert alias("maximize", 0.4, 0.3, champion=0.5) == "challenger"  # loses to the champion
    assert alias("maximize", 0.6, 0.3, champion=0.5) == "champion"
    assert alias("minimize", 0.9, 1.2, champion=0.8) == "challenger"
    assert alias("maximize", 0.7, 0.6, promote="never") == "challenger"
    # a champion that cannot be loaded or scored never loses silently; quickstart may replace it, saying so
    assert alias("maximize", 0.7, 0.6, error="ModuleNotFoundError: training.segment") == "challenger"
    alias_, reason = decide(Scores("maximize", "m", 0.7, 0.6, None, "ModuleNotFoundError: x"), replace_unloadable=True)
    assert alias_ == "champion" and "could not be loaded" in reason
    assert better(0.5, float("nan"), "maximize") and not better(float("nan"), 0.5, "maximize")


# ---- whole jobs on tiny synthetic data ----


@pytest.mark.slow  # an end-to-end job
def test_job_logs_parent_and_trial_runs_and_registers(tracking_dir: Path) -> None:
    result = run_job(write_job(tracking_dir))
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.artifact_uri.startswith((tracking_dir / "mlartifacts").as_uri())
    assert run.data.tags["ecomlab.decision"] == result.decision.alias
    assert "best_silhouette" in run.data.metrics and "baseline_silhouette" in run.data.metrics
    assert "tuning_best_silhouette" in run.data.metrics
    # one score: the CLI's numbers (the decision), the run's metrics and the version's tags agree
    tags = MlflowClient().get_model_version("ecomlab-segmenter", result.decision.version).tags
    assert float(tags["ecomlab.candidate_score"]) == result.decision.candidate_score == run.data.metrics["best_silhouette"]
    assert float(tags["ecomlab.baseline_score"]) == result.decision.baseline_score == run.data.metrics["baseline_silhouette"]
    assert result.candidate.objective == result.decision.candidate_score
    assert tags["ecomlab.refit_on_all_data"] == "false"
    losses = {a.path for a in client.list_artifacts(result.run_id, "losses")}
    assert losses == {"losses/candidate.parquet", "losses/baseline.parquet", "losses/stability.parquet"}
    assert run.data.metrics["data_rows_read"] > 0
    assert run.inputs.dataset_inputs[0].dataset.digest
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 3 and all("k" in c.data.params for c in children)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config", "plots", "tables"} <= artifacts
    assert result.decision.alias == "champion"
    mv = client.get_model_version_by_alias("ecomlab-segmenter", "champion")
    assert str(mv.version) == result.decision.version
    reqs = Path(mlflow.artifacts.download_artifacts(f"models:/ecomlab-segmenter/{mv.version}/requirements.txt")).read_text()
    assert "scikit-learn==" in reqs


@pytest.mark.slow  # an end-to-end job
def test_worse_model_does_not_take_champion(tracking_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_job(write_job(tracking_dir))
    assert first.decision.alias == "champion"
    from training.segment import SegmenterFamily

    original_score, original_load = SegmenterFamily.score, tracking.load_registered

    def load(name, version, family):  # the current champion, as the job loads it
        model = original_load(name, version, family)
        model.loaded_as_champion = True
        return model

    def score(self, model, evaluation, cfg):  # the champion scores the maximum silhouette
        ev = original_score(self, model, evaluation, cfg)
        if getattr(model, "loaded_as_champion", False):
            ev.objective = 1.0
        return ev

    monkeypatch.setattr(tracking, "load_registered", load)
    monkeypatch.setattr(SegmenterFamily, "score", score)
    second = run_job(write_job(tracking_dir))
    assert second.decision.alias == "challenger"
    assert second.decision.champion_score == pytest.approx(1.0)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("ecomlab-segmenter", "champion").version) == first.decision.version
    assert str(client.get_model_version_by_alias("ecomlab-segmenter", "challenger").version) == second.decision.version
    tags = client.get_model_version("ecomlab-segmenter", second.decision.version).tags
    assert tags["ecomlab.decision"] == "challenger" and "does not beat the champion" in tags["ecomlab.decision_reason"]


@pytest.mark.slow  # an end-to-end job
def test_failing_trial_does_not_end_the_study(tracking_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.segment import SegmenterFamily

    original = SegmenterFamily.evaluate
    calls = {"n": 0}

    def flaky(self, train, holdout, params, cfg):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("planted failure")
        return original(self, train, holdout, params, cfg)

    monkeypatch.setattr(SegmenterFamily, "evaluate", flaky)
    result = run_job(write_job(tracking_dir, **{"tuning.n_trials": 4}))
    assert result.n_failed == 1 and result.n_trials == 4
    client = MlflowClient()
    failed = client.search_runs(
        [client.get_run(result.run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{result.run_id}' and attributes.status = 'FAILED'",
    )
    assert len(failed) == 1 and "planted failure" in failed[0].data.tags["ecomlab.error"]


@pytest.mark.slow  # an end-to-end job
def test_parallel_trials_keep_runs_apart(tracking_dir: Path) -> None:
    result = run_job(write_job(tracking_dir, **{"tuning.n_jobs": 2, "tuning.n_trials": 4}))
    client = MlflowClient()
    children = client.search_runs([client.get_run(result.run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["ecomlab.trial"] for c in children}) == 4


@pytest.mark.slow  # an end-to-end job
def test_rdb_study_storage_resumes(tracking_dir: Path) -> None:
    storage = f"sqlite:///{tracking_dir / 'optuna.db'}"
    path = write_job(tracking_dir, **{"tuning.storage": storage, "tuning.study_name": "resume-me", "tuning.n_trials": 2})
    run_job(path)
    run_job(path)
    import optuna

    study = optuna.load_study(study_name="resume-me", storage=storage)
    assert len(study.trials) == 4


@pytest.mark.slow
def test_job_against_a_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db: Path) -> None:
    """`mlflow server` on loopback: the same job, runs and registry over HTTP."""
    import shutil
    import time

    from tests.service_harness import start_mlflow_server

    shutil.copy(mlflow_template_db, tmp_path / "server.db")
    started = time.time()
    server = start_mlflow_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}")
    port = server.port
    try:
        print(f"mlflow server up in {time.time() - started:.1f} s")
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        result = run_job(write_job(work, **{"tuning.n_trials": 2}))
        print(f"job done after {time.time() - started:.1f} s")
        client = MlflowClient(f"http://127.0.0.1:{port}")
        assert client.get_run(result.run_id).data.tags["ecomlab.decision"] == "champion"
        assert str(client.get_model_version_by_alias("ecomlab-segmenter", "champion").version) == "1"
        assert any((tmp_path / "server-artifacts").rglob("MLmodel"))
        assert not (work / "mlflow.db").exists() and not (work / "mlartifacts").exists()
    finally:
        server.stop()


# ---- a champion that cannot be loaded, a failed job, a candidate that memorises ----


@pytest.mark.slow  # an end-to-end job
def test_unloadable_champion_is_reported_and_not_replaced(tracking_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_job(write_job(tracking_dir))

    def broken(name, version, family):  # e.g. a model pickled against classes an older layout had
        raise ModuleNotFoundError("No module named 'training.segment_model'")

    monkeypatch.setattr(tracking, "load_registered", broken)
    second = run_job(write_job(tracking_dir))
    assert second.decision.alias == "challenger"
    assert "ModuleNotFoundError" in second.decision.champion_error
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("ecomlab-segmenter", "champion").version) == first.decision.version
    tags = client.get_model_version("ecomlab-segmenter", second.decision.version).tags
    assert "could not be loaded or scored" in tags["ecomlab.decision_reason"] and tags["ecomlab.champion_error"]
    third = run_job(write_job(tracking_dir), replace_unloadable=True)  # what quickstart asks for
    assert third.decision.alias == "champion" and "replaces a champion" in third.decision.reason


@pytest.mark.slow  # an end-to-end job
def test_failed_job_ends_its_run_failed_with_the_traceback(tracking_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.segment import SegmenterFamily

    def broken_report(self, fitted, feats, cfg):
        raise RuntimeError("planted report failure")

    monkeypatch.setattr(SegmenterFamily, "report", broken_report)
    with pytest.raises(RuntimeError, match="planted report failure"):
        run_job(write_job(tracking_dir))
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("test-segment").experiment_id], "tags.`ecomlab.job` != ''")
    assert run.info.status == "FAILED" and "planted report failure" in run.data.tags["ecomlab.error"]
    text = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="error/traceback.txt")).read_text()
    assert "Traceback" in text and "broken_report" in text


class MemoConfig(Strict):
    pass


class MemoModel(mlflow.pyfunc.PythonModel):
    """Spend per customer: remembered for customers it was fitted on, the mean for everyone else."""

    family = "memo"

    def __init__(self, table: dict[str, float], mean: float) -> None:
        self.table, self.mean = table, mean

    def predict(self, context, model_input, params=None):
        keys = model_input["customer_id"].astype(str)
        return pd.DataFrame({"customer_id": keys, "yhat": [self.table.get(k, self.mean) for k in keys]})


class MemoFamily:
    """A family whose candidate memorises its training data: only held-out scoring tells it apart."""

    name, direction, objective_name, config_model, refit_on_all_data = "memo", "minimize", "mae", MemoConfig, False

    def features(self, loaded, cfg):
        lines = loaded.lines.dropna(subset=["customer_id"])
        spend = (lines["quantity"] * lines["unit_price"]).groupby(lines["customer_id"].astype(str)).sum()
        return spend.rename("y").rename_axis("customer_id").reset_index()

    def split(self, feats, cfg):
        order = np.random.default_rng(0).permutation(len(feats))
        parts = np.array_split(order, [len(order) * 3 // 5, len(order) * 4 // 5])
        return Split(*(feats.iloc[np.sort(p)].reset_index(drop=True) for p in parts))

    def initial_trials(self, cfg):
        return []

    def search_space(self, trial, cfg):
        return {"unused": trial.suggest_int("unused", 0, 1)}

    def fit(self, feats, params, cfg):
        return MemoModel(dict(zip(feats["customer_id"], feats["y"].astype(float))), float(feats["y"].mean()))

    def servable(self, fitted, cfg):
        return fitted

    def baseline(self, train, cfg):
        return MemoModel({}, float(train["y"].mean()))

    def score(self, model, evaluation, cfg):
        errors = (model.predict(None, evaluation)["yhat"].to_numpy() - evaluation["y"].to_numpy())
        losses = pd.DataFrame({"customer_id": evaluation["customer_id"], "abs_error": np.abs(errors)})
        return Evaluation(float(np.abs(errors).mean()), losses=losses)

    def evaluate(self, train, evaluation, params, cfg):
        return self.score(self.servable(self.fit(train, params, cfg), cfg), evaluation, cfg)

    def select(self, trials, best_params, cfg):
        return best_params

    def report(self, fitted, feats, cfg):
        return Report()

    def example(self, model, fitted, cfg):
        example = pd.DataFrame({"customer_id": ["c1", "c2"]})
        return example, model.predict(None, example)


@pytest.mark.slow  # an end-to-end job
def test_a_candidate_that_memorises_its_training_data_cannot_become_champion(
    tracking_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.models.base import Servable
    from serving.models.registry import FAMILIES, FamilyEntry

    # adding a family is one registry line
    monkeypatch.setitem(FAMILIES, "memo", FamilyEntry("memo", Servable, "/memo", f"{__name__}:MemoFamily"))
    path = write_job(tracking_dir)
    job = yaml.safe_load(path.read_text())
    job.update(family="memo", model={}, registry={"model_name": "memo"})
    path.write_text(yaml.safe_dump(job))
    result = run_job(path)
    assert result.decision.alias == "challenger" and "does not beat the baseline" in result.decision.reason
    assert result.decision.candidate_score == pytest.approx(result.decision.baseline_score)
    # on the data it was fitted on, the same candidate scores perfectly: refit-and-score-on-holdout would have crowned it
    family, (job_cfg, cfg) = MemoFamily(), load_job_config(path)
    from features.sources import load

    split = family.split(family.features(load(job_cfg.data_path()), cfg), cfg)
    memoriser = family.fit(split.train, {}, cfg)
    assert family.score(memoriser, split.train, cfg).objective == 0.0 < result.decision.baseline_score
