"""`ecomlab models list` and `ecomlab models promote`: tags that follow the alias, no store created by a
read, and a listing readable at 80 columns (issue 11, the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()


def add_version(name: str, folder: Path, decision: str, score: float, objective: str = "hit_rate_at_k") -> str:
    """A registered version with the tags and alias an automatic decision leaves (no model files needed)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass  # already registered
    version = str(client.create_model_version(name, source=(folder / "model").as_uri()).version)
    tags = {"ecomlab.decision": decision, "ecomlab.candidate_score": score, "ecomlab.objective": objective}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    client.set_registered_model_alias(name, decision, version)
    return version


@pytest.fixture
def store(tracking_dir: Path) -> Path:
    from training import tracking

    tracking.setup()
    return tracking_dir


def listed(*args: str) -> list[dict]:
    result = runner.invoke(app, ["models", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_promote_moves_the_alias_and_both_decision_tags(store: Path) -> None:
    """The old champion no longer says `champion`; the new one shows one alias, not `challenger,champion`."""
    from mlflow.tracking import MlflowClient

    name = "ecomlab-recommender"
    old = add_version(name, store, "champion", 0.41)
    new = add_version(name, store, "challenger", 0.43)
    result = runner.invoke(app, ["models", "promote", name, new])
    assert result.exit_code == 0, result.output
    assert f"replacing version {old}" in result.output
    client = MlflowClient()
    assert client.get_model_version(name, new).tags["ecomlab.decision"] == "champion"
    assert client.get_model_version(name, old).tags["ecomlab.decision"] == "challenger"
    assert f"replaced by version {new}" in client.get_model_version(name, old).tags["ecomlab.decision_reason"]
    rows = {r["version"]: r for r in listed()}
    assert rows[new]["aliases"] == ["champion"] and rows[new]["decision"] == "champion"
    assert rows[old]["aliases"] == [] and rows[old]["decision"] == "challenger"


@pytest.mark.parametrize("command", [["models", "list"], ["models", "promote", "ecomlab-segmenter", "1"]])
def test_read_only_commands_do_not_create_a_missing_store(tmp_path: Path, monkeypatch, command: list[str]) -> None:
    """A store that does not exist is named, exit 2, and neither its folder nor a database appears."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/nowhere/mlflow.db")
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "no MLflow store at" in result.output and "does not exist" in result.output
    assert not (tmp_path / "nowhere").exists()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the default: ./mlflow.db of a folder without one
    result = runner.invoke(app, command)
    assert result.exit_code == 2 and "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_models_list_is_readable_at_80_columns(store: Path) -> None:
    """Full names, 4 significant digits, the metric and its direction; nothing cut with an ellipsis."""
    add_version("ecomlab-recommender", store, "champion", 0.123456789)
    add_version("ecomlab-segmenter", store, "champion", 0.3333333333, objective="silhouette")
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "ecomlab-recommender: hit_rate_at_k, higher is better" in result.output
    assert "ecomlab-segmenter: silhouette, higher is better" in result.output
    assert "0.1235" in result.output and "0.3333" in result.output and "0.123456789" not in result.output


def test_models_list_name_and_json(store: Path) -> None:
    add_version("ecomlab-recommender", store, "champion", 0.5)
    add_version("ecomlab-segmenter", store, "champion", 0.25, objective="silhouette")
    rows = listed("--name", "ecomlab-segmenter")
    assert [(r["name"], r["version"], r["score"], r["direction"]) for r in rows] == [
        ("ecomlab-segmenter", "1", 0.25, "maximize")
    ]
    result = runner.invoke(app, ["models", "list", "--name", "ecomlab-segmenter"])
    assert "ecomlab-segmenter" in result.output and "ecomlab-recommender" not in result.output
    assert listed("--name", "no-such-model") == []
