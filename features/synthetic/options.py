"""The generator's options, typed: a typo or an out-of-range value in a data config's `synthetic:`
section or on `ecomlab data generate` is one error line naming the key, not a traceback."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from features.config_io import Strict, parse_model
from features.synthetic.planted import CATEGORIES

MIN_PRODUCTS = 5 * len(CATEGORIES)  # at least 5 per category


class SyntheticOptions(Strict):
    """What `features.synthetic.generate` varies; the same options (and seed) give identical frames."""

    n_customers: int = Field(5000, ge=10, description="customers (guests come on top)")
    start: date = Field(date(2022, 1, 3), description="first day of the history (ISO date)")
    weeks: int = Field(104, ge=8, description="weeks of history")
    seed: int = Field(42, description="random seed")
    n_products: int = Field(200, ge=MIN_PRODUCTS, description=f"products (>= {MIN_PRODUCTS}: 5 per category)")
    guest_share: float = Field(0.02, ge=0, lt=1, description="guest orders as a share of the customers' orders")
    n_bundles: int = Field(4, ge=0, description="planted bundles (<= n_products // 10)")
    #: the planted buy-till-you-die cohort (features.synthetic.lifetimes); none by default, rates per week
    clv_customers: int = Field(0, ge=0, description="customers drawn from BG/NBD + Gamma-Gamma (ids L00001...)")
    clv_model: Literal["bgnbd", "mbgnbd"] = Field("bgnbd", description="mbgnbd: dropout possible right after the first purchase too")
    clv_acquisition_weeks: int = Field(12, ge=1, description="first purchases fall uniformly in these first weeks")
    clv_r: float = Field(0.25, gt=0, description="purchase rate ~ Gamma(r, alpha) per week: shape")
    clv_alpha: float = Field(4.0, gt=0, description="purchase rate ~ Gamma(r, alpha) per week: rate")
    clv_a: float = Field(0.8, gt=0, description="dropout probability ~ Beta(a, b)")
    clv_b: float = Field(2.5, gt=0, description="dropout probability ~ Beta(a, b)")
    clv_p: float = Field(6.0, gt=0, description="spend per purchase ~ Gamma(p, nu): shape")
    clv_q: float = Field(4.0, gt=1, description="nu ~ Gamma(q, v): shape (> 1: the mean spend p v / (q - 1) exists)")
    clv_v: float = Field(15.0, gt=0, description="nu ~ Gamma(q, v): rate")

    @field_validator("n_bundles")
    @classmethod
    def _bundles_fit(cls, value: int, info: ValidationInfo) -> int:
        """Bundle items come from the rarely bought half of the products, so bundles must stay few."""
        n_products = info.data.get("n_products")
        if n_products is not None and value > n_products // 10:
            raise ValueError(f"must be <= n_products // 10 = {n_products // 10}")
        return value

    @model_validator(mode="after")
    def _acquisition_fits(self) -> "SyntheticOptions":
        """A cohort acquired over the whole history would leave no time to watch it buy again."""
        if self.clv_customers and self.clv_acquisition_weeks >= self.weeks:
            raise ValueError(f"clv_acquisition_weeks ({self.clv_acquisition_weeks}) must be below weeks ({self.weeks})")
        return self


def synthetic_options(values: SyntheticOptions | dict[str, Any] | None, source: Path | str = "synthetic options") -> SyntheticOptions:
    """Options from a mapping; a bad key or value raises ConfigError naming `source` and the key."""
    if isinstance(values, SyntheticOptions):
        return values
    return parse_model(SyntheticOptions, dict(values or {}), source)
