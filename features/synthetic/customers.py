"""Customers and their orders: who buys, through which channel, and on which days.

Orders come at a steady cadence: a customer's n orders (n ~ max(1, Poisson(rate * active weeks)))
fall one in each of n equal-demand slices of their active window, so recency reflects the segment's
rhythm rather than the gaps of a memoryless process.
"""

from __future__ import annotations

import numpy as np

from features.synthetic.planted import CHANNELS, COUNTRIES, ENGAGEMENT_BASE, GUEST, SEGMENTS

Arrays = dict[str, np.ndarray]  # column name -> values, the generator's working tables


def choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows, options) probability matrix."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (cum < rng.random(len(probs))[:, None]).sum(axis=1).clip(max=probs.shape[1] - 1)


def draw_customers(rng: np.random.Generator, n: int, n_days: int) -> Arrays:
    """Segment, active window (day indices), channel, engagement and country of each customer."""
    shares = np.array([s.share for s in SEGMENTS])
    seg = rng.choice(len(SEGMENTS), size=n, p=shares / shares.sum())
    span = np.array([s.signup_span for s in SEGMENTS])[seg]
    signup = np.floor(rng.uniform(span[:, 0], span[:, 1]) * n_days).astype(np.int64)
    last = np.full(n, n_days - 1, dtype=np.int64)
    for k, s in enumerate(SEGMENTS):
        if s.churn_span is not None:
            mask = seg == k
            churn = (rng.uniform(*s.churn_span, size=mask.sum()) * n_days).astype(np.int64)
            last[mask] = np.maximum(churn, np.maximum(signup[mask], 0) + 28)
    mix = np.array([s.channel_mix for s in SEGMENTS])
    channel = choice_rows(rng, mix[seg])
    base = np.array([ENGAGEMENT_BASE[c] for c in CHANNELS])[channel]
    offset = np.array([s.engagement_offset for s in SEGMENTS])[seg]
    engagement = np.clip(np.round(base + offset + rng.normal(0, 8, n), 1), 0, 100)
    country = rng.choice(len(COUNTRIES[0]), size=n, p=COUNTRIES[1])
    return {"segment": seg, "signup": signup, "last": last, "channel": channel, "engagement": engagement, "country": country}


def draw_orders(rng: np.random.Generator, cust: Arrays, intensity: np.ndarray, n_days: int, guest_share: float) -> Arrays:
    """Orders per customer n ~ max(1, Poisson(rate * active intensity-weeks)); days by inverse CDF of the intensity.

    A customer's i-th order falls uniformly in the i-th of n equal slices of their active window's cumulative
    intensity (a steady cadence). Together the slices cover the window once, so the expected number of orders
    on a day stays proportional to its intensity: the planted seasonality and weekday profile hold exactly.
    Guest orders (customer -1, segment GUEST) come on top: `guest_share` of the customers' orders, any day."""
    cdf = np.concatenate([[0.0], np.cumsum(intensity)])
    seg = cust["segment"]
    first = np.maximum(cust["signup"], 0)  # customers who signed up before the history buy from its first day
    active = (cdf[cust["last"] + 1] - cdf[first]) / intensity.mean() / 7.0
    rate = np.array([s.orders_per_week for s in SEGMENTS])[seg]
    counts = np.maximum(1, rng.poisson(rate * active))
    who = np.repeat(np.arange(len(seg)), counts)
    slot = np.arange(len(who)) - np.repeat(np.cumsum(counts) - counts, counts)  # 0..n-1 within each customer
    n_guest = int(round(guest_share * len(who)))
    where = np.concatenate([(slot + rng.random(len(who))) / counts[who], rng.random(n_guest)])  # in [0, 1) of the window
    lo = np.concatenate([cdf[first[who]], np.zeros(n_guest)])
    hi = np.concatenate([cdf[cust["last"][who] + 1], np.full(n_guest, cdf[-1])])
    day = np.clip(np.searchsorted(cdf, lo + (hi - lo) * where, side="right") - 1, 0, n_days - 1)
    guest_channel = choice_rows(rng, np.tile(GUEST.channel_mix, (n_guest, 1)))
    guest_country = rng.choice(len(COUNTRIES[0]), size=n_guest, p=COUNTRIES[1])
    channel = np.concatenate([cust["channel"][who], guest_channel])
    country = np.concatenate([cust["country"][who], guest_country])
    segment = np.concatenate([seg[who], np.full(n_guest, len(SEGMENTS))])  # GUEST is index len(SEGMENTS)
    who = np.concatenate([who, np.full(n_guest, -1)])
    seconds = rng.integers(8 * 3600, 22 * 3600, size=len(day))
    order = np.lexsort((seconds, day))
    return {"customer": who[order], "day": day[order], "seconds": seconds[order], "segment": segment[order],
            "channel": channel[order], "country": country[order]}
