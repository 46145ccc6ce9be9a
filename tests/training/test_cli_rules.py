"""`ecomlab rules`: mine rules and look at them before training a recommender; and the `train` summary
shows the registered model's own figures (issue 11, the CLI)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()

#: six orders: A,B | A,B | A,C | B,C | A,B,C | D  ->  A->B: support 3/6, confidence 3/4, lift 1.125
ORDERS = {"1": "AB", "2": "AB", "3": "AC", "4": "BC", "5": "ABC", "6": "D"}


def basket_source(folder: Path) -> Path:
    rows = [f"{order},2024-01-0{order},{item},1,1.0" for order, items in ORDERS.items() for item in items]
    (folder / "lines.csv").write_text("o,d,p,q,price\n" + "\n".join(rows) + "\n")
    cfg = {
        "name": "six-orders", "format": "csv", "path": "lines.csv",
        "columns": {"order_id": "o", "order_date": "d", "product_id": "p", "quantity": "q", "unit_price": "price"},
    }
    (folder / "six.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "six.yaml"


def test_rules_prints_the_top_rules_and_writes_them_all(tmp_path: Path) -> None:
    args = ["rules", str(basket_source(tmp_path)), "--min-support", "0.3", "--min-confidence", "0.5",
            "--max-len", "2", "--top", "1", "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--min-lift", "1.05"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "6 baskets" in result.output and "2 rules" in result.output
    assert "A -> B" in result.output and "B -> A" not in result.output  # --top 1 prints one
    rules = pd.read_csv(tmp_path / "out" / "rules.csv")
    assert list(rules.columns) == ["antecedent", "consequent", "support", "confidence", "lift", "conviction", "count",
                                   "antecedent_count", "consequent_count", "n_baskets"]
    a_b = rules.set_index(["antecedent", "consequent"]).loc[("A", "B")]
    assert a_b["support"] == pytest.approx(0.5) and a_b["confidence"] == pytest.approx(0.75)
    assert a_b["lift"] == pytest.approx(1.125) and a_b["conviction"] == pytest.approx((1 - 4 / 6) / 0.25)
    assert (a_b["count"], a_b["antecedent_count"], a_b["consequent_count"], a_b["n_baskets"]) == (3, 4, 4, 6)
    assert len(rules) == 2
    result = runner.invoke(app, [*args, "--min-lift", "1.0"])
    assert result.exit_code == 0 and len(pd.read_csv(tmp_path / "out" / "rules.csv")) == 6


def test_rules_on_a_job_config_is_a_one_line_error() -> None:
    from tests.helpers import REPO

    result = runner.invoke(app, ["rules", str(REPO / "configs" / "recommend.yaml")])
    assert result.exit_code == 2 and "a job config (job: recommend), not a data config" in result.output


def test_train_summary_shows_the_registered_models_figures(monkeypatch) -> None:
    """The figures come from the job's run (the registered model's report), not from the best trial."""
    from training.cli import train

    monkeypatch.setattr("training.tracking.run_metrics", lambda run_id: {"n_rules": 463.0, "n_itemsets": 900.0, "x": 1.0})
    assert train.registered_figures("run", "recommender") == {"n_rules": 463.0, "n_itemsets": 900.0}
    decision = SimpleNamespace(version="2", alias="champion", reason="beats", candidate_score=0.5, champion_score=None,
                               champion_version=None, baseline_score=0.1, champion_error=None, refit_on_all_data=False)
    result = SimpleNamespace(decision=decision, objective_name="hit_rate_at_k", direction="maximize", best_params={},
                             n_trials=2, n_failed=0, model_name="ecomlab-recommender", run_id="r", tracking_uri="u",
                             seconds=1.0)
    with train.console.capture() as captured:
        train.print_result(result, train.registered_figures("r", "recommender"))
    assert "registered model: n rules: 463  n itemsets: 900" in captured.get()


@pytest.mark.slow  # an end-to-end recommender job
def test_train_prints_the_n_rules_of_the_registered_model(tracking_dir: Path) -> None:
    import mlflow

    from serving.models.registry import unwrap
    from tests.helpers import tiny_job

    result = CliRunner().invoke(app, ["train", str(tiny_job("recommender", tracking_dir))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = int(re.search(r"registered model: n rules: (\d+)", result.output).group(1))
    model = unwrap(mlflow.pyfunc.load_model("models:/ecomlab-recommender/1"), "recommender")
    assert printed == model.recommender.n_rules
