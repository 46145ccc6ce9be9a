"""What is in each order: products and their prices, lines, discounts, planted bundles and returns.

Per category: a share of lines, a linear yearly trend and a one-harmonic yearly seasonality, so the
expected lines of category c on day d are proportional to `active(d) * weekday(d) * share_c *
season_c(d) * trend_c(d)`. Bundles: when an order holds a bundle's anchor, each other item is added
with the attach probability. Returns: each sales line is returned (all its units) with probability
`sigmoid(logit(category_base * segment_multiplier) + discount_coefficient * discount)`, as a separate
line with the sale's order id, `delay_days` later; returns after the history's last day are skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.synthetic.customers import Arrays
from features.synthetic.planted import (
    BUNDLE_ATTACH_PROBABILITY, CATEGORIES, DISCOUNT_LEVELS, RETURN_DELAY_DAYS, RETURN_DISCOUNT_COEF, all_segments,
)


def category_weights(days: pd.DatetimeIndex, start: pd.Timestamp) -> np.ndarray:
    """share * yearly season * trend per (day, category)."""
    params = np.array([c[:6] for c in CATEGORIES.values()], dtype=float)
    share, amp, peak, trend = params[:, 0], params[:, 3], params[:, 4], params[:, 5]
    doy = days.day_of_year.to_numpy()[:, None]
    years = ((days - start).days.to_numpy() / 365.25)[:, None]
    season = 1.0 + amp * np.cos(2 * np.pi * (doy - peak) / 365.25)
    return share * season * (1.0 + trend * years)


def draw_products(rng: np.random.Generator, n_products: int) -> Arrays:
    """Products per category in proportion to its share; Zipf-like popularity, lognormal prices."""
    names = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in names])
    counts = np.maximum(5, np.floor(shares / shares.sum() * n_products).astype(int))
    counts[np.argmax(counts)] += n_products - counts.sum()
    category = np.repeat(np.arange(len(names)), counts)
    median = np.array([CATEGORIES[c][1] for c in names])[category]
    sigma = np.array([CATEGORIES[c][2] for c in names])[category]
    price = np.maximum(0.99, np.round(median * np.exp(rng.normal(0, sigma))) - 0.01)
    rank = np.concatenate([rng.permutation(n) + 1 for n in counts])
    popularity = 1.0 / rank**0.8
    return {"category": category, "price": price, "popularity": popularity, "median": median}


def draw_lines(rng: np.random.Generator, orders: Arrays, products: Arrays, cat_weight: np.ndarray) -> Arrays:
    """Lines per order ~ 1 + Poisson(mean - 1); category by the day's category weights; product by segment taste."""
    segs = all_segments()
    seg_o = orders["segment"]
    n_lines = 1 + rng.poisson(np.array([s.lines_per_order - 1 for s in segs])[seg_o])
    order = np.repeat(np.arange(len(seg_o)), n_lines)
    seg, day = seg_o[order], orders["day"][order]
    cum = np.cumsum(cat_weight / cat_weight.sum(axis=1, keepdims=True), axis=1)
    category = (cum[day] < rng.random(len(order))[:, None]).sum(axis=1).clip(max=cat_weight.shape[1] - 1)
    product = _pick_products(rng, seg, category, products)
    units = 1 + rng.poisson(np.array([s.units_per_line - 1 for s in segs])[seg])
    discount = _discounts(rng, np.array([s.discount_probability for s in segs])[seg])
    return {"order": order, "product": product, "quantity": units, "discount": discount}


def _pick_products(rng: np.random.Generator, seg: np.ndarray, category: np.ndarray, products: Arrays) -> np.ndarray:
    """Within (segment, category): popularity * (price / category median) ** price_tilt, inverse-CDF sampling."""
    product = np.empty(len(seg), dtype=np.int64)
    u = rng.random(len(seg))
    for k, s in enumerate(all_segments()):
        weight = products["popularity"] * (products["price"] / products["median"]) ** s.price_tilt
        for c in range(len(CATEGORIES)):
            mask = (seg == k) & (category == c)
            if not mask.any():
                continue
            ids = np.flatnonzero(products["category"] == c)
            cdf = np.cumsum(weight[ids]) / weight[ids].sum()
            product[mask] = ids[np.minimum(np.searchsorted(cdf, u[mask]), len(ids) - 1)]
    return product


def _discounts(rng: np.random.Generator, probability: np.ndarray) -> np.ndarray:
    levels, p = DISCOUNT_LEVELS
    level = rng.choice(np.array(levels), size=len(probability), p=p)
    return np.where(rng.random(len(probability)) < probability, level, 0.0)


def pick_bundles(rng: np.random.Generator, products: Arrays, n_bundles: int) -> list[dict[str, Any]]:
    """Anchors among the popular half of products, other items among the rarely bought rest (high lift)."""
    order = np.argsort(-products["popularity"], kind="stable")
    popular, rare = order[: len(order) // 2], order[len(order) // 2 :]
    anchors = rng.choice(popular, size=n_bundles, replace=False)
    sizes = rng.integers(2, 4, size=n_bundles)
    others = rng.choice(rare, size=int((sizes - 1).sum()), replace=False)
    bundles, at = [], 0
    for anchor, size in zip(anchors, sizes):
        items = [int(anchor), *map(int, others[at : at + size - 1])]
        at += size - 1
        bundles.append({"items": items, "attach_probability": BUNDLE_ATTACH_PROBABILITY})
    return bundles


def add_bundles(rng: np.random.Generator, lines: Arrays, bundles: list[dict[str, Any]]) -> Arrays:
    """For each line holding a bundle anchor, add each other item with the attach probability."""
    extra: list[Arrays] = []
    for bundle in bundles:
        anchor_lines = np.flatnonzero(lines["product"] == bundle["items"][0])
        for item in bundle["items"][1:]:
            hit = anchor_lines[rng.random(len(anchor_lines)) < bundle["attach_probability"]]
            extra.append({
                "order": lines["order"][hit],
                "product": np.full(len(hit), item, dtype=np.int64),
                "quantity": lines["quantity"][hit],
                "discount": lines["discount"][hit],
            })
    merged = {k: np.concatenate([lines[k], *[e[k] for e in extra]]) for k in lines}
    keep = np.argsort(merged["order"], kind="stable")
    return {k: v[keep] for k, v in merged.items()}


def _return_probability(category: np.ndarray, segment: np.ndarray, discount: np.ndarray) -> np.ndarray:
    base = np.array([c[6] for c in CATEGORIES.values()])[category]
    mult = np.array([s.return_multiplier for s in all_segments()])[segment]
    p0 = np.clip(base * mult, 1e-6, 0.95)
    logit = np.log(p0 / (1 - p0)) + RETURN_DISCOUNT_COEF * discount
    return 1.0 / (1.0 + np.exp(-logit))


def add_returns(rng: np.random.Generator, lines: Arrays, category: np.ndarray, n_days: int) -> tuple[Arrays, int]:
    """Return whole lines per the return model, dated 2..30 days after the sale; later than the history: skipped."""
    p = _return_probability(category[lines["product"]], lines["segment"], lines["discount"])
    hit = np.flatnonzero(rng.random(len(p)) < p)
    day = lines["day"][hit] + rng.integers(RETURN_DELAY_DAYS[0], RETURN_DELAY_DAYS[1] + 1, size=len(hit))
    inside = day < n_days
    hit, day = hit[inside], day[inside]
    ret = {k: v[hit] for k, v in lines.items()}
    ret["quantity"] = -ret["quantity"]
    ret["day"] = day
    ret["seconds"] = rng.integers(8 * 3600, 22 * 3600, size=len(hit))
    out = {k: np.concatenate([lines[k], ret[k]]) for k in lines}
    out["returned"] = np.concatenate([np.zeros(len(p), dtype=bool), np.ones(len(hit), dtype=bool)])
    return out, int((~inside).sum())
