"""A clv job as a user runs it (`ecomlab train`): parameters logged under their own names, figures and
losses in the run, the printed scores equal the version's tags; a shop nobody bought twice from and a fit
that does not converge stop the job with one line and register nothing. Also CDNOW end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import REPO, shared_dataset, tiny_job, write_csv_source
from training.cli import app

pytestmark = pytest.mark.slow


def _train(config: Path | str) -> object:
    return CliRunner().invoke(app, ["train", str(config)], env={"COLUMNS": "200"})


def _versions(name: str) -> list:
    from mlflow.tracking import MlflowClient

    return MlflowClient().search_model_versions(f"name='{name}'")


def test_clv_job_logs_parameters_figures_and_losses(tracking_dir: Path) -> None:
    from mlflow.tracking import MlflowClient

    result = _train(tiny_job("clv", tracking_dir))
    assert result.exit_code == 0, result.output
    (mv,) = _versions("ecomlab-clv")
    printed = dict(re.findall(r"(candidate v\d+|baseline)\s*[│|]\s*([-\d.e+]+)", result.output))
    assert printed[f"candidate v{mv.version}"] == f"{float(mv.tags['ecomlab.candidate_score']):.4g}"
    assert printed["baseline"] == f"{float(mv.tags['ecomlab.baseline_score']):.4g}"
    assert mv.tags["ecomlab.refit_on_all_data"] == "true"
    client = MlflowClient()
    run = client.get_run(mv.run_id)
    assert {"r", "alpha", "a", "b", "p", "q", "v", "freq_spend_correlation", "heuristic_clv_kpi"} <= set(run.data.metrics)
    assert {"best_holdout_mae", "baseline_holdout_mae", "best_holdout_rmse"} <= set(run.data.metrics)
    artifacts = {a.path for folder in ("plots", "losses", "tables") for a in client.list_artifacts(mv.run_id, folder)}
    assert {"losses/candidate.parquet", "losses/baseline.parquet"} <= artifacts
    assert any("p_alive_matrix" in a for a in artifacts) and any("calibration_holdout" in a for a in artifacts)


def test_a_shop_without_repeat_purchases_stops_with_one_line(tracking_dir: Path) -> None:
    rows = [f"o{i},2024-0{1 + i % 9}-1{i % 9},c{i},p{i % 7},1,{5 + i % 11}.0" for i in range(400)]
    write_csv_source(tracking_dir, "\n".join(rows) + "\n", "once")
    job = yaml.safe_load((REPO / "configs" / "clv.yaml").read_text())
    job.update(data="once.yaml", kpi_context=False)
    (tracking_dir / "clv.yaml").write_text(yaml.safe_dump(job))
    result = _train(tracking_dir / "clv.yaml")
    assert result.exit_code == 1
    assert "no customer made a repeat purchase" in result.output and "Traceback" not in result.output
    assert _versions("ecomlab-clv") == []


@pytest.mark.parametrize("fail_on", ["every fit", "final fit"])
def test_a_fit_that_does_not_converge_registers_nothing(tracking_dir: Path, monkeypatch, fail_on: str) -> None:
    import training.clv.fit as fit_module
    from features.btyd import NotConverged

    real, calls = fit_module.fit_beta_geo, []
    n_trials = 2

    def flaky(*args, **kwargs):
        calls.append(1)
        if fail_on == "every fit" or len(calls) > n_trials:
            raise NotConverged("BG/NBD: ABNORMAL_TERMINATION_IN_LNSRCH")
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "fit_beta_geo", flaky)
    result = _train(tiny_job("clv", tracking_dir))
    assert result.exit_code == 1, result.output
    assert "ABNORMAL_TERMINATION_IN_LNSRCH" in result.output
    assert _versions("ecomlab-clv") == []


@pytest.mark.realdata
def test_cdnow_job_beats_the_naive_rate(tracking_dir: Path, monkeypatch) -> None:
    """CDNOW (Fader, Hardie & Lee 2005): 39 calibration weeks, 39 holdout weeks, 23,570 customers."""
    folder = shared_dataset("cdnow_lifetimes")
    monkeypatch.setenv("ECOMLAB_DATA_DIR", str(folder.parent))
    result = _train(REPO / "configs" / "clv_cdnow.yaml")
    assert result.exit_code == 0, result.output
    (mv,) = _versions("ecomlab-clv-cdnow")
    assert float(mv.tags["ecomlab.candidate_score"]) < float(mv.tags["ecomlab.baseline_score"])
