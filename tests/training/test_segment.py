"""K-means segmenter: planted segments recovered, THE score, behaviour of the served model, names, config."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import adjusted_rand_score, silhouette_score

from features.contract import Accounting, Loaded, Quarantine
from features.customers import FEATURES, CustomerFeatures
from features.rfm import RFM, SEGMENT_GRID, SEGMENTS
from serving.models.base import SegmenterModel
from serving.models.segmenter import SegmentModel, check_features
from training.config import Tuning
from training.family import Report, Split
from training.segment import (
    RFMBaseline,
    SegmentConfig,
    SegmenterFamily,
    common_space,
    fit_segmenter,
    name_segments,
    score_segments,
)
from training.segment.scoring import scored_sample
from training.tuning import run_study

# planted groups: customers, orders per customer, days they buy on (of 2024), unit price, return share
GROUPS = {
    "vip": (50, (20, 30), (0, 364), 80.0, 0.0),
    "new": (50, (1, 2), (345, 364), 20.0, 0.0),
    "lapsed": (50, (3, 5), (0, 30), 30.0, 0.3),
    "occasional": (50, (1, 2), (160, 190), 3.0, 0.0),
}
# the same, but the lapsed customers bought once (~$60), long ago; `trap_lines` has each of them return a unit
TRAP = {**GROUPS, "lapsed": (50, (1, 1), (0, 30), 10.0, 0.0), "occasional": (50, (2, 3), (160, 190), 5.0, 0.0)}


def base_name(name: str) -> str:
    """A segment name without its qualifier and its " 2" disambiguation."""
    name = name.split(" (")[0]
    head, _, tail = name.rpartition(" ")
    return head if tail.isdigit() else name


def planted_lines(seed: int = 0, returns: bool = True, groups: dict = GROUPS) -> tuple[pd.DataFrame, pd.Series]:
    """Order lines of four clearly separated customer groups, and each customer's true group."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    rows, truth = [], {}
    for g, (n, (o_lo, o_hi), (d_lo, d_hi), price, return_share) in enumerate(groups.values()):
        for c in range(n):
            cid = f"g{g}c{c}"
            truth[cid] = g
            for o in range(rng.integers(o_lo, o_hi + 1)):
                when = start + pd.Timedelta(days=int(rng.integers(d_lo, d_hi + 1)), hours=int(rng.integers(8, 20)))
                for line in range(rng.integers(2, 5)):
                    qty = int(rng.integers(1, 4))
                    returned = returns and rng.random() < return_share
                    price_paid = price * rng.uniform(0.9, 1.1)
                    rows.append((f"{cid}o{o}", when, cid, f"p{line}", -qty if returned else qty, price_paid, returned))
    rows.append(("anon1", start + pd.Timedelta(days=100), None, "p0", 2, 5.0, False))  # a line without a customer
    columns = ["order_id", "order_date", "customer_id", "product_id", "quantity", "unit_price", "returned"]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ["order_id", "customer_id", "product_id"]:
        frame[col] = frame[col].astype("string")
    frame["order_date"] = frame["order_date"].astype("datetime64[ns]")
    frame["quantity"] = frame["quantity"].astype("int64")
    frame["discount"] = 0.0
    return frame, pd.Series(truth)


def trap_lines() -> pd.DataFrame:
    """`TRAP`'s lines plus one returned unit per lapsed customer's order: they alone return goods."""
    lines, _ = planted_lines(groups=TRAP)
    lapsed = lines[lines["customer_id"].str.startswith("g2c").fillna(False)].drop_duplicates("order_id")
    returns = lapsed.assign(quantity=np.int64(-1), returned=True)
    return pd.concat([lines, returns], ignore_index=True)


def loaded(lines: pd.DataFrame) -> Loaded:
    return Loaded(lines, Quarantine(), Accounting(len(lines), len(lines), 0, 0), name="planted")


CFG = SegmentConfig.model_validate(
    {"search": {"k_min": 2, "k_max": 6}, "evaluation": {"sample_size": 500, "stability_seeds": 2}}
)
PARAMS = {"k": 4, "feature_set": "rfm_tenure", "transform": "log1p", "n_init": 3}


@pytest.fixture(scope="module")
def planted():
    lines, truth = planted_lines()
    family = SegmenterFamily()
    feats = family.features(loaded(lines), CFG)
    return family, feats, truth


@pytest.fixture(scope="module")
def split(planted) -> Split:
    family, feats, _ = planted
    return family.split(feats, CFG)


@pytest.fixture(scope="module")
def fitted(planted):
    family, feats, _ = planted
    return family.fit(feats, PARAMS, CFG)


def test_tuned_model_recovers_planted_segments_and_beats_the_baseline(planted, split) -> None:
    family, feats, truth = planted
    study = run_study(family, CFG, split.train, split.valid, Tuning(n_trials=16, seed=7), "planted")
    best_params = family.select(study.trials, study.best_params, CFG)
    candidate = family.score(family.servable(family.fit(split.train, best_params, CFG), CFG), split.test, CFG)
    baseline = family.score(family.baseline(split.train, CFG), split.test, CFG)
    assert candidate.objective > baseline.objective
    assert set(candidate.metrics) >= {"calinski_harabasz", "davies_bouldin", "silhouette_raw", "degenerate"}
    labels = family.fit(feats, best_params, CFG).predict(feats.table)
    ari = adjusted_rand_score(truth.loc[feats.table["customer_id"]].to_numpy(), labels)
    assert ari >= 0.8, (best_params, ari)


def test_split_is_seeded_disjoint_and_three_way(planted, split) -> None:
    family, feats, _ = planted
    again = family.split(feats, CFG)
    parts = [set(s.table["customer_id"]) for s in (split.train, split.valid, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == len(feats.table)
    assert len(parts[2]) == round(0.2 * len(feats.table)) and len(parts[1]) == round(0.2 * len(feats.table))
    assert list(again.train.table["customer_id"]) == list(split.train.table["customer_id"])
    assert list(again.test.table["customer_id"]) == list(split.test.table["customer_id"])
    with pytest.raises(ValueError, match="too few customers"):
        family.split(feats.subset(np.arange(40)), CFG)


def test_lines_without_customer_are_counted(planted) -> None:
    _, feats, truth = planted
    assert feats.stats["lines_without_customer"] == 1
    assert feats.stats["customers"] == len(truth)


def test_identical_customers_get_the_same_segment(planted, fitted) -> None:
    family, feats, _ = planted
    model = family.servable(fitted, CFG)
    rows = feats.table.iloc[[0, 60, 120, 180]][FEATURES].reset_index(drop=True)
    twins = pd.concat([rows, rows.iloc[::-1]], ignore_index=True)
    twins.insert(0, "customer_id", [f"x{i}" for i in range(len(twins))])
    out = model.predict(None, twins)
    assert out["customer_id"].tolist() == twins["customer_id"].tolist()  # passed through
    assert out["segment_id"].tolist()[:4] == out["segment_id"].tolist()[4:][::-1]


def test_servable_model_implements_the_protocol(planted, fitted) -> None:
    family, _, _ = planted
    model = family.servable(fitted, CFG)
    assert isinstance(model, SegmenterModel) and model.family == "segmenter"
    assert type(model).__module__ == "serving.models.segmenter"
    assert isinstance(family.baseline(family.split(planted[1], CFG).train, CFG), SegmenterModel)


def test_segment_names_unique_from_the_rfm_vocabulary_and_profiled(fitted) -> None:
    names = list(fitted.names.values())
    assert len(set(names)) == len(names) == PARAMS["k"]
    assert all(base_name(name) in SEGMENTS for name in names), names
    profiles = fitted.profiles
    assert profiles["share"].sum() == pytest.approx(1.0)
    assert profiles["revenue_share"].sum() == pytest.approx(1.0)
    assert profiles["revenue_share"].is_monotonic_decreasing  # segment 0 brings the most revenue
    assert {f"mean_{f}" for f in FEATURES} <= set(profiles.columns)
    assert {"score_r", "score_f", "score_m"} <= set(profiles.columns)


def test_names_follow_the_grid_qualifiers_and_are_disambiguated() -> None:
    scores = pd.DataFrame(
        {"r": [4.8, 4.6, 1.2, 1.4, 3.0], "f": [4.9, 4.7, 1.0, 3.4, 3.1], "m": [4.7, 4.4, 1.3, 3.3, 2.6]}
    )
    none = pd.DataFrame(index=range(5))
    expected = {0: "champions", 1: "champions 2", 2: "lost", 3: "at risk", 4: "need attention"}
    assert name_segments(scores, none, 5) == expected
    zs = pd.DataFrame({"return_rate": [0.1, 1.6, -0.2, 0.3, -1.2], "tenure": [0.2, -1.1, 0.0, 0.0, 0.4]})
    assert name_segments(scores, zs, 5) == {
        0: "champions", 1: "champions (high returns)", 2: "lost", 3: "at risk", 4: "need attention (few returns)",
    }
    # an RFM axis the model does not use counts as the middle score: R = 5, F = M = 3 -> FM 3
    assert name_segments(scores[["r"]].iloc[[0]], none, 1) == {0: "potential loyalist"}
    # a feature the model does not use is never passed: no qualifier from it
    one = scores.iloc[[1]].reset_index(drop=True), zs.iloc[[1]][["tenure"]].reset_index(drop=True)
    assert name_segments(*one, 1) == {0: "champions (recently joined)"}


def test_names_use_only_the_models_features() -> None:
    """The customer with recency 700, one order and $50 spent lands among lapsed customers who return a lot
    of goods: a model trained without return_rate must not name their segment after returns."""
    family = SegmenterFamily()
    feats = family.features(loaded(trap_lines()), CFG)
    fitted = family.fit(feats, {"k": 4, "feature_set": "rfm", "transform": "log1p", "n_init": 3}, CFG)
    model = family.servable(fitted, CFG)
    out = model.predict(None, pd.DataFrame({"recency": [700.0], "frequency": [1.0], "monetary": [50.0]}))
    seg, name = int(out["segment_id"].iloc[0]), str(out["segment_name"].iloc[0])
    profile = fitted.profiles.set_index("segment_id").loc[seg]
    assert profile["z_return_rate"] >= 1.0  # the trap: the segment's members do return a lot
    assert "return" not in name and base_name(name) in SEGMENT_GRID[:2].ravel(), name  # R = 1 or 2: long gone
    assert all("(" not in n for n in fitted.names.values())  # rfm only: no qualifier at all
    with_returns = family.fit(feats, {"k": 4, "feature_set": "value", "transform": "log1p", "n_init": 3}, CFG)
    assert "high returns" in with_returns.names[int(family.servable(with_returns, CFG).assign(
        np.array([[700.0, 1.0, 50.0, 50.0, 0.5]]))[0])]  # a model that saw return_rate may say so


def test_pyfunc_rejects_bad_input_with_clear_errors(planted, fitted) -> None:
    family, feats, _ = planted
    model = family.servable(fitted, CFG)
    example, _ = family.example(model, fitted, CFG)
    with pytest.raises(ValueError, match=r"missing feature column\(s\) \['tenure'\]"):
        model.predict(None, example.drop(columns=["tenure"]))
    bad = example.copy()
    bad.loc[2, "monetary"] = np.nan
    with pytest.raises(ValueError, match=r"column 'monetary' row 2"):
        model.predict(None, bad)
    bad.loc[2, "monetary"] = np.inf
    with pytest.raises(ValueError, match=r"column 'monetary' row 2: value inf"):
        model.predict(None, bad)
    text = example.astype({"recency": object})
    text.loc[1, "recency"] = "soon"
    with pytest.raises(ValueError, match=r"column 'recency' row 1: value 'soon'"):
        check_features(text, fitted.features)


def manual_silhouette(model: SegmenterModel, evaluation: CustomerFeatures) -> float:
    """The score written out: the model's labels, in the standardised signed log1p space of its features."""
    sample = scored_sample(evaluation, CFG)
    x = sample[model.features].to_numpy(dtype=np.float64)
    return float(silhouette_score(common_space(x), model.assign(x)))


def test_a_trial_equals_the_score_of_the_servable_model(planted, split) -> None:
    family, _, _ = planted
    trial = family.evaluate(split.train, split.valid, PARAMS, CFG)
    model = family.servable(family.fit(split.train, PARAMS, CFG), CFG)
    scored = family.score(model, split.valid, CFG)
    assert trial.objective == scored.objective == pytest.approx(manual_silhouette(model, split.valid))
    assert trial.metrics == scored.metrics
    pd.testing.assert_frame_equal(trial.losses, scored.losses)


def test_score_is_the_same_after_a_pickle_round_trip(planted, split) -> None:
    family, _, _ = planted
    model = family.servable(family.fit(split.train, PARAMS, CFG), CFG)
    again = pickle.loads(cloudpickle.dumps(model))
    first, second = family.score(model, split.test, CFG), family.score(again, split.test, CFG)
    assert first.objective == second.objective and first.metrics == second.metrics


def test_baseline_is_scored_by_the_same_function(planted, split) -> None:
    family, _, _ = planted
    baseline = family.baseline(split.train, CFG)
    assert isinstance(baseline, RFMBaseline) and baseline.features == RFM
    assert all(base_name(n) in SEGMENTS for n in baseline.names.values())
    ev = family.score(baseline, split.test, CFG)
    assert ev.objective == score_segments(baseline, split.test, CFG).objective
    assert ev.objective == pytest.approx(manual_silhouette(baseline, split.test))
    # a K-means model scored on the same customers is judged in the same way
    model = family.servable(family.fit(split.train, {**PARAMS, "feature_set": "rfm"}, CFG), CFG)
    assert family.score(model, split.test, CFG).objective == pytest.approx(manual_silhouette(model, split.test))
    out = baseline.predict(None, split.test.table[["customer_id", *RFM]])
    assert set(out["segment_id"]) <= set(baseline.names) and list(out.columns)[-2:] == ["segment_id", "segment_name"]


def test_baseline_scores_quintiles_learnt_on_train(planted, split) -> None:
    """New customers get the training quintiles: the same customer gets the same segment whatever it is scored with."""
    family, _, _ = planted
    baseline = family.baseline(split.train, CFG)
    rows = split.test.table[RFM].to_numpy(dtype=np.float64)
    alone = np.concatenate([baseline.assign(rows[i : i + 1]) for i in range(10)])
    np.testing.assert_array_equal(alone, baseline.assign(rows)[:10])


def test_losses_are_seeded_bootstrap_replicates(planted, split) -> None:
    family, _, _ = planted
    ev = family.evaluate(split.train, split.valid, PARAMS, CFG)
    assert list(ev.losses.columns) == ["replicate", "silhouette"] and len(ev.losses) == CFG.evaluation.bootstrap
    assert ev.losses["silhouette"].mean() == pytest.approx(ev.objective, abs=0.05)
    assert ev.losses["silhouette"].std() > 0
    assert ev.details["share"].sum() == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_pyfunc_round_trip_scores_like_the_in_process_model(planted, split, tmp_path, monkeypatch) -> None:
    import mlflow
    from mlflow.models import infer_signature

    from serving.models.registry import unwrap

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    family, _, _ = planted
    on_train = family.fit(split.train, PARAMS, CFG)
    model = family.servable(on_train, CFG)
    example, expected = family.example(model, on_train, CFG)
    assert list(example.columns) == ["customer_id", *on_train.features]
    assert list(expected.columns) == ["customer_id", "segment_id", "segment_name"]
    mlflow.pyfunc.save_model(
        str(tmp_path / "model"), python_model=model, signature=infer_signature(example, expected),
        input_example=example, pip_requirements=["scikit-learn"],
    )
    loaded_model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    out = loaded_model.predict(example)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected, check_dtype=False)
    without_ids = loaded_model.predict(example.drop(columns=["customer_id"]))  # customer_id is optional
    assert without_ids["segment_id"].tolist() == expected["segment_id"].tolist()
    with pytest.raises(Exception, match="tenure"):  # MLflow's schema check names the missing input
        loaded_model.predict(example.drop(columns=["tenure"]))
    with pytest.raises(ValueError, match="column 'recency' row 0: value nan"):
        loaded_model.predict(example.assign(recency=[np.nan] + example["recency"].tolist()[1:]))
    # the champion check: a registered model is scored exactly like the candidate it was
    champion = unwrap(loaded_model, "segmenter")
    assert family.score(champion, split.test, CFG).objective == family.score(model, split.test, CFG).objective


def test_report_is_pure_with_figures_tables_and_stability(planted, fitted) -> None:
    family, feats, _ = planted
    model = family.servable(fitted, CFG)
    before = cloudpickle.dumps((fitted, model))
    report = family.report(fitted, feats, CFG)
    assert isinstance(report, Report) and cloudpickle.dumps((fitted, model)) == before
    assert set(report.figures) == {"segments_pca", "segment_profiles_heatmap", "k_selection"}
    assert list(report.tables["k_selection"]["k"]) == list(range(2, 7))
    assert len(report.tables["segment_profiles"]) == PARAMS["k"]
    assert 0.8 <= report.metrics["stability_ari_mean"] <= 1.0  # well separated groups: seeds agree
    assert report.metrics["features_lines_without_customer"] == 1
    assert report.metrics["return_rate_omitted"] == 0


def test_outlier_segment_is_scored_as_degenerate(planted) -> None:
    family, feats, _ = planted
    table = feats.table.copy()
    table.loc[0, ["monetary", "quantity", "aov"]] = 1e9  # one extreme customer gets its own segment
    params = {"k": 2, "feature_set": "all", "transform": "none", "n_init": 3}
    with_outlier = CustomerFeatures(table, feats.available)
    ev = family.evaluate(with_outlier, with_outlier, params, CFG)
    assert ev.metrics["degenerate"] == 1 and ev.objective == -1.0
    assert ev.metrics["silhouette_raw"] > 0
    assert (ev.losses["silhouette"] == -1.0).all()
    # the guard reads the scored customers' labels, so a model is judged the same wherever it was trained
    model = family.servable(family.fit(with_outlier, params, CFG), CFG)
    assert family.score(model, feats.subset(np.arange(1, len(table))), CFG).objective == -1.0  # its segment is empty


def test_data_without_returns_drops_return_rate_from_feature_sets() -> None:
    lines, _ = planted_lines(seed=1, returns=False)
    family = SegmenterFamily()
    feats = family.features(loaded(lines), CFG)
    assert "return_rate" in feats.omitted
    model = fit_segmenter(feats, {"k": 3, "feature_set": "value", "transform": "log1p", "n_init": 2}, CFG)
    assert model.features == ["recency", "frequency", "monetary", "aov"]
    cfg = SegmentConfig.model_validate({"search": {"feature_sets": {"returns": ["aov", "return_rate"]}}})
    with pytest.raises(ValueError, match="feature set 'returns'"):
        fit_segmenter(feats, {"k": 3, "feature_set": "returns", "transform": "log1p", "n_init": 2}, cfg)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"search": {"kmax": 5}}, "kmax"),
        ({"search": {"k_min": 5, "k_max": 3}}, "k_max"),
        ({"search": {"feature_sets": {"one": ["recency"]}}}, "at least 2"),
        ({"search": {"feature_sets": {"x": ["recency", "loyalty"]}}}, "loyalty"),
        ({"search": {"transforms": ["sqrt"]}}, "transforms"),
        ({"features": {"candidates": ["recency", "frequency"]}}, "not among features.candidates"),
        ({"evaluation": {"holdout_fraction": 0.5, "valid_fraction": 0.45}}, "leaves under 10%"),
    ],
)
def test_config_errors_name_the_key(section: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SegmentConfig.model_validate(section)


def test_job_config_section_validates(tmp_path) -> None:
    from features.config_io import ConfigError
    from training.config import load_job_config

    data = tmp_path / "data.yaml"
    data.write_text("name: x\nformat: synthetic\n")
    job = tmp_path / "segment.yaml"
    body = (
        "job: segment\nfamily: segmenter\ndata: data.yaml\nexperiment: segment\nregistry: {model_name: segmenter}\n"
        "model:\n  evaluation: {sample_size: 2000, seed: 7, valid_fraction: 0.25}\n"
        "  search: {k_min: 3, k_max: 6, transforms: [log1p], n_init: [4]}\n"
    )
    job.write_text(body)
    _, cfg = load_job_config(job)
    assert isinstance(cfg, SegmentConfig) and cfg.search.k_min == 3 and cfg.evaluation.seed == 7
    assert cfg.evaluation.valid_fraction == 0.25
    job.write_text(body.replace("n_init: [4]", "n_inits: [4]"))
    with pytest.raises(ConfigError, match=r"model\.search\.n_inits"):
        load_job_config(job)


def test_fit_recovers_the_synthetic_shops_planted_segments() -> None:
    """A smaller synthetic shop: at its planted k, the 'value' features recover the truth and the names fit."""
    synthetic = pytest.importorskip("features.synthetic")
    shop = synthetic.generate(n_customers=1000, weeks=104, seed=7)
    family = SegmenterFamily()
    feats = family.features(loaded(shop.lines), CFG)
    truth = shop.customers.set_index("customer_id")["true_segment"].reindex(feats.table["customer_id"]).to_numpy()
    fitted = family.fit(feats, {"k": 4, "feature_set": "value", "transform": "log1p", "n_init": 10}, CFG)
    labels = fitted.predict(feats.table)
    assert adjusted_rand_score(truth, labels) >= 0.8
    majority = pd.crosstab(labels, truth).idxmax(axis=1)
    named = {planted: base_name(fitted.names[int(seg)]) for seg, planted in majority.items()}
    assert named["high-value loyal"] in ("champions", "loyal") and majority.iloc[0] == "high-value loyal"
    assert named["churned"] in SEGMENT_GRID[:2].ravel()  # R = 1 or 2
    assert named["occasional low-value"] in SEGMENT_GRID[:, :2].ravel()  # FM = 1 or 2


def test_tuned_study_recovers_the_synthetic_shops_planted_segments(
    tmp_path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db
) -> None:
    """What users run: configs/segment.yaml (its data, search space and tuning) through the platform's study.

    The study chooses k, features, transform and n_init by silhouette alone; the model it picks, refitted
    on every customer, must find the planted segments (adjusted Rand index >= 0.8).
    """
    from features.sources import load
    from tests.helpers import REPO, fresh_mlflow_db
    from training import tracking
    from training.config import load_job_config
    from training.tuning import TrialRuns, run_study

    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_mlflow_db(mlflow_template_db, tmp_path))
    job, cfg = load_job_config(REPO / "configs" / "segment.yaml")
    data = load(job.data_path())
    family = SegmenterFamily()
    feats = family.features(data, cfg)
    split = family.split(feats, cfg)
    tracking.setup(job.tracking_uri)
    with tracking.parent_run(job.experiment, "planted-segments", {}) as parent_id:
        runs = TrialRuns(parent_id, tracking.experiment_of(parent_id))
        result = run_study(family, cfg, split.train, split.valid, job.tuning, "planted-segments", runs)
    assert result.n_complete == job.tuning.n_trials and result.n_failed == 0
    labels = family.fit(feats, result.best_params, cfg).predict(feats.table)
    truth = data.customers.set_index("customer_id")["true_segment"].reindex(feats.table["customer_id"])
    assert truth.notna().all()
    ari = adjusted_rand_score(truth.to_numpy(), labels)
    assert ari >= 0.8, (result.best_params, result.best.objective, ari)


@pytest.mark.parametrize("transform", ["log1p", "none"])
def test_served_fast_path_matches_the_pipeline(transform: str) -> None:
    """The served model's array arithmetic assigns every customer the segment `pipeline.predict` gives."""
    synthetic = pytest.importorskip("features.synthetic")
    shop = synthetic.generate(n_customers=3000, weeks=104, seed=11)
    family = SegmenterFamily()
    feats = family.features(loaded(shop.lines), CFG)
    fitted = family.fit(feats, {"k": 6, "feature_set": "value", "transform": transform, "n_init": 3}, CFG)
    model = SegmentModel(fitted.pipeline, fitted.features, fitted.segment_of, fitted.names)
    table = feats.table.copy()
    table["customer_id"] = table["customer_id"].astype("string")
    slow = fitted.segment_of[fitted.pipeline.predict(table[fitted.features])]
    served = model.predict(None, table)
    np.testing.assert_array_equal(served["segment_id"].to_numpy(), slow)
    assert served["segment_name"].tolist() == [fitted.names[int(i)] for i in slow]
    assert served["customer_id"].tolist() == table["customer_id"].tolist()
