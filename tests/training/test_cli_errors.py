"""User mistakes on the CLI are one line: a config of the wrong kind, no wrapping at 80 columns, no
spinner left beside the error, and a missing data file found before MLflow is set up (issue 11)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.helpers import REPO
from training.cli import app

runner = CliRunner()
COLUMNS = {"order_id": "o", "order_date": "d", "product_id": "p", "quantity": "q", "unit_price": "price"}


def lines_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_data_check_on_a_job_config_says_so_in_one_line() -> None:
    result = runner.invoke(app, ["data", "check", str(REPO / "configs" / "segment.yaml")], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert len(lines_of(result.output)) == 1, result.output
    assert "a job config (job: segment), not a data config" in result.output
    assert "unknown key" not in result.output and "ecomlab train" in result.output


def test_train_on_a_data_config_says_so_in_one_line() -> None:
    result = runner.invoke(app, ["train", str(REPO / "configs" / "data" / "synthetic.yaml")], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert len(lines_of(result.output)) == 1, result.output
    assert "a data config (format: synthetic), not a job config" in result.output and "unknown key" not in result.output


def test_a_long_error_is_one_line_at_80_columns_without_a_spinner(tmp_path: Path) -> None:
    """The error runs past 80 columns and stays one line; the loading bar is not left beside it."""
    deep = tmp_path / "a-rather-long-folder-name" / "and-another-one-to-pass-eighty-columns"
    deep.mkdir(parents=True)
    cfg = {"name": "gone", "format": "csv", "path": "gone.csv", "columns": COLUMNS}
    (deep / "gone.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["data", "check", str(deep / "gone.yaml")], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    [line] = lines_of(result.output)
    assert len(line) > 80 and line.startswith("error:") and "data file not found: gone.csv" in line
    assert "loading" not in result.output


def test_train_with_a_missing_data_file_fails_before_mlflow(tmp_path: Path, monkeypatch) -> None:
    """The data file is checked with the config: the job (and MLflow's setup) never starts."""
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"name": "gone", "format": "csv", "path": "gone.csv", "columns": COLUMNS}))
    job = yaml.safe_load((REPO / "configs" / "segment.yaml").read_text())
    job["data"] = "data.yaml"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    jobs = types.ModuleType("training.jobs")

    def never(*args, **kwargs):
        raise AssertionError("the job started (and set MLflow up) before the data file was checked")

    jobs.Hooks, jobs.run_loaded_job = never, never
    monkeypatch.setitem(sys.modules, "training.jobs", jobs)
    result = runner.invoke(app, ["train", str(tmp_path / "job.yaml")])
    assert result.exit_code == 2, result.output
    assert "data file not found: gone.csv" in result.output
