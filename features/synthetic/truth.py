"""Everything the generator planted, as plain JSON (`truth.json`), and the seasonal law tests check against."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.counting import order_count
from features.synthetic.customers import Arrays
from features.synthetic.planted import (
    CATEGORIES, CHANNELS, DEMAND_WINDOW_DAYS, ENGAGEMENT_BASE, LEAD_TIME_DAYS, RETURN_DELAY_DAYS, RETURN_DISCOUNT_COEF,
    SEGMENTS, WEEKDAY_PROFILE,
)


def seasonal_multiplier(truth: dict[str, Any], category: str, dates: pd.DatetimeIndex) -> np.ndarray:
    """share * season * trend of a category on `dates`, from truth: category line counts are proportional to it
    times a factor common to all categories (weekday and active customers)."""
    p = truth["categories"][category]
    years = (dates - pd.Timestamp(truth["options"]["start"])).days.to_numpy() / 365.25
    season = 1.0 + p["yearly_amplitude"] * np.cos(2 * np.pi * (dates.day_of_year.to_numpy() - p["peak_day_of_year"]) / 365.25)
    return p["share"] * season * (1.0 + p["yearly_trend"] * years)


def _pair_stats(sales: pd.DataFrame, n_orders: int, anchor: str, items: list[str]) -> dict[str, dict[str, float]]:
    """Realised confidence (anchor -> item) and lift of each bundle item over the `n_orders` sales orders."""
    sub = sales[sales["product_id"].isin([anchor, *items])]
    orders_of = {p: set(o) for p, o in sub.groupby("product_id")["order_id"]}
    orders_of = {p: orders_of.get(p, set()) for p in [anchor, *items]}
    out = {}
    for item in items:
        both = len(orders_of[anchor] & orders_of[item])
        confidence = both / max(len(orders_of[anchor]), 1)
        lift = confidence * n_orders / max(len(orders_of[item]), 1)
        out[item] = {"confidence": round(confidence, 4), "lift": round(lift, 2)}
    return out


def _counts(frame: pd.DataFrame, cust: Arrays, returns_skipped: int) -> dict[str, int]:
    return {
        "lines": len(frame), "sales_lines": int((~frame["returned"]).sum()), "return_lines": int(frame["returned"].sum()),
        "orders": order_count(frame["order_id"]), "customers": len(cust["segment"]),
        "guest_lines": int(frame["customer_id"].isna().sum()), "returns_after_history_not_generated": returns_skipped,
    }


def _segments(cust: Arrays) -> dict[str, Any]:
    seg_counts = np.bincount(cust["segment"], minlength=len(SEGMENTS))
    return {
        s.name: {
            "customers": int(seg_counts[k]), "share": s.share, "orders_per_week": s.orders_per_week,
            "lines_per_order": s.lines_per_order, "units_per_line": s.units_per_line, "price_tilt": s.price_tilt,
            "discount_probability": s.discount_probability, "return_multiplier": s.return_multiplier,
            "signup_span": list(s.signup_span), "churn_span": list(s.churn_span) if s.churn_span else None,
            "channel_mix": dict(zip(CHANNELS, s.channel_mix)),
        }
        for k, s in enumerate(SEGMENTS)
    }


def _bundles(frame: pd.DataFrame, product_ids: pd.Series, bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sales = frame.loc[~frame["returned"].to_numpy(), ["order_id", "product_id"]]
    n_orders = order_count(sales["order_id"])
    out = []
    for b in bundles:
        items = [product_ids.iloc[i] for i in b["items"]]
        out.append({"items": items, "anchor": items[0], "attach_probability": b["attach_probability"],
                    "observed": _pair_stats(sales, n_orders, items[0], items[1:])})
    return out


def _channels(cust: Arrays) -> dict[str, Any]:
    chan = cust["channel"]
    return {
        c: {"engagement_base": ENGAGEMENT_BASE[c], "customers": int((chan == i).sum()),
            "mean_engagement": float(np.round(cust["engagement"][chan == i].mean(), 3)) if (chan == i).any() else None}
        for i, c in enumerate(CHANNELS)
    }


def build_truth(options: dict[str, Any], cust: Arrays, product_ids: pd.Series, bundles: list[dict[str, Any]],
                at_risk: list[str], returns_skipped: int, frame: pd.DataFrame) -> dict[str, Any]:
    """Everything planted, as plain JSON types."""
    return {
        "options": options,
        "counts": _counts(frame, cust, returns_skipped),
        "orders": {
            "count": "max(1, Poisson(orders_per_week * active weeks)) per customer, active weeks weighted by intensity",
            "timing": "the i-th of n orders falls uniformly in the i-th of n equal-intensity slices of the active window",
        },
        "segments": _segments(cust),
        "categories": {
            name: {"share": p[0], "median_price": p[1], "yearly_amplitude": p[3], "peak_day_of_year": p[4],
                   "yearly_trend": p[5], "return_base": p[6], "lead_time_days": LEAD_TIME_DAYS[name]}
            for name, p in CATEGORIES.items()
        },
        "seasonality": {
            "formula": "lines(c, d) ~ active(d) * weekday(d) * share_c"
                       " * (1 + amplitude_c * cos(2 pi (doy - peak_c) / 365.25)) * (1 + trend_c * years)",
            "weekday_profile": dict(zip(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], WEEKDAY_PROFILE)),
        },
        "bundles": _bundles(frame, product_ids, bundles),
        "returns": {
            "model": "p = sigmoid(logit(return_base[category] * return_multiplier[segment]) + discount_coefficient * discount)",
            "discount_coefficient": RETURN_DISCOUNT_COEF, "delay_days": list(RETURN_DELAY_DAYS),
            "order_id": "a return line carries the order_id of the sale it returns",
        },
        "channels": _channels(cust),
        "engagement": {"formula": "clip(engagement_base[channel] + engagement_offset[segment] + N(0, 8), 0, 100)",
                       "segment_offset": {s.name: s.engagement_offset for s in SEGMENTS}},
        "inventory": {"demand_window_days": DEMAND_WINDOW_DAYS, "rule": "at risk when stock_on_hand / daily demand < lead_time_days",
                      "at_risk_products": at_risk},
    }
