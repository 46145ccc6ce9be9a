"""`ecomlab runs list` and `ecomlab runs compare` (issue 15): job runs only, 80 columns, paired comparisons
with verdicts, and one-line refusals for runs that cannot be compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from training.cli import app
from training.identity import DATA, SPLIT, UNITS, evaluation_identity

runner = CliRunner()
CFG = {"evaluation": {"seed": 42, "test_fraction": 0.3}}


def clv_losses(errors: np.ndarray) -> pd.DataFrame:
    n = len(errors)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "actual": np.ones(n), "predicted": 1 + errors,
                         "abs_error": np.abs(errors), "squared_error": errors**2})


def fake_run(experiment: str, losses: pd.DataFrame | None, family: str = "clv", digest: str = "d1gest00aa",
             job: str = "clv", decision: str = "champion", version: str = "1", cfg: dict | None = None,
             start: int = 0, parent: str | None = None) -> str:
    """A parent run as a job leaves it (tags, metrics, losses), without training anything."""
    from mlflow.tracking import MlflowClient

    from training import tracking

    client = MlflowClient()
    exp = tracking.ensure_experiment(experiment)
    tags = {"ecomlab.job": job, "ecomlab.family": family, DATA: digest}
    if parent:
        tags = {"mlflow.parentRunId": parent, "ecomlab.trial": "0"}
    run = client.create_run(exp, start_time=1_700_000_000_000 + start * 60_000, tags=tags)
    run_id = run.info.run_id
    if losses is not None and not parent:
        client.set_tag(run_id, SPLIT, evaluation_identity(family, cfg or CFG, losses)[SPLIT])
        client.set_tag(run_id, UNITS, evaluation_identity(family, cfg or CFG, losses)[UNITS])
        mae = float(losses["abs_error"].mean()) if "abs_error" in losses else 0.5
        for key, value in {"best_holdout_mae": mae, "best_holdout_rmse": mae * 1.5, "baseline_holdout_mae": 2.0}.items():
            client.log_metric(run_id, key, value)
        with tempfile_dir() as tmp:
            path = Path(tmp) / "candidate.parquet"
            losses.to_parquet(path, index=False)
            client.log_artifact(run_id, str(path), "losses")
    if not parent:
        for key, value in {"ecomlab.decision": decision, "ecomlab.registered_version": version}.items():
            client.set_tag(run_id, key, value)
    client.set_terminated(run_id, "FINISHED", end_time=1_700_000_000_000 + start * 60_000 + 1000)
    return run_id


def tempfile_dir():
    import tempfile

    return tempfile.TemporaryDirectory()


@pytest.fixture
def store(tracking_dir: Path) -> Path:
    from training import tracking

    tracking.setup()
    return tracking_dir


@pytest.fixture
def errors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    base = rng.gamma(2.0, 1.0, 300)
    return {"base": base, "worse": base * 1.5}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


# ---- runs list ----


def test_runs_list_shows_job_runs_only_newest_first_in_80_columns(store: Path, errors) -> None:
    from training.cli.runs import runs_table
    from training.tracking.compare import parent_runs

    old = fake_run("shop-clv", clv_losses(errors["worse"]), job="clv-weekly-long-name", start=0)
    new = fake_run("shop-clv", clv_losses(errors["base"]), decision="challenger", version="2", start=5)
    fake_run("shop-clv", None, parent=new, start=6)  # a trial
    listed = json.loads(invoke("runs", "list", "shop-clv", "--json").stdout)
    assert [r["run_id"] for r in listed] == [new, old]
    assert listed[0]["decision"] == "challenger" and listed[0]["version"] == "2"
    assert listed[0]["objective"] == "holdout_mae" and listed[0]["direction"] == "minimize"
    assert listed[1]["score"] == pytest.approx(errors["worse"].mean()) and listed[1]["data_digest"] == "d1gest00aa"
    console = Console(width=80, record=True)
    console.print(runs_table("shop-clv", parent_runs("shop-clv")))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert new[:8] in text and old[:8] in text and "challenger" in text and "d1gest00" in text
    assert "holdout_mae, lower is better" in text
    result = runner.invoke(app, ["runs", "list", "shop-clv"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and max(len(line) for line in result.output.splitlines()) <= 80
    assert_refused(invoke("runs", "list", "no-such-experiment"), "no experiment 'no-such-experiment'", "shop-clv")


# ---- runs compare ----


def test_a_run_compared_with_itself_shows_no_difference(store: Path, errors) -> None:
    run = fake_run("shop-clv", clv_losses(errors["base"]))
    report = json.loads(invoke("runs", "compare", run, run, "--json").stdout)
    (pair,) = report["pairs"]
    assert pair["difference"] == 0 and pair["p_value"] == pytest.approx(1.0)
    assert pair["ci_low"] <= 0 <= pair["ci_high"] and "no significant difference" in pair["verdict"]


def test_compare_reports_metrics_pairs_verdicts_and_logs_on_the_newer_run(store: Path, errors) -> None:
    from mlflow.tracking import MlflowClient

    worse = fake_run("shop-clv", clv_losses(errors["worse"]), start=0)
    better = fake_run("shop-clv", clv_losses(errors["base"]), start=5)
    same = fake_run("shop-clv", clv_losses(errors["worse"]), start=1)
    report = json.loads(invoke("runs", "compare", worse, better, same, "--json", "--seed", "3").stdout)
    assert report["family"] == "clv" and report["metrics"][0] == "holdout_mae" and report["seed"] == 3
    first, second = report["pairs"]
    assert (first["a_run"], first["b_run"], second["b_run"]) == (worse, better, same)
    assert first["p_value"] < 0.01 and first["difference"] > 0  # the reference has the larger error
    assert first["verdict"].startswith(f"{better[:8]} is better than {worse[:8]}")
    assert "no significant difference" in second["verdict"]
    text = invoke("runs", "compare", worse, better).output
    assert "holdout_rmse" in text and f"{worse[:8]} vs {better[:8]}" in text and "is better than" in text
    md = invoke("runs", "compare", worse, better, "--markdown").stdout
    assert md.startswith("# clv: holdout_mae") and "| metric |" in md and "| holdout_mae |" in md and "- " in md
    logged = invoke("runs", "compare", worse, better, "--log")
    assert logged.exit_code == 0, logged.output
    artifacts = {a.path for a in MlflowClient().list_artifacts(better, "comparisons")}
    stem = f"comparisons/compare-{worse[:8]}-{better[:8]}"
    assert artifacts == {f"{stem}.json", f"{stem}.md"}
    assert not MlflowClient().list_artifacts(worse, "comparisons")
    saved = json.loads(Path(MlflowClient().download_artifacts(better, f"{stem}.json", str(store))).read_text())
    assert saved["pairs"][0]["p_value"] == first["p_value"]


def test_compare_resolves_versions_and_aliases(store: Path, errors) -> None:
    from mlflow.tracking import MlflowClient

    a = fake_run("shop-clv", clv_losses(errors["worse"]), start=0)
    b = fake_run("shop-clv", clv_losses(errors["base"]), start=1)
    client = MlflowClient()
    client.create_registered_model("ecomlab-clv")
    for run in (a, b):
        client.create_model_version("ecomlab-clv", source=(store / run).as_uri(), run_id=run)
    client.set_registered_model_alias("ecomlab-clv", "champion", "2")
    report = json.loads(invoke("runs", "compare", "ecomlab-clv/1", "ecomlab-clv@champion", "--json").stdout)
    assert [r["run_id"] for r in report["runs"]] == [a, b]
    assert report["pairs"][0]["verdict"].startswith("ecomlab-clv@champion is better than ecomlab-clv/1")
    assert_refused(invoke("runs", "compare", "ecomlab-clv/1", "ecomlab-clv/9"), "unknown model version 'ecomlab-clv/9'")
    assert_refused(invoke("runs", "compare", "ecomlab-clv@nobody", a), "unknown alias 'ecomlab-clv@nobody'")


def test_compare_refusals_are_one_line(store: Path, errors) -> None:
    ok = fake_run("shop-clv", clv_losses(errors["base"]))
    assert_refused(invoke("runs", "compare", ok, "0123456789abcdef0123456789abcdef"), "unknown run id '0123456789abcdef")
    assert_refused(invoke("runs", "compare", ok), "at least two")
    segments = pd.DataFrame({"replicate": np.arange(20), "silhouette": np.linspace(0.3, 0.4, 20)})
    seg = fake_run("shop-seg", segments, family="segmenter", job="segment")
    assert_refused(invoke("runs", "compare", ok, seg), "clv run", "segmenter run", "one family")
    other_data = fake_run("shop-clv", clv_losses(errors["base"]), digest="ffffffff00")
    assert_refused(invoke("runs", "compare", ok, other_data), "different data", "d1gest00aa", "ffffffff00")
    other_split = fake_run("shop-clv", clv_losses(errors["base"]), cfg={"evaluation": {"seed": 7, "test_fraction": 0.3}})
    assert_refused(invoke("runs", "compare", ok, other_split), "different evaluation split")
    fewer = fake_run("shop-clv", clv_losses(errors["base"][:250]))
    assert_refused(invoke("runs", "compare", ok, fewer), "different evaluation units")
    old = fake_run("shop-clv", None, job="clv-2025")  # made before per-unit losses were logged
    assert_refused(invoke("runs", "compare", ok, old), old[:8], "clv-2025", "no per-unit losses", "ecomlab train CONFIG")
    trial = fake_run("shop-clv", None, parent=ok)
    assert_refused(invoke("runs", "compare", ok, trial), "trial run", ok[:8])
    assert_refused(invoke("runs", "compare", ok, ok, "--json", "--markdown"), "choose one")


# ---- real job runs ----


@pytest.mark.slow  # two whole jobs
def test_two_job_runs_compare_and_the_gate_keeps_an_equal_retrain_challenger(tracking_dir: Path) -> None:
    """A retrain of the same config on the same data is no better than the champion: it stays challenger,
    the gate's evidence is on its version, and `runs compare` of the two versions says no difference."""
    from mlflow.tracking import MlflowClient

    from tests.helpers import tiny_job
    from training.jobs import run_job

    config = tiny_job("segmenter", tracking_dir)
    first, second = run_job(config), run_job(config)
    assert first.decision.alias == "champion" and "beats the baseline significantly" in first.decision.reason
    assert second.decision.alias == "challenger" and "not beat the champion significantly" in second.decision.reason
    client = MlflowClient()
    tags = client.get_model_version(second.model_name, second.decision.version).tags
    assert tags["ecomlab.gate_test"] == "paired" and float(tags["ecomlab.gate_champion_p_value"]) > 0.05
    assert float(tags["ecomlab.gate_baseline_p_value"]) < 0.05 and tags["ecomlab.gate_p_value"] == tags["ecomlab.gate_champion_p_value"]
    run = client.get_run(second.run_id)
    assert run.data.tags[SPLIT] and run.data.tags[UNITS] and run.data.tags[DATA]
    losses = {a.path for a in client.list_artifacts(second.run_id, "losses")}
    assert {"losses/candidate.parquet", "losses/baseline.parquet", "losses/champion.parquet", "losses/stability.parquet"} <= losses
    name = first.model_name
    report = json.loads(invoke("runs", "compare", f"{name}@champion", f"{name}/{second.decision.version}", "--json").stdout)
    (pair,) = report["pairs"]
    assert pair["p_value"] > 0.05 and "no significant difference" in pair["verdict"]
    assert report["metrics"][0] == "silhouette" and "stability_ari_mean" in report["metrics"]
    listed = json.loads(invoke("runs", "list", first.experiment, "--json").stdout)
    assert [r["run_id"] for r in listed] == [second.run_id, first.run_id]  # no trial runs
