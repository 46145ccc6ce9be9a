"""ecomlab's seeded synthetic shop: `OrderLines` plus customers and inventory, with the structure planted in it.

Why: the models need data whose answers are known. Everything planted is written to `truth`
(JSON) so tests can check that the segmenter, forecaster, rule miner and KPIs recover it:

- customer segments with distinct RFM behaviour (`customers.true_segment`), separated enough that a
  silhouette-tuned K-means recovers them: "high-value loyal" (every ~12 days, big baskets of dearer
  goods), "regular" (every ~2.5 weeks, small baskets of cheaper goods), "occasional low-value" (a
  single cheap item every few months) and "churned" (bought every ~2 weeks, stopped in the first half
  of the history, returning more); orders at a steady cadence (`customers`);
- per category: a share of lines, a linear yearly trend and a one-harmonic yearly seasonality
  `1 + amplitude * cos(2*pi*(day_of_year - peak_day) / 365.25)`; one weekday profile for all orders.
  The expected number of lines of category c on day d is proportional to
  `active(d) * weekday(d) * share_c * season_c(d) * trend_c(d)` (`active` = customers able to buy),
  so ratios between categories follow the truth exactly (see `seasonal_multiplier`), bundle items aside
  (added to their anchor's orders, they follow the anchor's season);
- bundles, returns (same order_id as the sale, negative quantity, 2..30 days later) (`orders`);
- marketing channels: each customer's acquisition channel (mix per segment) is the channel of all
  their lines; engagement score = channel base + segment offset + noise, clipped to [0, 100];
- optionally (`clv_customers` > 0) a cohort drawn from BG/NBD with Gamma-Gamma spend, its parameters
  in `truth["clv"]` (`lifetimes`);
- guest orders (null customer_id, occasional behaviour), signup dates for cohorts (some before the
  history starts: an established shop, not a launch), and an inventory table whose at-risk
  products (days of cover < lead time) are listed in truth (`frames`).

The planted numbers are in `planted`, the options (typed, strict) in `options`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.synthetic.customers import draw_customers, draw_orders
from features.synthetic.lifetimes import cohort_frames
from features.synthetic.frames import FILES, SyntheticData, customers_frame, ids, inventory_frame, labels, lines_frame, read
from features.synthetic.options import SyntheticOptions, synthetic_options
from features.synthetic.orders import add_bundles, add_returns, category_weights, draw_lines, draw_products, pick_bundles
from features.synthetic.planted import CATEGORIES, CHANNELS, SEGMENTS, WEEKDAY_PROFILE, Segment
from features.synthetic.truth import build_truth, seasonal_multiplier

__all__ = [
    "CATEGORIES", "CHANNELS", "FILES", "SEGMENTS", "Segment", "SyntheticData", "SyntheticOptions", "generate", "read",
    "seasonal_multiplier", "synthetic_options",
]


def generate(options: SyntheticOptions | dict[str, Any] | None = None, /, **values: Any) -> SyntheticData:
    """Generate the shop; the same options give identical frames. ~310k lines with the defaults.

    Options come as a `SyntheticOptions`, a mapping or keywords (keywords win); a bad key or value
    raises `ConfigError` naming it."""
    base = options.model_dump() if isinstance(options, SyntheticOptions) else dict(options or {})
    opts = synthetic_options({**base, **values})
    rng = np.random.default_rng(opts.seed)
    start_day = pd.Timestamp(opts.start).normalize()
    n_days = opts.weeks * 7
    days = pd.date_range(start_day, periods=n_days, freq="D")
    cat_weight = category_weights(days, start_day)  # (n_days, n_categories)
    intensity = cat_weight.sum(axis=1) * np.asarray(WEEKDAY_PROFILE)[days.day_of_week]
    products = draw_products(rng, opts.n_products)
    product_ids = ids("P", np.arange(1, opts.n_products + 1), 4)
    names = labels(list(CATEGORIES), products["category"]) + " item " + product_ids.str.slice(1)
    customers = draw_customers(rng, opts.n_customers, n_days)
    orders = draw_orders(rng, customers, intensity, n_days, opts.guest_share)
    lines = draw_lines(rng, orders, products, cat_weight)
    bundles = pick_bundles(rng, products, opts.n_bundles)
    lines = add_bundles(rng, lines, bundles)
    lines["segment"], lines["day"], lines["seconds"] = (orders[k][lines["order"]] for k in ("segment", "day", "seconds"))
    lines, returns_skipped = add_returns(rng, lines, products["category"], n_days)
    frame = lines_frame(lines, orders, products, names, start_day)
    table = customers_frame(customers, start_day)
    clv = None
    if opts.clv_customers:
        cohort, cohort_customers, clv = cohort_frames(opts, n_days, start_day, products, names)
        frame = pd.concat([frame, cohort], ignore_index=True).sort_values("order_date", kind="stable", ignore_index=True)
        table = pd.concat([table, cohort_customers], ignore_index=True)
    inventory, at_risk = inventory_frame(rng, frame, products, product_ids)
    truth = build_truth(opts.model_dump(mode="json"), customers, product_ids, bundles, at_risk, returns_skipped, frame)
    if clv is not None:
        truth["clv"] = clv
    return SyntheticData(frame, table, inventory, truth)
