"""`ecomlab score` in process: registered models of each family over CSV, Parquet and data-config inputs,
chunked like unchunked, every row stamped with the model's name and version, one-line errors (issue 12 part 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from serving.batch import ScoringModel, frame_chunks, load_scoring_model, score_chunks
from serving.batch_inputs import InputError, needs, open_source
from tests.helpers import fresh_mlflow_db
from training.cli import app

runner = CliRunner()
FEATURES = ["recency", "frequency", "monetary", "tenure"]


def segmenter_model():
    from sklearn.cluster import KMeans
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from features.customers import signed_log1p
    from serving.models.segmenter import SegmentModel

    x = customers(400, seed=1)[FEATURES].to_numpy()
    pipeline = Pipeline([
        ("transform", FunctionTransformer(signed_log1p)), ("scale", StandardScaler()),
        ("kmeans", KMeans(3, n_init=2, random_state=0)),
    ]).fit(x)
    return SegmentModel(pipeline, FEATURES, np.array([2, 0, 1]), {0: "gold", 1: "silver", 2: "bronze"})


def forecaster_model():
    from serving.models.forecaster import ForecastModel
    from serving.models.series_model import Design, SeriesModel

    def naive(uid: str, last: float) -> SeriesModel:
        return SeriesModel(uid, "naive", {}, "test", pd.Timestamp("2024-06-03"), 40, Design("W", 52), tail=np.array([last]), sigma=2.0)

    return ForecastModel({"toys": naive("toys", 10.0), "books": naive("books", 25.0)}, "W", 52, [80, 95])


def recommender_model():
    from serving.models.recommender import PopularityModel
    from serving.models.rule_ranking import PopularityRecommender

    items = np.array(["apple", "bread", "cheese", "dates", "eggs"], dtype=object)
    return PopularityModel(PopularityRecommender(items, np.array([9, 7, 5, 3, 1]), 12), default_k=3)


def clv_model():
    from features.btyd import BetaGeoParams, GammaGammaParams
    from serving.models.clv import ClvModel

    # CDNOW's fitted values (Fader, Hardie & Lee 2005) as a plausible model; any positive values would do
    return ClvModel(BetaGeoParams(0.243, 4.414, 0.793, 2.426), "bgnbd", GammaGammaParams(6.25, 3.74, 15.44), "W", 52, 0.1, 520)


def summaries(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frequency = rng.integers(0, 8, n).astype(float)
    T = rng.integers(20, 60, n).astype(float)
    recency = np.where(frequency > 0, np.floor(T * rng.uniform(0, 1, n)), 0.0)
    monetary = np.where(frequency > 0, rng.gamma(3.0, 12.0, n), 0.0)
    ids = pd.array([f"k{i}" for i in range(n)], dtype="string")
    return pd.DataFrame({"customer_id": ids, "frequency": frequency, "recency": recency, "T": T, "monetary": monetary})


def customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": pd.array([f"c{i:05d}" for i in range(n)], dtype="string"),
        "recency": rng.integers(1, 400, n).astype(float), "frequency": rng.integers(1, 30, n).astype(float),
        "monetary": rng.gamma(2.0, 150.0, n), "tenure": rng.integers(400, 800, n).astype(float),
    })


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> dict:
    """A store holding the three families (built by hand: no training job); the segmenter twice, v2 champion."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from training import tracking

    folder = tmp_path_factory.mktemp("score-registry")
    uri = fresh_mlflow_db(mlflow_template_db, folder)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    mlflow.set_experiment(experiment_id=client.create_experiment("score", artifact_location=(folder / "art").as_uri()))
    runs = {}
    examples = {
        "seg": (segmenter_model(), customers(3, 0)),
        "fc": (forecaster_model(), pd.DataFrame({"series_id": ["toys"], "horizon": [2]})),
        "rec": (recommender_model(), pd.DataFrame({"items": [["apple"], ["bread", "kiwi"]]})),
        "clv": (clv_model(), summaries(3, 0)),
    }
    for name, (model, example) in [("seg", examples["seg"]), *examples.items()]:
        with mlflow.start_run() as run:
            logged = tracking.log_model(model, example, model.predict(None, example))
        version = mlflow.register_model(logged.uri, name).version
        client.set_registered_model_alias(name, "champion", str(version))
        runs[name] = run.info.run_id
    return {"uri": uri, "folder": folder, "runs": runs}


def score(registry: dict, model_uri: str, frame_or_path, out: Path, chunk_size: int = 10_000) -> pd.DataFrame:
    """Score in process through the same functions the command calls; the output read back."""
    scoring = load_scoring_model(model_uri, registry["uri"])
    need = needs(scoring.family, scoring.model)
    chunks = open_source(frame_or_path, chunk_size, need).chunks() if isinstance(frame_or_path, Path) else frame_chunks(frame_or_path, chunk_size)
    score_chunks(scoring, chunks, out)
    return read(out)


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"model_version": str})


def cli(registry: dict, *args: str):
    return runner.invoke(app, ["score", *args], env={"MLFLOW_TRACKING_URI": registry["uri"], "COLUMNS": "300"})


# ---- answers ----


def test_chunked_output_equals_unchunked_and_names_the_version(registry: dict, tmp_path: Path) -> None:
    rows = customers(95, seed=5)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    whole = score(registry, "models:/seg@champion", tmp_path / "in.parquet", tmp_path / "whole.parquet")
    chunked = score(registry, "models:/seg@champion", tmp_path / "in.parquet", tmp_path / "chunked.parquet", chunk_size=7)
    pd.testing.assert_frame_equal(whole, chunked)
    expected = segmenter_model().predict(None, rows)
    assert whole["segment_id"].tolist() == expected["segment_id"].tolist()
    assert whole["customer_id"].tolist() == rows["customer_id"].tolist()
    assert set(whole["model_name"]) == {"seg"} and set(whole["model_version"]) == {"2"}  # the alias resolved
    assert whole["segment_id"].nunique() > 1


def test_csv_in_csv_out_equals_parquet(registry: dict, tmp_path: Path) -> None:
    rows = customers(40, seed=6)
    rows["customer_id"] = [f"{i:05d}" for i in range(40)]  # leading zeros survive a CSV
    rows.to_csv(tmp_path / "in.csv", index=False)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    from_csv = score(registry, "models:/seg/1", tmp_path / "in.csv", tmp_path / "out.csv", chunk_size=9)
    from_parquet = score(registry, "models:/seg/1", tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert from_csv["customer_id"].astype(str).str.zfill(5).tolist() == rows["customer_id"].tolist()
    assert from_csv["segment_id"].tolist() == from_parquet["segment_id"].tolist()
    assert (tmp_path / "out.csv").read_text().splitlines()[0].split(",")[-2:] == ["model_name", "model_version"]
    assert set(from_csv["model_version"]) == {"1"}


def test_run_uri_is_named_by_its_path_and_run(registry: dict, tmp_path: Path) -> None:
    run = registry["runs"]["fc"]
    out = score(registry, f"runs:/{run}/model", pd.DataFrame({"series_id": ["toys"], "horizon": [3]}), tmp_path / "o.parquet")
    assert set(out["model_name"]) == {"model"} and set(out["model_version"]) == {f"run:{run}"}
    assert out["yhat"].tolist() == [10.0, 10.0, 10.0]


def test_forecaster_levels_per_row_and_chunks(registry: dict, tmp_path: Path) -> None:
    """A chunk whose rows ask for fewer levels than the first chunk's gets nulls in the other columns."""
    rows = pd.DataFrame({"series_id": ["toys", "books", "toys"], "horizon": [2, 3, 1], "levels": [[80, 95], [95], None]})
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    out = score(registry, "models:/fc@champion", tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_size=1)
    expected = forecaster_model().predict(None, rows)
    assert list(out.columns) == [*expected.columns, "model_name", "model_version"]
    pd.testing.assert_frame_equal(out[expected.columns], expected, check_dtype=False)
    csv = tmp_path / "in.csv"
    csv.write_text("series_id,horizon,levels\ntoys,2,80 95\nbooks,3,[95]\ntoys,1,\n")
    from_csv = score(registry, "models:/fc/1", csv, tmp_path / "out.csv", chunk_size=2)
    pd.testing.assert_frame_equal(from_csv[expected.columns], expected, check_dtype=False)


def test_recommender_list_cells_and_basket_ids(registry: dict, tmp_path: Path) -> None:
    csv = tmp_path / "baskets.csv"
    csv.write_text('basket_id,items,k\nb1,apple kiwi,2\nb2,"[""bread"", ""cheese""]",\nb3,,1\n')
    out = score(registry, "models:/rec@champion", csv, tmp_path / "out.parquet", chunk_size=2)
    assert out["basket_id"].tolist() == ["b1", "b2", "b3"]
    assert [list(x) for x in out["items"]] == [["bread", "cheese"], ["apple", "dates", "eggs"], ["apple"]]
    assert [list(x) for x in out["unknown_items"]] == [["kiwi"], [], []]
    as_csv = score(registry, "models:/rec/1", csv, tmp_path / "out.csv")
    assert [json.loads(x) for x in as_csv["items"]] == [list(x) for x in out["items"]]


def test_clv_with_horizon_and_discount_rate(registry: dict, tmp_path: Path) -> None:
    """The clv family as the others (issue 14): chunked CSV in; --horizon and --discount-rate for the rows
    that do not give their own (a row's own horizon column wins)."""
    rows = summaries(57, seed=8)
    rows["horizon"] = [13.0 if i % 4 == 0 else None for i in range(57)]
    rows.to_csv(tmp_path / "in.csv", index=False)
    args = ["models:/clv@champion", str(tmp_path / "in.csv"), "--chunk-size", "10"]
    result = cli(registry, *args, "--out", str(tmp_path / "o.parquet"), "--horizon", "26", "--discount-rate", "0.2")
    assert result.exit_code == 0, result.output
    out = read(tmp_path / "o.parquet")
    filled = rows.assign(horizon=rows["horizon"].fillna(26.0), discount_rate=0.2)
    expected = clv_model().predict(None, filled)
    pd.testing.assert_frame_equal(out.drop(columns=["model_name", "model_version"]), expected, check_dtype=False)
    assert out["horizon"].tolist()[:2] == [13.0, 26.0]
    default = cli(registry, *args, "--out", str(tmp_path / "d.parquet"))
    assert default.exit_code == 0, default.output
    np.testing.assert_allclose(read(tmp_path / "d.parquet")["clv"], clv_model().predict(None, rows)["clv"])  # own horizons, else the model's
    assert not np.allclose(out["clv"], read(tmp_path / "d.parquet")["clv"])  # the terms were used
    bad = cli(registry, *args, "--out", str(tmp_path / "b.parquet"), "--horizon", "9999")
    assert bad.exit_code == 2 and "horizon" in bad.output and not (tmp_path / "b.parquet").exists()


def test_data_config_input_is_built_like_training(registry: dict, tmp_path: Path) -> None:
    """A data config's lines become customer features (features.customers, reference date = last day + 1)."""
    from features.customers import build_customer_features
    from features.sources import load

    data = {"name": "tiny", "format": "synthetic", "synthetic": {"n_customers": 60, "weeks": 20, "seed": 4}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    result = cli(registry, "models:/seg@champion", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "o.parquet"), "--chunk-size", "13")
    assert result.exit_code == 0, result.output
    feats = build_customer_features(load(tmp_path / "data.yaml").lines).table
    out = read(tmp_path / "o.parquet")
    assert out["customer_id"].tolist() == feats["customer_id"].tolist()
    assert out["segment_id"].tolist() == segmenter_model().predict(None, feats[["customer_id", *FEATURES]])["segment_id"].tolist()
    forecast = cli(registry, "models:/fc/1", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "f.csv"))
    assert forecast.exit_code == 0, forecast.output
    assert read(tmp_path / "f.csv").groupby("series_id")["step"].max().to_dict() == {"books": 4, "toys": 4}  # W: 4 periods


def test_clv_data_config_is_summarised_in_the_models_unit(registry: dict, tmp_path: Path) -> None:
    from features.btyd.summary import summarise
    from features.sources import load

    data = {"name": "tiny", "format": "synthetic", "synthetic": {"n_customers": 60, "weeks": 30, "seed": 4}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    result = cli(registry, "models:/clv/1", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 0, result.output
    table = summarise(load(tmp_path / "data.yaml").lines, unit="W").table
    out = read(tmp_path / "o.csv")
    assert out["customer_id"].astype(str).tolist() == table.index.astype(str).tolist()
    expected = clv_model().predict(None, table[["frequency", "recency", "T", "monetary"]].reset_index())
    np.testing.assert_allclose(out["clv"], expected["clv"], rtol=1e-12)


@pytest.mark.realdata
def test_clv_scores_a_customer_summary_source(registry: dict, tmp_path: Path, shared_data) -> None:
    """The published CDNOW summary (format customer_summary, weeks) scored as given; in days it is refused."""
    folder = shared_data("cdnow_lifetimes")
    columns = {"customer_id": "ID", "frequency": "x", "recency": "t_x", "T": "T", "monetary": "zbar"}
    for unit in ("weeks", "days"):
        config = {"name": "cdnow", "format": "customer_summary", "path": str(folder / "cdnow_customers_summary_with_transactions.csv"),
                  "time_unit": unit, "summary_columns": columns}
        (tmp_path / f"{unit}.yaml").write_text(yaml.safe_dump(config))
    result = cli(registry, "models:/clv/1", str(tmp_path / "weeks.yaml"), "--out", str(tmp_path / "o.parquet"))
    assert result.exit_code == 0, result.output
    out = read(tmp_path / "o.parquet")
    raw = pd.read_csv(folder / "cdnow_customers_summary_with_transactions.csv")
    assert len(out) == len(raw) == 2357 and out["customer_id"].astype(int).tolist() == raw["ID"].tolist()
    given = raw.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary"})
    np.testing.assert_allclose(out["clv"], clv_model().predict(None, given)["clv"], rtol=1e-12)
    days = cli(registry, "models:/clv/1", str(tmp_path / "days.yaml"), "--out", str(tmp_path / "d.parquet"))
    assert days.exit_code == 2 and "customer summary is in unit 'D' but the model counts in 'W'" in days.output


# ---- errors: one line, exit 2, nothing half-written ----


def test_missing_columns_name_them(registry: dict, tmp_path: Path) -> None:
    customers(5, 0).drop(columns=["frequency", "tenure"]).to_csv(tmp_path / "in.csv", index=False)
    result = cli(registry, "models:/seg@champion", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.parquet"))
    assert result.exit_code == 2
    line = "error: INPUT lacks column(s) ['frequency', 'tenure'] the model needs ['recency', 'frequency', 'monetary', 'tenure']"
    assert result.output.strip() == line
    assert not (tmp_path / "o.parquet").exists()


def test_a_refused_row_is_named_by_its_input_row_and_nothing_is_written(registry: dict, tmp_path: Path) -> None:
    rows = pd.DataFrame({"series_id": ["toys"] * 30, "horizon": [2] * 30})
    rows.loc[23, "series_id"] = "garden"
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "o.csv"
    out.write_text("an earlier output\n")
    result = cli(registry, "models:/fc/1", str(tmp_path / "in.parquet"), "--out", str(out), "--chunk-size", "10")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: input row 23: unknown series_id 'garden'")
    assert out.read_text() == "an earlier output\n"  # the chunks scored before were never moved over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "o.csv"]  # no temporary file left
    customers(12, 0).assign(recency=["7"] * 11 + ["soon"]).to_csv(tmp_path / "c.csv", index=False)
    bad_cell = cli(registry, "models:/seg/1", str(tmp_path / "c.csv"), "--out", str(tmp_path / "c.parquet"), "--chunk-size", "5")
    assert bad_cell.exit_code == 2 and bad_cell.output.strip() == "error: input row 11: column 'recency': 'soon' is not a number"


@pytest.mark.parametrize(
    "uri, message",
    [
        ("models:/nobody@champion", "nobody"),
        ("models:/seg@nobody", "nobody"),
        ("models:/seg/9", "seg"),
        ("runs:/0123456789abcdef/model", "0123456789abcdef"),
        ("seg", "expected models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH"),
    ],
)
def test_unknown_models_and_aliases_are_one_line(registry: dict, tmp_path: Path, uri: str, message: str) -> None:
    customers(3, 0).to_csv(tmp_path / "in.csv", index=False)
    result = cli(registry, uri, str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output
    assert not (tmp_path / "o.csv").exists()


def test_unreachable_store_and_bad_files_are_named(registry: dict, tmp_path: Path) -> None:
    from tests.service_harness import free_port

    customers(3, 0).to_csv(tmp_path / "in.csv", index=False)
    server = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["score", "models:/seg/1", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv")],
                           env={"MLFLOW_TRACKING_URI": server})
    assert result.exit_code == 2 and result.output.startswith(f"error: tracking store {server} unreachable: ")
    assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    for given, said in [("broken.parquet", "cannot read it as PARQUET"), ("absent.csv", "no such file"), ("in.txt", "unknown input type")]:
        bad = cli(registry, "models:/seg/1", str(tmp_path / given), "--out", str(tmp_path / "o.csv"))
        assert bad.exit_code == 2 and said in bad.output, bad.output
    (tmp_path / "ragged.csv").write_text("recency,frequency,monetary,tenure\n" + "1,2,3,4\n" * 30 + "1,2,3,4,5,6\n")
    ragged = cli(registry, "models:/seg/1", str(tmp_path / "ragged.csv"), "--out", str(tmp_path / "o.csv"), "--chunk-size", "8")
    assert ragged.exit_code == 2 and "ragged.csv: unreadable: Error tokenizing data" in ragged.output, ragged.output
    assert not (tmp_path / "o.csv").exists()
    wrong_out = cli(registry, "models:/seg/1", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.json"))
    assert wrong_out.exit_code == 2 and "unknown output type '.json'" in wrong_out.output
    missing = runner.invoke(app, ["score", "models:/seg/1", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv")],
                            env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'none.db'}"})
    assert missing.exit_code == 2 and "does not exist" in missing.output and not (tmp_path / "none.db").exists()


def test_progress_bar_on_a_terminal(registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.cli import score as score_cmd

    screen = io.StringIO()
    monkeypatch.setattr(score_cmd, "console", Console(file=screen, force_terminal=True, width=120))
    with score_cmd._bar(100, "rows") as on_chunk:
        on_chunk(40, 40)
        on_chunk(100, 100)
    assert "scoring" in screen.getvalue() and "100/100 rows" in screen.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(score_cmd, "console", Console(file=quiet, force_terminal=False))
    with score_cmd._bar(100, "rows") as on_chunk:
        on_chunk(100, 100)
    assert quiet.getvalue() == ""


def test_a_model_without_the_columns_is_an_input_error(tmp_path: Path) -> None:
    """The column check runs on in-memory inputs too (a data config's frame), before any row is scored."""
    scoring = ScoringModel("seg", "1", "segmenter", segmenter_model(), "models:/seg/1")
    with pytest.raises(InputError, match=r"lacks column\(s\) \['tenure'\]"):
        score_chunks(scoring, frame_chunks(customers(4, 0).drop(columns="tenure"), 2), tmp_path / "o.parquet")
    assert list(tmp_path.iterdir()) == []
