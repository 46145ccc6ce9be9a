"""A planted buy-till-you-die cohort: customers drawn from BG/NBD (or MBG/NBD) with Gamma-Gamma spend.

Why: the clv family must recover parameters it was not told. Per customer, time in weeks:
- purchase rate lambda ~ Gamma(shape r, rate alpha); dropout probability p ~ Beta(a, b);
- the first purchase falls uniformly in the first `clv_acquisition_weeks` of the history; repeat
  purchases follow a Poisson process of rate lambda while the customer is alive;
- BG/NBD (Fader, Hardie & Lee 2005): after each *repeat* purchase the customer drops out with
  probability p. Not after the first: the paper's likelihood of x = 0 is exp(-lambda T), i.e.
  P(alive | no repeat) = 1 (lifetimes' generator does the same). MBG/NBD (Batislam et al. 2007) lets
  the customer drop out right after the first purchase too;
- spend per purchase ~ Gamma(shape p, rate nu), nu ~ Gamma(shape q, rate v) per customer.
Draws that fall on one day are one purchase (the first is kept): `features.btyd.summary` counts
purchase days, so the cohort's summary is what the model describes at day grain. Each purchase is one
order of 1 + Poisson(0.6) lines of the shop's products whose values (quantity 1, no discount, whole
cents) add up to the drawn spend; no returns. Ids "L00001..." and orders "LO0000001..." cannot clash
with the shop's "C..." / "O...". The cohort has a random stream of its own, so the rest of the shop
is the same with or without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.contract import COLUMNS
from features.synthetic.customers import Arrays
from features.synthetic.frames import ids, labels
from features.synthetic.options import SyntheticOptions
from features.synthetic.planted import CATEGORIES, CHANNELS, COUNTRIES, ENGAGEMENT_BASE

STREAM = 14  # the cohort's random stream: default_rng([STREAM, seed])
EXTRA_LINES = 0.6  # lines per order = 1 + Poisson(EXTRA_LINES)
SEGMENT = "clv cohort"


def draw_cohort(opts: SyntheticOptions, n_days: int) -> tuple[Arrays, Arrays, dict[str, Any]]:
    """(customers, purchases, realised counts): one purchase per (customer, day), with its spend in cents."""
    rng = np.random.default_rng([STREAM, opts.seed])
    n = opts.clv_customers
    rate = rng.gamma(opts.clv_r, 1.0 / opts.clv_alpha, n) / 7.0  # per day
    dropout = np.clip(rng.beta(opts.clv_a, opts.clv_b, n), 1e-12, 1.0)
    start = rng.uniform(0.0, opts.clv_acquisition_weeks * 7.0, n)  # days after the history's start
    # repeats the customer lives to make: BG/NBD >= 1 (dies right after the J-th), MBG/NBD >= 0
    lives = rng.geometric(dropout) - (1 if opts.clv_model == "mbgnbd" else 0)
    drawn = rng.poisson(rate * (n_days - start))  # Poisson arrivals in [start, end) had they all lived
    made = np.minimum(drawn, lives)
    owner = np.repeat(np.arange(n), drawn)
    u = rng.random(len(owner))
    order = np.lexsort((u, owner))  # arrival times: sorted uniforms per customer
    owner, u = owner[order], u[order]
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(drawn) - drawn, drawn)
    kept = rank < made[owner]
    owner, u = owner[kept], u[kept]
    times = np.concatenate([start, start[owner] + u * (n_days - start[owner])])
    who = np.concatenate([np.arange(n), owner])
    day = np.minimum(np.floor(times).astype(np.int64), n_days - 1)
    key = np.unique(who * n_days + day)
    who, day = key // n_days, key % n_days
    nu = rng.gamma(opts.clv_q, 1.0 / opts.clv_v, n)
    cents = np.maximum(1, np.round(rng.gamma(opts.clv_p, 1.0 / nu[who]) * 100)).astype(np.int64)
    seconds = rng.integers(8 * 3600, 22 * 3600, size=len(who))
    channel = rng.integers(0, len(CHANNELS), n)
    country = rng.choice(len(COUNTRIES[0]), size=n, p=COUNTRIES[1])
    engagement = np.clip(np.round(np.array([ENGAGEMENT_BASE[c] for c in CHANNELS])[channel] + rng.normal(0, 8, n), 1), 0, 100)
    customers = {"first_day": np.floor(start).astype(np.int64), "channel": channel, "country": country, "engagement": engagement}
    purchases = {"customer": who, "day": day, "seconds": seconds, "cents": cents}
    counts = {
        "purchases": len(who), "repeat_purchases": len(who) - n, "same_day_draws_merged": len(times) - len(key),
        "alive_at_end": int((drawn < lives).sum()), "customers_without_repeat": int((np.bincount(who, minlength=n) == 1).sum()),
    }
    return customers, purchases, counts


def order_lines(rng: np.random.Generator, purchases: Arrays, products: Arrays) -> Arrays:
    """Each purchase as 1 + Poisson lines of popular-weighted products whose cents add up to its spend."""
    cents = purchases["cents"]
    k = np.minimum(1 + rng.poisson(EXTRA_LINES, len(cents)), cents)
    order = np.repeat(np.arange(len(cents)), k)
    weight = rng.exponential(size=len(order))
    share = weight / np.bincount(order, weights=weight)[order]
    part = 1 + np.floor((cents - k)[order] * share).astype(np.int64)
    head = np.cumsum(k) - k
    part[head] += cents - np.bincount(order, weights=part, minlength=len(cents)).astype(np.int64)
    popularity = products["popularity"] / products["popularity"].sum()
    product = rng.choice(len(popularity), size=len(order), p=popularity)
    return {"order": order, "product": product, "cents": part}


def cohort_frames(opts: SyntheticOptions, n_days: int, start: pd.Timestamp, products: Arrays,
                  product_names: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The cohort's order lines (contract + country), its customers table rows and its truth."""
    cust, purchases, counts = draw_cohort(opts, n_days)
    rng = np.random.default_rng([STREAM, opts.seed, 1])
    when = purchases["day"] * 86400 + purchases["seconds"]
    rank = np.empty(len(when), dtype=np.int64)
    rank[np.lexsort((purchases["customer"], when))] = np.arange(len(when))  # order ids follow time
    lines = order_lines(rng, purchases, products)
    o = lines["order"]
    cid = purchases["customer"][o]
    width = max(5, len(str(opts.clv_customers)))
    base = start.to_datetime64().astype("datetime64[ns]")
    frame = pd.DataFrame({
        "order_id": ids("LO", rank[o] + 1, 7),
        "order_date": pd.Series(base + when[o].astype("timedelta64[s]")).astype("datetime64[ns]"),
        "customer_id": ids("L", cid + 1, width),
        "product_id": ids("P", lines["product"] + 1, 4),
        "product_name": product_names.iloc[lines["product"]].reset_index(drop=True),
        "category": labels(list(CATEGORIES), products["category"][lines["product"]]),
        "quantity": np.ones(len(o), dtype=np.int64),
        "unit_price": lines["cents"] / 100.0,
        "discount": np.zeros(len(o)),
        "channel": labels(CHANNELS, cust["channel"][cid]),
        "returned": np.zeros(len(o), dtype=bool),
        "country": labels(COUNTRIES[0], cust["country"][cid]),
    })[[*COLUMNS, "country"]]
    customers = pd.DataFrame({
        "customer_id": ids("L", np.arange(1, opts.clv_customers + 1), width),
        "signup_date": pd.Series(base + cust["first_day"].astype("timedelta64[D]")).astype("datetime64[ns]"),
        "channel": labels(CHANNELS, cust["channel"]),
        "engagement_score": cust["engagement"].astype(np.float64),
        "country": labels(COUNTRIES[0], cust["country"]),
        "true_segment": pd.Series(SEGMENT, index=range(opts.clv_customers), dtype="string"),
    })
    return frame, customers, clv_truth(opts, {**counts, "lines": len(frame)})


def clv_truth(opts: SyntheticOptions, counts: dict[str, Any]) -> dict[str, Any]:
    """The planted parameters (per week) and the cohort's realised counts, as plain JSON."""
    return {
        "model": opts.clv_model, "unit": "W", "customers": opts.clv_customers, "acquisition_weeks": opts.clv_acquisition_weeks,
        "customer_id_prefix": "L", "order_id_prefix": "LO", "segment": SEGMENT,
        "bgnbd": {"r": opts.clv_r, "alpha": opts.clv_alpha, "a": opts.clv_a, "b": opts.clv_b},
        "gamma_gamma": {"p": opts.clv_p, "q": opts.clv_q, "v": opts.clv_v},
        "process": "lambda ~ Gamma(r, rate alpha) per week, p ~ Beta(a, b); Poisson(lambda) repeat purchases; "
                   "dropout with probability p after each repeat purchase (mbgnbd: after the first purchase too); "
                   "spend ~ Gamma(p, rate nu), nu ~ Gamma(q, rate v), rounded to cents; draws on one day are one purchase",
        **counts,
    }
