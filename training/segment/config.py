"""The `model:` section of a segmenter job: candidate features, evaluation and the search space."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from features.config_io import Strict
from features.customers import FEATURES

DEFAULT_FEATURE_SETS = {
    "rfm": ["recency", "frequency", "monetary"],
    "rfm_tenure": ["recency", "frequency", "monetary", "tenure"],
    "value": ["recency", "frequency", "monetary", "aov", "return_rate"],
    "all": list(FEATURES),
}


def _check_features(names: list[str], what: str) -> list[str]:
    unknown = [f for f in names if f not in FEATURES]
    if unknown:
        raise ValueError(f"{what}: unknown feature(s) {unknown}; known: {FEATURES}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: a feature is listed twice: {names}")
    return names


class FeatureOptions(Strict):
    candidates: list[str] = Field(default_factory=lambda: list(FEATURES), description="features a model may use")
    reference_date: date | None = Field(
        None, description="recency/tenure are counted to it; default: last order date + 1 day"
    )

    @field_validator("candidates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("at least 2 candidate features are needed")
        return _check_features(v, "candidates")


class EvaluationOptions(Strict):
    """How customers are split and scored (see `training.segment.scoring`)."""

    sample_size: int = Field(5000, ge=50, description="customers scored by silhouette (seeded sample)")
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="customers in the test split: baseline, candidate and champion are scored on it"
    )
    valid_fraction: float = Field(
        0.2, gt=0, lt=1, description="customers in the validation split: trials are scored on it"
    )
    seed: int = 42
    stability_seeds: int = Field(3, ge=1, description="extra K-means seeds the final model is compared with (ARI)")
    baseline_k: int | None = Field(None, ge=2, description="RFM baseline segments; default: middle of the k range")
    min_segment_share: float = Field(
        0.01, ge=0, lt=0.5, description="a model with a smaller segment (share of the scored customers) scores -1"
    )
    bootstrap: int = Field(50, ge=0, description="seeded resamples of the scored customers behind Evaluation.losses")

    @model_validator(mode="after")
    def _train_left(self) -> EvaluationOptions:
        if self.holdout_fraction + self.valid_fraction >= 0.9:
            raise ValueError(
                f"holdout_fraction + valid_fraction ({self.holdout_fraction} + {self.valid_fraction}) leaves under "
                "10% of the customers to train on"
            )
        return self


class SearchSpace(Strict):
    k_min: int = Field(2, ge=2)
    k_max: int = Field(8, ge=2)
    feature_sets: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_FEATURE_SETS.items()}
    )
    transforms: list[Literal["log1p", "none"]] = Field(default_factory=lambda: ["log1p", "none"], min_length=1)
    n_init: list[int] = Field(default_factory=lambda: [3, 10], min_length=1)

    @field_validator("feature_sets")
    @classmethod
    def _sets(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if not v:
            raise ValueError("at least one feature set is needed")
        for name, feats in v.items():
            if len(feats) < 2:
                raise ValueError(f"feature set {name!r} needs at least 2 features, got {feats}")
            _check_features(feats, f"feature set {name!r}")
        return v

    @field_validator("n_init")
    @classmethod
    def _n_init(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"n_init choices must be >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _k_range(self) -> SearchSpace:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) is below k_min ({self.k_min})")
        return self


class SegmentConfig(Strict):
    """The `model:` section of a segmenter job."""

    features: FeatureOptions = FeatureOptions()
    evaluation: EvaluationOptions = EvaluationOptions()
    search: SearchSpace = SearchSpace()

    @model_validator(mode="after")
    def _sets_use_candidates(self) -> SegmentConfig:
        for name, feats in self.search.feature_sets.items():
            outside = [f for f in feats if f not in self.features.candidates]
            if outside:
                raise ValueError(f"search.feature_sets.{name}: {outside} not among features.candidates")
        return self
