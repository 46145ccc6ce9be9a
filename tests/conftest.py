"""Shared fixtures: the public data sets beside the checkout, isolated MLflow/BentoML homes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, TOKEN, build_once, copy_mlflow_folder, fresh_mlflow_db, shared_dataset
from tests.service_harness import Server, start, write_serve_config

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_HOME", str(REPO / ".bentoml"))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules marked `long_module` first (each keeps its shuffled order inside). With `-n 2 --dist loadscope`
    (CI's service/slow lane) xdist hands modules out in collection order: a module of minutes handed out
    last would run alone at the end while the other worker idles."""
    items.sort(key=lambda item: item.get_closest_marker("long_module") is None)


@pytest.fixture
def shared_data():
    """Callable fixture: shared_data('uci_online_retail') -> Path or skip."""
    return shared_dataset


def run_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """`name` in the folder every process of this pytest run shares: the xdist workers' common parent, or the
    session's own temporary folder without xdist (the parent there is shared with other pytest runs)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow SQLite store, made once per pytest run and only ever copied (creating one
    runs migrations for ~8 s, copying takes ms)."""
    def build(folder: Path) -> None:
        from mlflow.tracking import MlflowClient

        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()

    return build_once(run_folder(tmp_path_factory, "mlflow-template"), build) / "mlflow.db"


@pytest.fixture
def tracking_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db: Path) -> Path:
    """MLflow tracking and registry in tmp_path (SQLite + local artifacts), the working directory there too."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = fresh_mlflow_db(mlflow_template_db, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # an earlier test's in-process URI would outrank the environment
    mlflow.set_registry_uri(uri)
    return tmp_path


# ---- the model service: a session registry with every family, and one `bentoml serve` of it ----


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> tuple[Path, str]:
    """Every family trained and registered into a private MLflow store; (its folder, its URI).

    Training takes ~40 s of CPU, so it happens once per pytest run (the first xdist worker to ask trains,
    the others wait); each worker then serves, promotes and re-aliases in its own copy of that store."""
    import mlflow

    original = build_once(run_folder(tmp_path_factory, "service-registry"),
                          lambda folder: train_every_family(folder, mlflow_template_db))
    folder = tmp_path_factory.mktemp("service")
    uri = copy_mlflow_folder(original, folder)
    mlflow.set_tracking_uri(uri)  # where training left this process's MLflow before: never at the shared original
    mlflow.set_registry_uri(uri)
    return folder, uri


def train_every_family(folder: Path, mlflow_template_db: Path) -> None:
    """Train and register every family on small synthetic data into a store in `folder`."""
    from training.jobs import run_job

    uri = fresh_mlflow_db(mlflow_template_db, folder)
    data = {"name": "svc-synthetic", "format": "synthetic", "synthetic": {"n_customers": 400, "weeks": 52, "seed": 3}}
    (folder / "data.yaml").write_text(yaml.safe_dump(data))
    clv_data = {**data, "synthetic": {**data["synthetic"], "clv_customers": 1500}}
    (folder / "data_clv.yaml").write_text(yaml.safe_dump(clv_data))
    jobs = {"segment": 3, "forecast": 2, "recommend": 3, "clv": 3}
    for name, trials in jobs.items():
        job = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
        job.update(data="data_clv.yaml" if name == "clv" else "data.yaml", experiment="svc", kpi_context=False)
        job["tuning"]["n_trials"] = trials
        if name == "segment":
            job["model"]["evaluation"]["stability_seeds"] = 1
        if name == "forecast":
            job["model"]["calibration"] = {"folds": 3, "step": 4}  # 3 calibration origins, not 20: these tests are about HTTP
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(job))
    old_cwd, old_uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(folder)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        for name in jobs:
            result = run_job(folder / f"{name}.yaml")
            assert result.decision.alias in ("champion", "challenger")
            if result.decision.alias != "champion":  # serve it anyway: these tests are about HTTP
                from training import tracking

                tracking.set_alias(result.model_name, result.decision.version, "champion")
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


@pytest.fixture(scope="session")
def server(registry: tuple[Path, str]) -> Server:
    folder, uri = registry
    config = write_serve_config(
        folder,
        [
            {"family": "segmenter", "name": "ecomlab-segmenter", "alias": "champion"},
            {"family": "forecaster", "name": "ecomlab-forecaster", "alias": "champion"},
            {"family": "recommender", "name": "ecomlab-recommender", "alias": "champion"},
            {"family": "clv", "name": "ecomlab-clv", "alias": "champion"},
        ],
        limits={"max_batch": 50, "max_body_bytes": 200_000, "max_horizon": 30, "max_k": 10}, reload_interval_s=1,
    )
    srv = start(folder, config, uri, env={"ECOMLAB_API_TOKEN": TOKEN})
    yield srv
    srv.stop()


# ---- the Spark engine: one local[2] session per test process (a JVM start costs ~5 s) ----


@pytest.fixture(scope="session")
def spark():
    """A local[2] Spark session built the way `engine: spark` builds it; skip without pyspark or Java, fail under CI."""
    from features.spark.session import SparkUnavailable, spark_session
    from features.spark.settings import SparkSettings

    try:
        # adaptive query execution re-plans every stage at run time: on the tests' small data that costs
        # more than it saves (~25% of a KPI pass here); results do not depend on it
        session = spark_session(SparkSettings(master="local[2]", shuffle_partitions=4,
                                              conf={"spark.sql.adaptive.enabled": "false",
                                                    # the JVM's quick (C1) compiler only: the tests' many small
                                                    # queries end before C2 would pay off (~25% less time here)
                                                    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}))
    except SparkUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}; under CI the Spark tests must run")
        pytest.skip(str(exc))
    yield session
    session.stop()
