"""The training platform: configs, the Optuna study, MLflow runs and the registry decision."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from features.config_io import ConfigError
from tests.conftest import fresh_mlflow_db
from training import tracking
from training.config import load_job_config
from training.jobs import _decide, better, run_job

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def tracking_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db: Path) -> Path:
    """MLflow tracking and registry in tmp_path (SQLite + local artifacts)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_mlflow_db(mlflow_template_db, tmp_path))
    return tmp_path


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


def test_decision_rules(tmp_path: Path) -> None:
    job, _ = load_job_config(write_job(tmp_path))
    assert _decide("maximize", 0.5, 0.6, 0.5, None, job)[0] == "challenger"  # loses to the baseline
    assert _decide("maximize", 0.7, 0.6, 0.7, None, job)[0] == "champion"  # first model that beats it
    assert _decide("maximize", 0.7, 0.6, 0.4, 0.5, job)[0] == "challenger"  # loses to the champion
    assert _decide("maximize", 0.7, 0.6, 0.6, 0.5, job)[0] == "champion"
    assert _decide("minimize", 0.9, 1.2, 0.9, 0.8, job)[0] == "challenger"
    assert better(0.5, float("nan"), "maximize") and not better(float("nan"), 0.5, "maximize")


# ---- whole jobs on tiny synthetic data ----


def test_job_logs_parent_and_trial_runs_and_registers(tracking_dir: Path) -> None:
    result = run_job(write_job(tracking_dir))
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.artifact_uri.startswith((tracking_dir / "mlartifacts").as_uri())
    assert run.data.tags["ecomlab.decision"] == result.decision.alias
    assert "best_silhouette" in run.data.metrics and "baseline_silhouette" in run.data.metrics
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


def test_worse_model_does_not_take_champion(tracking_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_job(write_job(tracking_dir))
    assert first.decision.alias == "champion"
    from training.segment import SegmenterFamily

    # the first run's model scores 0.9 on the evaluation data, every later one 0.1
    def score(self, model, holdout, cfg):
        return 0.9 if model.metadata.run_id == first.run_id else 0.1

    monkeypatch.setattr(SegmenterFamily, "score_model", score)
    second = run_job(write_job(tracking_dir))
    assert second.decision.alias == "challenger"
    assert second.decision.champion_score == pytest.approx(0.9)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("ecomlab-segmenter", "champion").version) == first.decision.version
    assert str(client.get_model_version_by_alias("ecomlab-segmenter", "challenger").version) == second.decision.version
    tags = client.get_model_version("ecomlab-segmenter", second.decision.version).tags
    assert tags["ecomlab.decision"] == "challenger" and "does not beat the champion" in tags["ecomlab.decision_reason"]


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


def test_parallel_trials_keep_runs_apart(tracking_dir: Path) -> None:
    result = run_job(write_job(tracking_dir, **{"tuning.n_jobs": 2, "tuning.n_trials": 4}))
    client = MlflowClient()
    children = client.search_runs([client.get_run(result.run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["ecomlab.trial"] for c in children}) == 4


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
