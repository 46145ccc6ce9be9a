"""The association-rule recommender family: the hooks the platform calls (`training.family.Family`).

Data: baskets (`features.baskets`), split at random (seeded) into train, valid and test; valid and
test baskets of 2+ items get one item hidden (`scoring.hide_one`). Candidates are fitted on train
(`fit.fit_rules`); trials are scored on valid; the popularity baseline, the chosen candidate and
the champion on test, all by `scoring.score_held_out` through `RecommenderModel.recommend`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd

from features.baskets import Baskets, build_baskets
from features.contract import Loaded
from serving.models.base import RecommenderModel
from serving.models.recommender import PopularityModel, RulesModel
from serving.models.rule_ranking import PopularityRecommender
from training.family import Evaluation, Report, Split, TrialResult
from training.rules.config import RulesConfig
from training.rules.figures import network_figure, scatter_figure, top_rules_table
from training.rules.fit import RulesFit, fit_rules
from training.rules.scoring import HeldOut, hide_one, score_held_out

log = logging.getLogger(__name__)

UNKNOWN_EXAMPLE = "(an item the model has not seen)"


class RecommenderFamily:
    """Association-rule recommender; see the package modules for mining, rules and scoring."""

    name = "recommender"
    direction: Literal["maximize", "minimize"] = "maximize"
    objective_name = "hit_rate_at_k"
    config_model = RulesConfig
    refit_on_all_data = False

    def features(self, loaded: Loaded, cfg: RulesConfig) -> Baskets:
        f = cfg.features
        baskets = build_baskets(loaded.lines, f.basket_level, f.item, f.min_item_count)
        log.info("baskets: %s", baskets.stats)
        return baskets

    def split(self, feats: Baskets, cfg: RulesConfig) -> Split[Baskets, HeldOut]:
        """Seeded random split: test on `test_fraction` of the baskets, tune on `valid_fraction`, fit on the rest.

        Valid and test baskets of 2+ items get one item hidden, each part with its own seed.
        """
        e = cfg.evaluation
        n = feats.n_baskets
        n_test, n_valid = round(n * e.test_fraction), round(n * e.valid_fraction)
        if n_test < 1 or n_valid < 1 or n - n_test - n_valid < 2:
            raise ValueError(
                f"too few baskets ({n}) for a test share of {e.test_fraction:.0%} and a valid share of "
                f"{e.valid_fraction:.0%}: train needs at least 2 baskets, valid and test at least 1 each"
            )
        order = np.random.default_rng(e.seed).permutation(n)
        test, valid, train = np.split(order, [n_test, n_test + n_valid])
        held = {
            name: hide_one(feats.subset(np.sort(rows)), [e.seed, i])
            for i, (name, rows) in enumerate((("valid", valid), ("test", test)), start=1)
        }
        for name, part in held.items():
            if len(part) == 0:
                raise ValueError(f"no {name} basket holds 2+ items: nothing to hide and recommend (more data?)")
        return Split(feats.subset(np.sort(train)), held["valid"], held["test"])

    def initial_trials(self, cfg: RulesConfig) -> list[dict[str, Any]]:
        """None: good thresholds depend on the data's density, which the search space's bounds encode."""
        return []

    def search_space(self, trial: optuna.Trial, cfg: RulesConfig) -> dict[str, Any]:
        s = cfg.search
        return {
            "min_support": trial.suggest_float("min_support", s.min_support.lo, s.min_support.hi, log=True),
            "min_confidence": trial.suggest_float("min_confidence", s.min_confidence.lo, s.min_confidence.hi),
            "min_lift": trial.suggest_float("min_lift", s.min_lift.lo, s.min_lift.hi),
            "max_len": trial.suggest_categorical("max_len", sorted(set(s.max_len))),
        }

    def fit(self, feats: Baskets, params: dict[str, Any], cfg: RulesConfig) -> RulesFit:
        return fit_rules(feats, params, cfg)

    def servable(self, fitted: RulesFit, cfg: RulesConfig) -> RulesModel:
        return RulesModel(fitted.recommender, cfg.evaluation.k, cfg.max_rules_per_item, cfg.max_k)

    def baseline(self, train: Baskets, cfg: RulesConfig) -> PopularityModel:
        """The most popular training items: a servable recommender itself, so `score` treats it like a candidate."""
        popularity = PopularityRecommender(train.items, train.item_counts(), train.n_baskets)
        return PopularityModel(popularity, cfg.evaluation.k, cfg.max_k)

    def score(self, model: RecommenderModel, evaluation: HeldOut, cfg: RulesConfig) -> Evaluation:
        return score_held_out(model, evaluation, cfg.evaluation.k)

    def evaluate(self, train: Baskets, evaluation: HeldOut, params: dict[str, Any], cfg: RulesConfig) -> Evaluation:
        return self.score(self.servable(self.fit(train, params, cfg), cfg), evaluation, cfg)

    def select(self, trials: list[TrialResult], best_params: dict[str, Any], cfg: RulesConfig) -> dict[str, Any]:
        """The best trial's thresholds: one rule set serves every basket, there is no per-unit choice."""
        return dict(best_params)

    def report(self, fitted: RulesFit, feats: Baskets, cfg: RulesConfig) -> Report:
        table = top_rules_table(fitted, cfg.report.table_rules)
        figures = {
            "rules_support_confidence": scatter_figure(fitted),
            "rules_network": network_figure(table.head(cfg.report.network_rules)),
        }
        metrics = {
            "n_rules": float(len(fitted.rules)),
            "n_itemsets": float(fitted.n_itemsets),
            **{f"n_itemsets_size_{s}": float(c) for s, c in fitted.itemsets_by_size.items()},
            **{f"mining_{k}": float(v) for k, v in fitted.stats.items()},
            **{f"baskets_{k}": float(v) for k, v in feats.stats.items()},
            "mean_basket_size": float(feats.sizes().mean()) if feats.n_baskets else 0.0,
        }
        return Report(figures=figures, tables={"top_rules_by_lift": table}, metrics=metrics)

    def example(self, model: RecommenderModel, fitted: RulesFit, cfg: RulesConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Two request baskets that fire rules; the second has an unknown item and no `k`.

        The missing `k` makes MLflow mark the column optional (type double: send k as a float, or leave
        the column out for the model's default); the unknown item gives `unknown_items` its type.
        """
        rules = fitted.rules
        if len(rules):
            best = np.argsort(-rules.confidence, kind="stable")[:2]
            baskets = [[str(fitted.items[i]) for i in rules.antecedent(int(r))] for r in best]
        else:
            baskets = [[str(x) for x in fitted.items[fitted.recommender.popularity.order_[:2]]]]
        baskets = (baskets * 2)[:2]
        baskets[1] = [*baskets[1], UNKNOWN_EXAMPLE]
        example = pd.DataFrame({"items": baskets, "k": [float(cfg.evaluation.k), np.nan]})
        return example, model.predict(None, example)
