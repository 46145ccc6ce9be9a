"""The `ecomlab` command line, end to end: exit codes, one-line errors, the KPI report on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import (
    REPO,  # noqa: E402
    fresh_mlflow_db,
)
from training.cli import app

runner = CliRunner()


def small_synthetic(tmp_path: Path) -> Path:
    cfg = {"name": "cli-synthetic", "format": "synthetic", "synthetic": {"n_customers": 300, "weeks": 52, "seed": 5}}
    path = tmp_path / "synthetic.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow  # the CLI in a subprocess
def test_kpis_end_to_end_writes_json_plots_and_html(tmp_path: Path) -> None:
    """The real console script in a subprocess, as a user runs it."""
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "training.cli", "kpis", str(small_synthetic(tmp_path)), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "average order value" in proc.stdout
    data = json.loads((out / "kpis.json").read_text())
    assert data["meta"]["rows_read"] == data["meta"]["rows_clean"] > 0
    assert {"clv", "rfm", "cohort_retention", "returns", "stockout_risk"} <= set(data["kpis"])
    pngs = {p.name for p in out.glob("*.png")}
    assert {"cohort_retention.png", "revenue_by_category.png", "channels.png", "return_rates.png", "rfm_segments.png"} <= pngs
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs) and "<table>" in page


def test_data_check_prints_accounting(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text("o,d,p,q,price\n1,2024-01-01,A,1,2.0\n,,,,\n2,2024-01-02,B,x,1.0\n")
    cfg = {
        "name": "tiny", "format": "csv", "path": "lines.csv",
        "columns": {"order_id": "o", "order_date": "d", "product_id": "p", "quantity": "q", "unit_price": "price"},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["data", "check", str(tmp_path / "tiny.yaml")])
    assert result.exit_code == 0, result.output
    assert "quarantined" in result.output and "blank row" in result.output and "not a number" in result.output


def test_missing_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "config file not found" in result.output and "Traceback" not in result.output


def test_missing_data_file_is_exit_2(tmp_path: Path) -> None:
    cfg = {
        "name": "gone", "format": "csv", "path": "gone.csv",
        "columns": {"order_id": "o", "order_date": "d", "product_id": "p", "quantity": "q", "unit_price": "price"},
    }
    (tmp_path / "gone.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["kpis", str(tmp_path / "gone.yaml")])
    assert result.exit_code == 2 and "data file not found: gone.csv" in result.output


def test_train_config_typo_is_exit_2(tmp_path: Path) -> None:
    job = yaml.safe_load((REPO / "configs" / "segment.yaml").read_text())
    job["tunning"] = job.pop("tuning")
    job["data"] = str(REPO / "configs" / "data" / "synthetic.yaml")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = runner.invoke(app, ["train", str(tmp_path / "job.yaml")])
    assert result.exit_code == 2 and "tunning: unknown key" in result.output


def test_data_generate_writes_the_truth(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "--out", str(tmp_path / "d"), "--customers", "200", "--weeks", "20"])
    assert result.exit_code == 0, result.output
    assert {"lines.parquet", "customers.parquet", "inventory.parquet", "truth.json"} <= {p.name for p in (tmp_path / "d").iterdir()}


def test_models_promote_unknown_version_is_exit_2(tmp_path: Path, monkeypatch, mlflow_template_db: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_mlflow_db(mlflow_template_db, tmp_path))
    result = runner.invoke(app, ["models", "promote", "ecomlab-segmenter", "9"])
    assert result.exit_code == 2 and "cannot promote" in result.output


@pytest.mark.slow  # a job subprocess
def test_quickstart_from_any_folder_registers_every_family(tmp_path: Path) -> None:
    """The README's main job, run as a user runs it but outside the checkout and with a small budget:
    data, KPI report and three registered models in ./mlflow.db of the folder it runs in."""
    import os

    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    proc = subprocess.run(
        [sys.executable, "-m", "training.cli", "quickstart", "--trials", "3", "--out", "out"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "out" / "kpis" / "report.html").exists()
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in " ".join(proc.stdout.split())
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    for name in ("ecomlab-segmenter", "ecomlab-forecaster", "ecomlab-recommender", "ecomlab-clv"):
        versions = client.search_model_versions(f"name='{name}'")
        assert [str(v.version) for v in versions] == ["1"], name
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1", name


def test_generator_option_typo_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "--out", str(tmp_path / "d"), "--set", "n_customer=300"])
    assert result.exit_code == 2 and "n_customer: unknown key" in result.output and "Traceback" not in result.output
    cfg = {"name": "typo", "format": "synthetic", "synthetic": {"n_customer": 300}}
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["kpis", str(tmp_path / "typo.yaml")])
    assert result.exit_code == 2 and "typo.yaml: synthetic.n_customer: unknown key" in result.output


def fake_job_result(champion_error: str | None) -> SimpleNamespace:
    decision = SimpleNamespace(
        version="3", alias="challenger", reason="the current champion could not be loaded", candidate_score=0.4321,
        champion_score=None, champion_version="2", baseline_score=0.1234, champion_error=champion_error,
        refit_on_all_data=False,
    )
    return SimpleNamespace(
        decision=decision, objective_name="silhouette", direction="maximize", best_params={"k": 4}, n_trials=2,
        n_failed=0, model_name="ecomlab-segmenter", run_id="abc", tracking_uri="sqlite:///mlflow.db", seconds=1.0,
    )


def test_train_prints_the_decisions_scores_and_an_unloadable_champion_exits_1(monkeypatch) -> None:
    """The printed scores are the decision's (what the version's tags hold); a champion that could not be
    loaded is named with the command that promotes the new version by hand."""
    job = SimpleNamespace(job="segment", family="segmenter", tuning=SimpleNamespace(n_trials=2))
    jobs = types.ModuleType("training.jobs")
    jobs.Hooks = lambda stage, trial: SimpleNamespace(stage=stage, trial=trial)
    outcome = {"result": fake_job_result("ModuleNotFoundError: No module named 'training.segment_pyfunc'")}
    jobs.run_loaded_job = lambda job, cfg, hooks, replace_unloadable=False: outcome["result"]
    monkeypatch.setitem(sys.modules, "training.jobs", jobs)
    monkeypatch.setattr("training.cli.train.load_job", lambda path, overrides: (job, None))
    monkeypatch.setattr("training.cli.train.registered_figures", lambda run_id, family: {})
    monkeypatch.setattr("shutil.which", lambda program: program)  # ecomlab is on PATH
    result = runner.invoke(app, ["train", "job.yaml"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "0.4321" in out and "0.1234" in out and "champion v2" in out
    assert ("current champion ecomlab-segmenter v2 could not be loaded or scored: ModuleNotFoundError: "
            "No module named 'training.segment_pyfunc'; version 3 registered as challenger; promote it by hand "
            "with `ecomlab models promote ecomlab-segmenter 3`") in out
    outcome["result"] = fake_job_result(None)
    assert runner.invoke(app, ["train", "job.yaml"]).exit_code == 0


@pytest.mark.slow  # two end-to-end jobs
def test_printed_scores_are_the_versions_tags(tracking_dir: Path) -> None:
    """`ecomlab train` prints the candidate, baseline and champion scores the new version's tags hold."""
    import re

    from mlflow.tracking import MlflowClient

    from tests.helpers import tiny_job

    config = str(tiny_job("segmenter", tracking_dir))
    for run in (1, 2):  # the second run also has a champion to score
        result = CliRunner().invoke(app, ["train", config], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        printed = dict(re.findall(r"(candidate v\d+|baseline|champion v\d+)\s*[│|]\s*([-\d.e+]+)", result.output))
        mv = MlflowClient().search_model_versions("name='ecomlab-segmenter'", order_by=["version_number DESC"])[0]
        tags = mv.tags
        assert printed[f"candidate v{mv.version}"] == f"{float(tags['ecomlab.candidate_score']):.4g}"
        assert printed["baseline"] == f"{float(tags['ecomlab.baseline_score']):.4g}"
        if run == 2:
            assert printed[f"champion v{tags['ecomlab.champion_version']}"] == f"{float(tags['ecomlab.champion_score']):.4g}"
