"""The registry gate (issue 15): a version that wins by noise stays challenger, with the evidence on its tags;
the evaluation identity that makes two runs comparable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config_io import ConfigError
from training.compare.paired import compare_losses
from training.config import DecisionGate, Registry
from training.decision import CHALLENGER, CHAMPION, Scores, decide
from training.family import Evaluation
from training.gate import gate_tags, run_gate
from training.identity import evaluation_identity

PAIRED, NONE = DecisionGate(), DecisionGate(test="none")


def clv_losses(errors: np.ndarray) -> pd.DataFrame:
    n = len(errors)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "actual": np.ones(n), "predicted": np.ones(n) + errors,
                         "abs_error": np.abs(errors), "squared_error": errors**2})


def evaluation(errors: np.ndarray) -> Evaluation:
    losses = clv_losses(errors)
    return Evaluation(float(losses["abs_error"].mean()), losses=losses)


@pytest.fixture
def contenders() -> dict[str, Evaluation]:
    """Holdout errors of 400 customers: a baseline, a clearly better model, and one that differs by noise."""
    rng = np.random.default_rng(11)
    base = rng.gamma(2.0, 1.0, 400)
    return {
        "baseline": evaluation(base * 1.6),
        "good": evaluation(base),
        "noise": evaluation(base * (1 + rng.normal(0, 0.05, 400)) - 0.002),  # lower MAE by a hair, by chance
    }


def gated(family: str, candidate: Evaluation, baseline: Evaluation, champion: Evaluation | None,
          gate: DecisionGate) -> tuple[str, str, Scores]:
    scores = Scores("minimize", "holdout_mae", candidate.objective, baseline.objective,
                    None if champion is None else champion.objective)
    run_gate(family, scores, candidate, baseline, champion, gate)
    alias, reason = decide(scores, gate=gate)
    return alias, reason, scores


def test_a_win_by_noise_stays_challenger_with_its_p_value_in_the_tags(contenders) -> None:
    c = contenders
    assert c["noise"].objective < c["good"].objective  # the point comparison alone would promote it
    alias, reason, scores = gated("clv", c["noise"], c["baseline"], c["good"], PAIRED)
    assert alias == CHALLENGER and "not beat the champion significantly" in reason and "p=" in reason
    tags = gate_tags(scores, PAIRED)
    assert float(tags["ecomlab.gate_p_value"]) > 0.05
    assert tags["ecomlab.gate_p_value"] == tags["ecomlab.gate_champion_p_value"] == scores.vs_champion.p_value
    assert tags["ecomlab.gate_test"] == "paired" and tags["ecomlab.gate_champion_test"] == "paired-bootstrap"
    assert tags["ecomlab.gate_ci_low"] < 0 < tags["ecomlab.gate_ci_high"]
    assert tags["ecomlab.gate_baseline_p_value"] < 0.01  # it does beat the baseline, clearly


def test_a_clearly_better_version_becomes_champion(contenders) -> None:
    c = contenders
    alias, reason, scores = gated("clv", c["good"], c["baseline"], c["baseline"], PAIRED)
    assert alias == CHAMPION and "beats the champion significantly" in reason
    assert scores.vs_champion.p_value < 0.01 and scores.vs_champion.difference < 0


def test_without_a_champion_only_the_baseline_is_tested(contenders) -> None:
    c = contenders
    alias, reason, scores = gated("clv", c["good"], c["baseline"], None, PAIRED)
    assert alias == CHAMPION and "no champion yet" in reason and "significantly" in reason
    assert scores.vs_champion is None and scores.vs_baseline is not None
    tags = gate_tags(scores, PAIRED)
    assert "ecomlab.gate_champion_p_value" not in tags and tags["ecomlab.gate_p_value"] == scores.vs_baseline.p_value
    # a candidate ahead of the baseline by noise only: on its score it becomes the first champion (the
    # default, `baseline: point`), with the evidence in the reason; `baseline: paired` refuses it
    alias, reason, scores = gated("clv", c["noise"], c["good"], None, PAIRED)
    assert alias == CHAMPION and "not significantly" in reason and scores.vs_baseline.p_value > 0.05
    alias, reason, _ = gated("clv", c["noise"], c["good"], None, DecisionGate(baseline="paired"))
    assert alias == CHALLENGER and "does not beat the baseline significantly" in reason
    # behind the baseline on its score: never promoted
    alias, reason, _ = gated("clv", c["good"], c["noise"], None, PAIRED)
    assert alias == CHALLENGER and "does not beat the baseline" in reason


def test_test_none_keeps_the_point_comparison(contenders) -> None:
    c = contenders
    alias, reason, scores = gated("clv", c["noise"], c["baseline"], c["good"], NONE)
    assert alias == CHAMPION and "significantly" not in reason
    assert scores.vs_champion is None and gate_tags(scores, NONE) == {
        "ecomlab.gate_test": "none", "ecomlab.gate_alpha": 0.05, "ecomlab.gate_min_effect": 0.0,
        "ecomlab.gate_baseline_rule": "point"}


def test_min_effect_and_missing_losses() -> None:
    rng = np.random.default_rng(3)
    base = rng.gamma(2.0, 1.0, 2000)
    baseline, better = evaluation(base + 0.05), evaluation(base)  # better by exactly 0.05, every customer
    strict = DecisionGate(min_effect=0.1, baseline="paired")
    assert gated("clv", better, baseline, None, PAIRED)[0] == CHAMPION
    assert gated("clv", better, baseline, None, strict)[0] == CHALLENGER  # significant, but below min_effect
    no_losses = Evaluation(better.objective)
    alias, reason, scores = gated("clv", no_losses, baseline, None, PAIRED)
    assert alias == CHALLENGER and "no per-unit losses for the candidate" in reason
    assert gate_tags(scores, PAIRED)["ecomlab.gate_error"] == "no per-unit losses for the candidate"


def test_gate_config_is_strict_and_on_by_default() -> None:
    assert Registry(model_name="m").decision == DecisionGate(test="paired", alpha=0.05, min_effect=0.0, baseline="point")
    for bad in ({"test": "ttest"}, {"alpha": 1.5}, {"alpha": "0.05"}, {"aplha": 0.1}, {"baseline": "loose"}):
        with pytest.raises(ValueError):
            DecisionGate(**bad)
    with pytest.raises((ValueError, ConfigError)):
        Registry(model_name="m", decision={"test": "paired", "extra": 1})


def test_the_recommender_gate_pairs_baskets() -> None:
    """McNemar on the baskets: 0.2771 vs 0.2745 on 2,000 baskets (the groceries case) is noise."""
    rng = np.random.default_rng(5)
    n = 2000
    champion_hits = rng.random(n) < 0.2745
    candidate_hits = champion_hits.copy()  # 33 baskets won, 27 lost: +6 hits, 0.3 points of hit rate
    candidate_hits[rng.choice(np.flatnonzero(~champion_hits), 33, replace=False)] = True
    candidate_hits[rng.choice(np.flatnonzero(champion_hits), 27, replace=False)] = False
    frame = lambda hits: pd.DataFrame({"basket_id": np.arange(n), "hidden_item": "x", "hit": hits.astype(int),  # noqa: E731
                                       "rank": np.where(hits, 1.0, np.nan)})
    result = compare_losses("recommender", frame(candidate_hits), frame(champion_hits))
    scores = Scores("maximize", "hit_rate_at_k", float(candidate_hits.mean()), 0.1, float(champion_hits.mean()),
                    vs_baseline=result, vs_champion=result)
    assert candidate_hits.sum() - champion_hits.sum() == 6 and decide(scores, gate=NONE)[0] == CHAMPION
    assert decide(scores, gate=PAIRED)[0] == CHALLENGER and result.p_value > 0.05


# ---- the evaluation identity ----


def test_evaluation_identity_follows_the_units_and_the_split_not_the_search() -> None:
    cfg = {"evaluation": {"seed": 42, "test_fraction": 0.3}, "search": {"penalizer": [1e-6, 0.1]}}
    losses = clv_losses(np.arange(5.0))
    ident = evaluation_identity("clv", cfg, losses)
    assert ident == evaluation_identity("clv", cfg, losses.sample(frac=1.0, random_state=1))  # order free
    assert ident == evaluation_identity("clv", {**cfg, "search": {"penalizer": [1e-3, 1]}}, losses)
    moved = evaluation_identity("clv", {**cfg, "evaluation": {"seed": 7, "test_fraction": 0.3}}, losses)
    assert moved["ecomlab.eval_split"] != ident["ecomlab.eval_split"]
    other_units = evaluation_identity("clv", cfg, clv_losses(np.arange(6.0)))
    assert other_units["ecomlab.eval_units"] != ident["ecomlab.eval_units"]
    assert evaluation_identity("segmenter", cfg, losses)["ecomlab.eval_split"] != ident["ecomlab.eval_split"]
    # the forecaster's selection windows precede the test windows: they do not change the evaluation
    fc = {"backtest": {"folds": 3, "selection_folds": 3}}
    assert (evaluation_identity("forecaster", fc, None) ==
            evaluation_identity("forecaster", {"backtest": {"folds": 3, "selection_folds": 1}}, None))
    assert evaluation_identity("forecaster", fc, None) != evaluation_identity("forecaster", {"backtest": {"folds": 2}}, None)


# ---- the gate inside a job ----


@pytest.mark.slow  # three end-to-end jobs
def test_in_a_job_a_clearly_better_version_replaces_a_worse_champion(tracking_dir, monkeypatch) -> None:
    """The champion's losses come from scoring it on the same test data: a champion whose every replicate is
    the silhouette's minimum loses to the retrain by the paired test; with `test: none` a retrain that only
    ties the champion on the point score is not promoted either, and the tags say which gate ran."""
    from mlflow.tracking import MlflowClient

    from tests.helpers import tiny_job
    from training import tracking
    from training.jobs import run_job
    from training.segment import SegmenterFamily

    config = tiny_job("segmenter", tracking_dir)
    first = run_job(config)
    assert first.decision.alias == CHAMPION
    original_score, original_load = SegmenterFamily.score, tracking.load_registered

    def load(name, version, family):
        model = original_load(name, version, family)
        model.loaded_as_champion = True
        return model

    def score(self, model, evaluation, cfg):  # the loaded champion scores -1 on every replicate
        ev = original_score(self, model, evaluation, cfg)
        if getattr(model, "loaded_as_champion", False):
            ev.objective, ev.losses = -1.0, ev.losses.assign(silhouette=-1.0)
        return ev

    monkeypatch.setattr(tracking, "load_registered", load)
    monkeypatch.setattr(SegmenterFamily, "score", score)
    second = run_job(config)
    assert second.decision.alias == CHAMPION and "beats the champion significantly" in second.decision.reason
    tags = MlflowClient().get_model_version(second.model_name, second.decision.version).tags
    assert float(tags["ecomlab.gate_champion_p_value"]) < 0.05 and float(tags["ecomlab.gate_champion_ci_low"]) > 0
    monkeypatch.setattr(tracking, "load_registered", original_load)  # not undo(): that would undo tracking_dir too
    monkeypatch.setattr(SegmenterFamily, "score", original_score)
    text = config.read_text().replace("model_name: ecomlab-segmenter", "model_name: ecomlab-segmenter\n  decision: {test: none}")
    config.write_text(text)
    third = run_job(config)  # the same model again: equal scores, no promotion by the point comparison
    assert third.decision.alias == CHALLENGER and "significantly" not in third.decision.reason
    tags = MlflowClient().get_model_version(third.model_name, third.decision.version).tags
    assert tags["ecomlab.gate_test"] == "none" and "ecomlab.gate_p_value" not in tags
