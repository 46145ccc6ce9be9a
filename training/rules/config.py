"""The `model:` section of a recommender job: baskets, mining engine, evaluation split, search space, report."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from features.config_io import Strict

Engine = Literal["auto", "pyfim", "mlxtend-fpgrowth", "mlxtend-hmine", "mlxtend-apriori"]


class FeatureOptions(Strict):
    basket_level: Literal["order", "customer"] = "order"
    item: Literal["product_id", "product_name", "category"] = "product_id"
    min_item_count: int = Field(1, ge=1, description="items in fewer baskets are dropped before anything else")


class EvaluationOptions(Strict):
    test_fraction: float = Field(0.2, gt=0, lt=1, description="baskets held out for the decision (never tuned on)")
    valid_fraction: float = Field(0.2, gt=0, lt=1, description="baskets the trials are scored on")
    k: int = Field(5, ge=1, description="recommendations per basket (hit rate@k)")
    seed: int = 42

    @model_validator(mode="after")
    def _leaves_training_data(self) -> EvaluationOptions:
        if self.test_fraction + self.valid_fraction >= 1:
            raise ValueError(
                f"test_fraction ({self.test_fraction}) + valid_fraction ({self.valid_fraction}) must stay below 1: "
                "the rest of the baskets is what candidates are fitted on"
            )
        return self


class Bounds(Strict):
    lo: float = Field(ge=0)
    hi: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.hi < self.lo:
            raise ValueError(f"hi ({self.hi}) is below lo ({self.lo})")
        return self


class SearchSpace(Strict):
    min_support: Bounds = Bounds(lo=0.001, hi=0.05)  # sampled on a log scale
    min_confidence: Bounds = Bounds(lo=0.05, hi=0.6)
    min_lift: Bounds = Bounds(lo=1.0, hi=3.0)
    max_len: list[int] = Field(default_factory=lambda: [2, 3, 4], min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> SearchSpace:
        if not 0 < self.min_support.lo <= self.min_support.hi <= 1:
            raise ValueError(f"min_support bounds must lie in (0, 1], got {self.min_support}")
        if self.min_confidence.hi > 1:
            raise ValueError(f"min_confidence bounds must lie in [0, 1], got {self.min_confidence}")
        if any(n < 2 for n in self.max_len):
            raise ValueError(f"max_len choices must be >= 2 (a rule needs two items), got {self.max_len}")
        return self


class ReportOptions(Strict):
    table_rules: int = Field(100, ge=1, description="rules in the top-by-lift table")
    network_rules: int = Field(25, ge=1, description="rules drawn in the co-occurrence network")


class RulesConfig(Strict):
    """The `model:` section of a recommender job."""

    features: FeatureOptions = FeatureOptions()
    engine: Engine = "auto"
    fill: Literal["none", "popular"] = Field(
        "none", description="empty slots after the rule-based items take the most popular items"
    )
    max_itemsets: int = Field(1_000_000, ge=1, description="a candidate mining more itemsets fails (raise min_support)")
    max_rules: int = Field(500_000, ge=1, description="a candidate with more rules fails (a big, slow model)")
    max_rules_per_item: int = Field(3, ge=1, description="fired rules returned with each recommended item")
    max_k: int = Field(100, ge=1, description="the largest k the served model accepts")
    evaluation: EvaluationOptions = EvaluationOptions()
    search: SearchSpace = SearchSpace()
    report: ReportOptions = ReportOptions()

    @model_validator(mode="after")
    def _k_within_max(self) -> RulesConfig:
        if self.evaluation.k > self.max_k:
            raise ValueError(f"evaluation.k ({self.evaluation.k}) is above max_k ({self.max_k})")
        return self
