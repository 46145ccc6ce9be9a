"""The `model:` section of a customer-lifetime job: the calibration/holdout split, evaluation, search, serving terms."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from features.config_io import Strict


class FeatureOptions(Strict):
    """How order lines become per-customer summaries (features.btyd.summary)."""

    unit: Literal["D", "W"] = Field("W", description="time unit of recency, T and horizons: D (days) or W (weeks)")
    cutoff: date | None = Field(None, description="the calibration period ends on this day; the holdout follows")
    holdout: float | None = Field(
        None, gt=0, description="holdout length in units before the last day (used when no cutoff is given)"
    )

    @model_validator(mode="after")
    def _one_split(self) -> FeatureOptions:
        if self.cutoff is not None and self.holdout is not None:
            raise ValueError("give either cutoff or holdout, not both")
        if self.cutoff is None and self.holdout is None:
            raise ValueError("give cutoff (a date) or holdout (units before the last day): the score needs a holdout period")
        return self


class EvaluationOptions(Strict):
    """Customers are split at random: train (fitted on), valid (trials scored on), test (the decision)."""

    valid_fraction: float = Field(0.3, gt=0, lt=1)
    test_fraction: float = Field(0.3, gt=0, lt=1)
    seed: int = 42
    min_customers: int = Field(50, ge=10, description="fewest customers in each split")

    @model_validator(mode="after")
    def _train_left(self) -> EvaluationOptions:
        if self.valid_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"valid_fraction + test_fraction ({self.valid_fraction} + {self.test_fraction}) leaves under 10% to train on"
            )
        return self


class SearchSpace(Strict):
    """Penalizers are sampled log-uniformly; the model is BG/NBD or MBG/NBD."""

    models: list[Literal["bgnbd", "mbgnbd"]] = Field(default_factory=lambda: ["bgnbd", "mbgnbd"], min_length=1)
    penalizer: tuple[float, float] = Field((1e-6, 0.1), description="BG/NBD L2 penalizer range")
    gg_penalizer: tuple[float, float] = Field((1e-6, 0.1), description="Gamma-Gamma L2 penalizer range")

    @model_validator(mode="after")
    def _ranges(self) -> SearchSpace:
        for name in ("penalizer", "gg_penalizer"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name}: need 0 < low <= high, got [{lo}, {hi}]")
        return self


class ServingTerms(Strict):
    """What a /clv request gets when it names no horizon or discount rate, and the largest horizon allowed."""

    horizon: float = Field(52, gt=0, description="units (weeks or days, see features.unit)")
    discount_rate: float = Field(0.1, ge=0, le=1, description="annual")
    max_horizon: float = Field(520, gt=0)

    @model_validator(mode="after")
    def _bounded(self) -> ServingTerms:
        if self.horizon > self.max_horizon:
            raise ValueError(f"horizon ({self.horizon}) is above max_horizon ({self.max_horizon})")
        return self


class ClvConfig(Strict):
    """The `model:` section of a clv job."""

    features: FeatureOptions = FeatureOptions(holdout=26)
    evaluation: EvaluationOptions = EvaluationOptions()
    search: SearchSpace = SearchSpace()
    serving: ServingTerms = ServingTerms()
