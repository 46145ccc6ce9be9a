"""The planted structure of the synthetic shop: categories, segments, channels, returns and inventory.

Every number the generator plants lives here, and `features.synthetic.truth` writes them all to
`truth.json`, so a test can check that a model recovers what was planted.
"""

from __future__ import annotations

from dataclasses import dataclass

#: category -> (share of lines, median price, price log-sd, yearly amplitude, peak day of year, yearly trend, return base)
CATEGORIES: dict[str, tuple[float, float, float, float, int, float, float]] = {
    "electronics": (0.16, 120.0, 0.6, 0.35, 350, 0.10, 0.08),
    "toys": (0.12, 25.0, 0.5, 0.60, 355, 0.05, 0.05),
    "clothing": (0.22, 35.0, 0.4, 0.20, 100, 0.08, 0.14),
    "home": (0.18, 40.0, 0.6, 0.10, 300, 0.03, 0.06),
    "sports": (0.15, 45.0, 0.5, 0.40, 180, 0.12, 0.07),
    "beauty": (0.17, 15.0, 0.4, 0.00, 1, 0.06, 0.03),
}
LEAD_TIME_DAYS = {"electronics": 21, "toys": 30, "clothing": 14, "home": 18, "sports": 12, "beauty": 7}
#: Monday..Sunday, mean 1
WEEKDAY_PROFILE = [0.95, 0.9, 0.9, 0.95, 1.05, 1.2, 1.05]
CHANNELS = ["email", "search", "social", "direct", "affiliate"]
ENGAGEMENT_BASE = {"email": 70.0, "search": 50.0, "social": 45.0, "direct": 60.0, "affiliate": 35.0}
COUNTRIES = (["UK", "DE", "FR", "NL", "US", "ES"], [0.55, 0.15, 0.1, 0.08, 0.07, 0.05])
DISCOUNT_LEVELS = ([0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5], [0.2, 0.25, 0.15, 0.15, 0.1, 0.08, 0.07])
RETURN_DISCOUNT_COEF = 4.0
RETURN_DELAY_DAYS = (2, 30)
DEMAND_WINDOW_DAYS = 28
BUNDLE_ATTACH_PROBABILITY = 0.7


@dataclass(frozen=True)
class Segment:
    """Behaviour of one planted customer segment."""

    name: str
    share: float
    orders_per_week: float  # while active
    lines_per_order: float  # mean, >= 1
    units_per_line: float  # mean, >= 1
    price_tilt: float  # product weight *= (price / category median) ** tilt
    discount_probability: float
    return_multiplier: float
    engagement_offset: float
    channel_mix: tuple[float, ...]  # over CHANNELS
    signup_span: tuple[float, float]  # signup within this fraction of the history (< 0: before it starts)
    churn_span: tuple[float, float] | None = None  # last active day within this fraction, else active to the end


#: Tuned by measuring the shipped segmenter study (configs/segment.yaml searches raw and log1p features):
#: the high-value segment is far enough from the regulars to stand apart in log space, but not so far
#: that raw-space silhouette prefers "high-value vs everyone else"; regulars buy often enough to stand
#: apart from occasional customers in raw space too. tests/test_segment.py checks the tuned study.
SEGMENTS = [
    Segment("high-value loyal", 0.12, 0.6, 3.0, 2.5, 0.5, 0.15, 0.6, 15.0, (0.4, 0.15, 0.05, 0.3, 0.1), (-0.5, 0.3)),
    Segment("regular", 0.33, 0.4, 1.8, 1.3, -0.3, 0.25, 0.8, 5.0, (0.25, 0.3, 0.15, 0.2, 0.1), (-0.5, 0.3)),
    Segment("occasional low-value", 0.35, 0.06, 1.2, 1.0, -1.0, 0.35, 0.15, -10.0, (0.1, 0.25, 0.35, 0.1, 0.2), (-0.4, 0.3)),
    Segment("churned", 0.20, 0.45, 2.2, 1.5, 0.0, 0.3, 2.5, -15.0, (0.1, 0.25, 0.3, 0.1, 0.25), (-0.3, 0.15), (0.35, 0.5)),
]
GUEST = Segment("guest", 0.0, 0.0, 1.2, 1.0, -1.0, 0.35, 1.0, 0.0, (0.1, 0.25, 0.35, 0.1, 0.2), (0.0, 0.0))


def all_segments() -> list[Segment]:
    """The planted segments, then GUEST (index len(SEGMENTS)): the rows of every per-segment lookup."""
    return [*SEGMENTS, GUEST]
