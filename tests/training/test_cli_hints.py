"""Hints the CLI prints work where they are printed (issue 11): `ecomlab serve` where quickstart ran,
`uv run …` when the command is not on PATH, and a shipped data config that reads `data generate`'s output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from tests.helpers import REPO, fresh_mlflow_db
from training.cli import app

runner = CliRunner()


def test_serve_finds_the_shipped_settings_from_the_quickstart_folder(tmp_path: Path, monkeypatch) -> None:
    """Run in a folder without configs/ (where quickstart leaves mlflow.db and ecomlab-out), serve starts
    BentoML with the shipped configs/serve.yaml instead of failing with "config file not found"."""
    monkeypatch.chdir(tmp_path)
    started = {}

    def execve(program: str, args: list[str], env: dict[str, str]) -> None:
        started.update(args=args, env=env)

    monkeypatch.setattr("training.cli.serve.os.execve", execve)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert Path(started["env"]["ECOMLAB_SERVE_CONFIG"]) == (REPO / "configs" / "serve.yaml").resolve()
    assert "serving.service:EcomlabService" in started["args"]


def test_hints_say_uv_run_when_the_command_is_not_on_path(tmp_path: Path, monkeypatch, mlflow_template_db: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_mlflow_db(mlflow_template_db, tmp_path))
    monkeypatch.setattr("shutil.which", lambda program: None)
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())  # the console may wrap it: its width is fixed when first made
    assert "no registered models yet: run `uv run ecomlab train CONFIG` or `uv run ecomlab quickstart`" in shown
    monkeypatch.setattr("shutil.which", lambda program: program)
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert "run `ecomlab train CONFIG`" in result.output and "uv run" not in result.output


def test_generated_data_round_trips_through_the_shipped_config(tmp_path: Path, monkeypatch) -> None:
    """`data generate` with its default folder, then `data check configs/data/generated.yaml`, laid out as
    in the checkout: every generated line is read back, none quarantined."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "data").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "data" / "generated.yaml", tmp_path / "configs" / "data" / "generated.yaml")
    result = runner.invoke(app, ["data", "generate", "--customers", "200", "--weeks", "20"])
    assert result.exit_code == 0, result.output
    written = len(pd.read_parquet(tmp_path / "ecomlab-data" / "lines.parquet"))
    result = runner.invoke(app, ["data", "check", "configs/data/generated.yaml"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "no rows quarantined" in result.output and f"{written:,}" in result.output

    from features.sources import load

    loaded = load(tmp_path / "configs" / "data" / "generated.yaml")
    assert loaded.accounting.rows_read == loaded.accounting.rows_clean == written
    assert loaded.customers is not None and len(loaded.customers) == 200


def test_data_generate_hints_the_shipped_config_for_its_default_folder() -> None:
    from training.cli.data import _check_hint

    assert "ecomlab data check" in _check_hint(REPO / "ecomlab-data")
    assert "generated.yaml" in _check_hint(REPO / "elsewhere")
