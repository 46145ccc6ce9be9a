"""ecomlab's seeded synthetic shop: `OrderLines` plus customers and inventory, with the structure planted in it.

Why: the models need data whose answers are known. Everything planted is written to `truth`
(JSON) so tests can check that the segmenter, forecaster, rule miner and KPIs recover it:

- customer segments with distinct RFM behaviour (`customers.true_segment`), separated enough that a
  silhouette-tuned K-means recovers them: "high-value loyal" (every ~12 days, big baskets of dearer
  goods), "regular" (every ~2.5 weeks, small baskets of cheaper goods), "occasional low-value" (a
  single cheap item every few months) and "churned" (bought every ~2 weeks, stopped in the first half
  of the history, returning more). Orders come at a steady cadence: a customer's n orders
  (n ~ max(1, Poisson(rate * active weeks))) fall one in each of n equal-demand slices of their active
  window, so recency reflects the segment's rhythm rather than the gaps of a memoryless process;
- per category: a share of lines, a linear yearly trend and a one-harmonic yearly seasonality
  `1 + amplitude * cos(2*pi*(day_of_year - peak_day) / 365.25)`; one weekday profile for all orders.
  The expected number of lines of category c on day d is proportional to
  `active(d) * weekday(d) * share_c * season_c(d) * trend_c(d)` (`active` = customers able to buy),
  so ratios between categories follow the truth exactly (see `seasonal_multiplier`), bundle items aside
  (added to their anchor's orders, they follow the anchor's season);
- bundles: when an order holds a bundle's anchor, each other item is added with `attach_probability`;
- returns: each sales line is returned (all of its units) with probability
  `sigmoid(logit(category_base * segment_multiplier) + discount_coefficient * discount)`.
  A return is a separate line with the SAME order_id as the sale, returned=True, negative quantity,
  dated `delay_days` (uniform 2..30) after the sale; returns that would fall after the last day of the
  history are not generated (counted in truth);
- marketing channels: each customer's acquisition channel (mix per segment) is the channel of all
  their lines; engagement score = channel base + segment offset + noise, clipped to [0, 100];
- guest orders (null customer_id, occasional behaviour), signup dates for cohorts (some before the
  history starts: an established shop, not a launch), and an inventory table whose at-risk
  products (days of cover < lead time) are listed in truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import COLUMNS, STRING_COLUMNS

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

Arrays = dict[str, np.ndarray]  # column name -> values, the generator's working tables


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


@dataclass
class SyntheticData:
    """The generated shop: order lines (contract + `country`), customers, inventory and the planted truth."""

    lines: pd.DataFrame
    customers: pd.DataFrame
    inventory: pd.DataFrame
    truth: dict[str, Any]

    def write(self, dir: Path) -> Path:
        """Write lines/customers/inventory as Parquet and truth.json into `dir` (created); returns `dir`."""
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        self.lines.to_parquet(dir / "lines.parquet", index=False)
        self.customers.to_parquet(dir / "customers.parquet", index=False)
        self.inventory.to_parquet(dir / "inventory.parquet", index=False)
        (dir / "truth.json").write_text(json.dumps(self.truth, indent=2), encoding="utf-8")
        return dir


def read(dir: Path) -> SyntheticData:
    """Read a folder written by `SyntheticData.write`, restoring the contract dtypes."""
    dir = Path(dir)
    missing = [f for f in ("lines.parquet", "customers.parquet", "inventory.parquet", "truth.json") if not (dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{dir}: not a generated synthetic data folder, missing {missing}")
    lines = pd.read_parquet(dir / "lines.parquet")
    for col in [*STRING_COLUMNS, "country"]:
        lines[col] = lines[col].astype("string")
    lines["order_date"] = lines["order_date"].astype("datetime64[ns]")
    customers = pd.read_parquet(dir / "customers.parquet")
    for col in ("customer_id", "channel", "true_segment", "country"):
        customers[col] = customers[col].astype("string")
    customers["signup_date"] = customers["signup_date"].astype("datetime64[ns]")
    inventory = pd.read_parquet(dir / "inventory.parquet")
    for col in ("product_id", "category"):
        inventory[col] = inventory[col].astype("string")
    truth = json.loads((dir / "truth.json").read_text(encoding="utf-8"))
    return SyntheticData(lines, customers, inventory, truth)


def generate(
    n_customers: int = 5000,
    start: str = "2022-01-03",
    weeks: int = 104,
    seed: int = 42,
    n_products: int = 200,
    guest_share: float = 0.02,
    n_bundles: int = 4,
) -> SyntheticData:
    """Generate the shop; the same arguments give identical frames. ~310k lines with the defaults."""
    _check_options(n_customers, weeks, n_products, guest_share, n_bundles)
    rng = np.random.default_rng(seed)
    start_day = pd.Timestamp(start).normalize()
    n_days = weeks * 7
    days = pd.date_range(start_day, periods=n_days, freq="D")
    cat_weight = _category_weights(days, start_day)  # (n_days, n_categories)
    intensity = cat_weight.sum(axis=1) * np.asarray(WEEKDAY_PROFILE)[days.day_of_week]
    products = _products(rng, n_products)
    product_ids = _ids("P", np.arange(1, n_products + 1), 4)
    names = _strings(list(CATEGORIES), products["category"]) + " item " + product_ids.str.slice(1)
    customers = _customers(rng, n_customers, n_days)
    orders = _orders(rng, customers, intensity, n_days, guest_share)
    lines = _lines(rng, orders, products, cat_weight)
    bundles = _pick_bundles(rng, products, n_bundles)
    lines = _add_bundles(rng, lines, bundles)
    lines["segment"], lines["day"], lines["seconds"] = (orders[k][lines["order"]] for k in ("segment", "day", "seconds"))
    lines, returns_skipped = _add_returns(rng, lines, products["category"], n_days)
    frame = _frame(lines, orders, names, products["category"], products["price"], start_day)
    customer_frame = _customer_frame(customers, start_day)
    inventory, at_risk = _inventory(rng, frame, products, product_ids)
    options = dict(n_customers=n_customers, start=str(start_day.date()), weeks=weeks, seed=seed,
                   n_products=n_products, guest_share=guest_share, n_bundles=n_bundles)
    truth = _truth(options, customers, product_ids, bundles, at_risk, returns_skipped, frame)
    return SyntheticData(frame, customer_frame, inventory, truth)


def seasonal_multiplier(truth: dict[str, Any], category: str, dates: pd.DatetimeIndex) -> np.ndarray:
    """share * season * trend of a category on `dates`, from truth: category line counts are proportional to it
    times a factor common to all categories (weekday and active customers)."""
    p = truth["categories"][category]
    years = (dates - pd.Timestamp(truth["options"]["start"])).days.to_numpy() / 365.25
    season = 1.0 + p["yearly_amplitude"] * np.cos(2 * np.pi * (dates.day_of_year.to_numpy() - p["peak_day_of_year"]) / 365.25)
    return p["share"] * season * (1.0 + p["yearly_trend"] * years)


def _check_options(n_customers: int, weeks: int, n_products: int, guest_share: float, n_bundles: int) -> None:
    if n_customers < 10:
        raise ValueError(f"n_customers must be >= 10, got {n_customers}")
    if weeks < 8:
        raise ValueError(f"weeks must be >= 8, got {weeks}")
    if n_products < 5 * len(CATEGORIES):
        raise ValueError(f"n_products must be >= {5 * len(CATEGORIES)} (5 per category), got {n_products}")
    if not 0 <= guest_share < 1:
        raise ValueError(f"guest_share must be in [0, 1), got {guest_share}")
    if not 0 <= n_bundles <= n_products // 10:
        raise ValueError(f"n_bundles must be in [0, n_products // 10], got {n_bundles}")


def _category_weights(days: pd.DatetimeIndex, start: pd.Timestamp) -> np.ndarray:
    """share * yearly season * trend per (day, category)."""
    params = np.array([c[:6] for c in CATEGORIES.values()], dtype=float)
    share, amp, peak, trend = params[:, 0], params[:, 3], params[:, 4], params[:, 5]
    doy = days.day_of_year.to_numpy()[:, None]
    years = ((days - start).days.to_numpy() / 365.25)[:, None]
    season = 1.0 + amp * np.cos(2 * np.pi * (doy - peak) / 365.25)
    return share * season * (1.0 + trend * years)


def _products(rng: np.random.Generator, n_products: int) -> Arrays:
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


def _customers(rng: np.random.Generator, n: int, n_days: int) -> Arrays:
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
    channel = _choice_rows(rng, mix[seg])
    base = np.array([ENGAGEMENT_BASE[c] for c in CHANNELS])[channel]
    offset = np.array([s.engagement_offset for s in SEGMENTS])[seg]
    engagement = np.clip(np.round(base + offset + rng.normal(0, 8, n), 1), 0, 100)
    country = rng.choice(len(COUNTRIES[0]), size=n, p=COUNTRIES[1])
    return {"segment": seg, "signup": signup, "last": last, "channel": channel, "engagement": engagement, "country": country}


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (rows, options) probability matrix."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return (cum < rng.random(len(probs))[:, None]).sum(axis=1).clip(max=probs.shape[1] - 1)


def _orders(rng: np.random.Generator, cust: Arrays, intensity: np.ndarray, n_days: int, guest_share: float) -> Arrays:
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
    guest_channel = _choice_rows(rng, np.tile(GUEST.channel_mix, (n_guest, 1)))
    guest_country = rng.choice(len(COUNTRIES[0]), size=n_guest, p=COUNTRIES[1])
    channel = np.concatenate([cust["channel"][who], guest_channel])
    country = np.concatenate([cust["country"][who], guest_country])
    segment = np.concatenate([seg[who], np.full(n_guest, len(SEGMENTS))])  # GUEST is index len(SEGMENTS)
    who = np.concatenate([who, np.full(n_guest, -1)])
    seconds = rng.integers(8 * 3600, 22 * 3600, size=len(day))
    order = np.lexsort((seconds, day))
    return {"customer": who[order], "day": day[order], "seconds": seconds[order], "segment": segment[order],
            "channel": channel[order], "country": country[order]}


def _all_segments() -> list[Segment]:
    return [*SEGMENTS, GUEST]


def _lines(rng: np.random.Generator, orders: Arrays, products: Arrays, cat_weight: np.ndarray) -> Arrays:
    """Lines per order ~ 1 + Poisson(mean - 1); category by the day's category weights; product by segment taste."""
    segs = _all_segments()
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
    for k, s in enumerate(_all_segments()):
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


def _pick_bundles(rng: np.random.Generator, products: Arrays, n_bundles: int) -> list[dict[str, Any]]:
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
        bundles.append({"items": items, "attach_probability": 0.7})
    return bundles


def _add_bundles(rng: np.random.Generator, lines: Arrays, bundles: list[dict[str, Any]]) -> Arrays:
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
    mult = np.array([s.return_multiplier for s in _all_segments()])[segment]
    p0 = np.clip(base * mult, 1e-6, 0.95)
    logit = np.log(p0 / (1 - p0)) + RETURN_DISCOUNT_COEF * discount
    return 1.0 / (1.0 + np.exp(-logit))


def _add_returns(rng: np.random.Generator, lines: Arrays, category: np.ndarray, n_days: int) -> tuple[Arrays, int]:
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


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Vectorised "P0001"-style ids."""
    return prefix + pd.Series(numbers, dtype="int64").astype("string").str.zfill(width)


def _strings(values: list[str], codes: np.ndarray) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=values)).astype("string")


def _frame(lines: Arrays, orders: Arrays, product_names: pd.Series, product_category: np.ndarray, price: np.ndarray,
           start: pd.Timestamp) -> pd.DataFrame:
    """The `OrderLines` frame (plus `country`), sorted by time, order and sales before returns."""
    keep = np.lexsort((lines["returned"], lines["order"], lines["day"] * 86400 + lines["seconds"]))
    ln = {k: v[keep] for k, v in lines.items()}
    order, product = ln["order"], ln["product"]
    customer = orders["customer"][order]
    width = max(5, len(str(customer.max() + 1)))
    customer_id = _ids("C", customer + 1, width).mask(customer < 0)
    stamp = start.to_datetime64().astype("datetime64[ns]") + (ln["day"] * 86400 + ln["seconds"]).astype("timedelta64[s]")
    frame = pd.DataFrame({
        "order_id": _ids("O", order + 1, max(7, len(str(order.max() + 1)))),
        "order_date": pd.Series(stamp.astype("datetime64[ns]")),
        "customer_id": customer_id,
        "product_id": _ids("P", product + 1, 4),
        "product_name": product_names.iloc[product].reset_index(drop=True),
        "category": _strings(list(CATEGORIES), product_category[product]),
        "quantity": ln["quantity"].astype(np.int64),
        "unit_price": price[product].astype(np.float64),
        "discount": ln["discount"].astype(np.float64),
        "channel": _strings(CHANNELS, orders["channel"][order]),
        "returned": ln["returned"].astype(bool),
        "country": _strings(COUNTRIES[0], orders["country"][order]),
    })
    return frame[[*COLUMNS, "country"]]


def _customer_frame(cust: Arrays, start: pd.Timestamp) -> pd.DataFrame:
    n = len(cust["segment"])
    return pd.DataFrame({
        "customer_id": _ids("C", np.arange(1, n + 1), max(5, len(str(n)))),
        "signup_date": pd.Series(start.to_datetime64().astype("datetime64[ns]") + cust["signup"].astype("timedelta64[D]")),
        "channel": _strings(CHANNELS, cust["channel"]),
        "engagement_score": cust["engagement"].astype(np.float64),
        "country": _strings(COUNTRIES[0], cust["country"]),
        "true_segment": _strings([s.name for s in SEGMENTS], cust["segment"]),
    })


def _inventory(rng: np.random.Generator, frame: pd.DataFrame, products: Arrays, product_ids: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """Stock = recent daily demand * a planted cover (0.3..3 lead times); at risk: cover < lead time.

    Recent demand = sales units in the `DEMAND_WINDOW_DAYS` days ending on the last order date (the
    stockout KPI's default), so the KPI recovers `at_risk` exactly."""
    n = len(products["category"])
    days = frame["order_date"].to_numpy().astype("datetime64[D]")
    recent = (days > days.max() - np.timedelta64(DEMAND_WINDOW_DAYS, "D")) & ~frame["returned"].to_numpy()
    code = frame["product_id"].str.slice(1).astype("int64").to_numpy() - 1
    rate = np.bincount(code[recent], weights=frame["quantity"].to_numpy()[recent], minlength=n) / DEMAND_WINDOW_DAYS
    lead = np.array([LEAD_TIME_DAYS[c] for c in CATEGORIES])[products["category"]] + rng.integers(-2, 3, size=n)
    cover = lead * rng.uniform(0.3, 3.0, size=n)
    stock = np.where(rate > 0, np.round(rate * cover), rng.integers(0, 50, size=n)).astype(np.int64)
    at_risk = (rate > 0) & (stock < rate * lead)
    inventory = pd.DataFrame({
        "product_id": product_ids,
        "category": _strings(list(CATEGORIES), products["category"]),
        "stock_on_hand": stock,
        "lead_time_days": lead.astype(np.int64),
    })
    return inventory, sorted(product_ids[at_risk].tolist())


def _pair_stats(sales: pd.DataFrame, anchor: str, items: list[str]) -> dict[str, dict[str, float]]:
    """Realised confidence (anchor -> item) and lift of each bundle item over the sales orders."""
    n_orders = sales["order_id"].nunique()
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


def _truth(options: dict[str, Any], cust: Arrays, product_ids: pd.Series, bundles: list[dict[str, Any]],
           at_risk: list[str], returns_skipped: int, frame: pd.DataFrame) -> dict[str, Any]:
    """Everything planted, as plain JSON types."""
    seg_counts = np.bincount(cust["segment"], minlength=len(SEGMENTS))
    sales = frame.loc[~frame["returned"].to_numpy(), ["order_id", "product_id"]]
    chan = cust["channel"]
    return {
        "options": options,
        "counts": {
            "lines": len(frame), "sales_lines": int((~frame["returned"]).sum()), "return_lines": int(frame["returned"].sum()),
            "orders": int(frame["order_id"].nunique()), "customers": len(cust["segment"]),
            "guest_lines": int(frame["customer_id"].isna().sum()), "returns_after_history_not_generated": returns_skipped,
        },
        "orders": {
            "count": "max(1, Poisson(orders_per_week * active weeks)) per customer, active weeks weighted by intensity",
            "timing": "the i-th of n orders falls uniformly in the i-th of n equal-intensity slices of the active window",
        },
        "segments": {
            s.name: {
                "customers": int(seg_counts[k]), "share": s.share, "orders_per_week": s.orders_per_week,
                "lines_per_order": s.lines_per_order, "units_per_line": s.units_per_line, "price_tilt": s.price_tilt,
                "discount_probability": s.discount_probability, "return_multiplier": s.return_multiplier,
                "signup_span": list(s.signup_span), "churn_span": list(s.churn_span) if s.churn_span else None,
                "channel_mix": dict(zip(CHANNELS, s.channel_mix)),
            }
            for k, s in enumerate(SEGMENTS)
        },
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
        "bundles": [
            {"items": [product_ids.iloc[i] for i in b["items"]], "anchor": product_ids.iloc[b["items"][0]],
             "attach_probability": b["attach_probability"],
             "observed": _pair_stats(sales, product_ids.iloc[b["items"][0]], [product_ids.iloc[i] for i in b["items"][1:]])}
            for b in bundles
        ],
        "returns": {
            "model": "p = sigmoid(logit(return_base[category] * return_multiplier[segment]) + discount_coefficient * discount)",
            "discount_coefficient": RETURN_DISCOUNT_COEF, "delay_days": list(RETURN_DELAY_DAYS),
            "order_id": "a return line carries the order_id of the sale it returns",
        },
        "channels": {
            c: {"engagement_base": ENGAGEMENT_BASE[c], "customers": int((chan == i).sum()),
                "mean_engagement": float(np.round(cust["engagement"][chan == i].mean(), 3)) if (chan == i).any() else None}
            for i, c in enumerate(CHANNELS)
        },
        "engagement": {"formula": "clip(engagement_base[channel] + engagement_offset[segment] + N(0, 8), 0, 100)",
                       "segment_offset": {s.name: s.engagement_offset for s in SEGMENTS}},
        "inventory": {"demand_window_days": DEMAND_WINDOW_DAYS, "rule": "at risk when stock_on_hand / daily demand < lead_time_days",
                      "at_risk_products": at_risk},
    }
