"""Rules on the Spark engine (issue 13): FPGrowth gives the local miner's itemsets and rules on groceries and
FIMI retail, and a recommend job with `engine: spark` registers the local engine's recommender."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.baskets import build_baskets
from features.sources import load
from tests.helpers import REPO, tiny_job
from training.engine import engine_scope
from training.rules.derive import rules_from_itemsets
from training.rules.mining import mine_itemsets

pytestmark = pytest.mark.spark


def assert_same_rules(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    key = ["antecedent", "consequent"]
    both = local.merge(spark, on=key, how="outer", suffixes=("_local", "_spark"), indicator=True)
    assert (both["_merge"] == "both").all(), both.loc[both["_merge"] != "both", [*key, "_merge"]].head()
    for column in ("support", "confidence", "lift"):
        np.testing.assert_allclose(both[f"{column}_spark"], both[f"{column}_local"], rtol=1e-12, atol=0, err_msg=column)


@pytest.mark.parametrize(("dataset", "min_support", "min_confidence"), [
    ("groceries", 0.002, 0.1),  # recommend_groceries.yaml searches min_support in [0.001, 0.02]
    ("fimi_retail", 0.01, 0.1),  # recommend_fimi.yaml: [0.001, 0.01]; its upper end keeps FPGrowth on 88k baskets quick
])
def test_fpgrowth_gives_the_local_itemsets_and_rules(spark, shared_data, dataset: str, min_support: float, min_confidence: float) -> None:
    from training.rules.spark import spark_mining

    shared_data(dataset)
    baskets = build_baskets(load(REPO / "configs" / "data" / f"{dataset}.yaml").lines)
    local = mine_itemsets(baskets, min_support, 4, "pyfim")
    itemsets, rules = spark_mining(baskets, min_support, 4, min_confidence, 1.0)
    assert len(local) > 100 and local.stats["items_below_min_support"] > 0
    expected = local.frame(baskets.items)
    assert dict(zip(itemsets["itemset"], itemsets["count"], strict=True)) == dict(zip(expected["itemset"], expected["count"], strict=True))
    local_rules = rules_from_itemsets(local, baskets.n_items, min_confidence, 1.0).frame(baskets.items)
    assert len(local_rules) > 100
    assert_same_rules(local_rules, rules)


def test_the_spark_engine_mines_through_the_local_seam(spark, shared_data) -> None:
    """On `engine: spark`, `mine_itemsets` (what a recommend job's fit calls) mines with FPGrowth: same itemsets and counts."""
    shared_data("groceries")
    baskets = build_baskets(load(REPO / "configs" / "data" / "groceries.yaml").lines)
    local = mine_itemsets(baskets, 0.005, 3, "auto")
    with engine_scope("spark"):
        mined = mine_itemsets(baskets, 0.005, 3, "auto", max_itemsets=10_000)
        with pytest.raises(ValueError, match="exceed max_itemsets"):
            mine_itemsets(baskets, 0.005, 3, "auto", max_itemsets=len(local) - 1)
    assert mined.engine == "spark-fpgrowth" and local.engine != "spark-fpgrowth"
    assert mined.as_dict() == local.as_dict()
    assert mined.min_count == local.min_count and mined.n_baskets == local.n_baskets


def test_recommend_job_on_spark_registers_the_local_recommender(spark, tracking_dir: Path) -> None:
    import mlflow

    from training.jobs import run_job

    config = tiny_job("recommender", tracking_dir, n_customers=200, weeks=30)
    local = run_job(config)
    on_spark = run_job(config, ["engine=spark"])
    assert on_spark.best_params == local.best_params
    assert on_spark.candidate.objective == local.candidate.objective
    run = mlflow.get_run(on_spark.run_id)
    assert run.data.metrics["n_rules"] == mlflow.get_run(local.run_id).data.metrics["n_rules"] > 0
    models = [mlflow.pyfunc.load_model(f"models:/{r.model_name}/{r.decision.version}") for r in (local, on_spark)]
    rules, spark_rules = (m.unwrap_python_model().recommender for m in models)
    for name in ("consequents", "confidence", "lift", "support"):
        np.testing.assert_array_equal(getattr(spark_rules, name), getattr(rules, name), err_msg=name)
    assert (spark_rules.antecedents != rules.antecedents).nnz == 0
    baskets = [[str(models[0].unwrap_python_model().ranker.items[i]) for i in rules.antecedents[r].indices] for r in range(min(len(rules.consequents), 30))]
    requests = pd.DataFrame({"items": [*baskets, ["an item nobody bought"]]})
    answers = [m.predict(requests) for m in models]
    assert answers[0]["items"].map(len).sum() > 0
    pd.testing.assert_frame_equal(answers[1], answers[0])
