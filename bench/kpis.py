"""All KPIs on ~1M synthetic order lines: ecomlab's `kpi_report` against a notebook-style implementation.

The notebook style is how these KPIs are usually first written: per-customer `groupby().apply`,
Python loops over customers, products and cohorts, `DataFrame.apply(axis=1)` for row rules. It
computes the same definitions (churn window, textbook CLV, average-rank RFM quintiles, cohort
shares, return rates, days of cover), and the script checks that both agree on the key figures.

Each implementation runs in a fresh process that first reads the same Parquet data. Peak memory is
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (peak resident set size, Linux KiB) with the high-water
mark reset after loading (`/proc/self/clear_refs`), so it is the peak while the KPIs run; printed
with the resident size after loading and the rise over it (what the KPIs added at their peak).
Where the reset is not allowed the peak includes the load, and the script says so. tracemalloc is
not used: it misses Arrow string buffers and slows the Python-heavy notebook code.

    .venv/bin/python bench/kpis.py [--lines 1000000] [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features import synthetic  # noqa: E402
from features.kpis import headline, kpi_report  # noqa: E402
from features.kpis.rfm import SEGMENT_GRID  # noqa: E402

LINES_PER_CUSTOMER = 62  # the default shop: ~309k lines for 5,000 customers
CHURN_DAYS, DEMAND_DAYS, HIGH_VALUE = 90, 28, 0.2


def notebook_report(lines: pd.DataFrame, customers: pd.DataFrame, inventory: pd.DataFrame) -> dict[str, float]:
    """The same KPIs written the straightforward way (loops and apply); returns the key figures."""
    df = lines.copy()
    df["revenue"] = df["quantity"] * df["unit_price"] * (1 - df["discount"])
    df["day"] = df["order_date"].dt.normalize()
    sales, rets = df[~df["returned"]], df[df["returned"]]
    ref = df["day"].max()
    out: dict[str, float] = {}

    order_totals = sales.groupby("order_id")["revenue"].sum()
    out["average_order_value"] = order_totals.mean()
    known = sales.dropna(subset=["customer_id"])
    per_customer = known.groupby("customer_id").apply(lambda g: pd.Series({
        "orders": g["order_id"].nunique(), "revenue": g["revenue"].sum(),
        "first": g["day"].min(), "last": g["day"].max(),
    }))
    churned = 0
    for _, row in per_customer.iterrows():
        if (ref + pd.Timedelta(days=1) - row["last"]).days > CHURN_DAYS:  # recency counts to the day after the data
            churned += 1
    churn_rate = churned / len(per_customer)
    out["churn_rate"] = churn_rate
    apv = per_customer["revenue"].sum() / per_customer["orders"].sum()
    pf = per_customer["orders"].sum() / len(per_customer)
    out["clv_mean"] = apv * pf / churn_rate
    per_customer["clv"] = per_customer.apply(lambda r: r["revenue"] / churn_rate, axis=1)
    top = per_customer.sort_values("clv", ascending=False).head(math.ceil(HIGH_VALUE * len(per_customer)))
    out["high_value_revenue_share"] = top["revenue"].sum() / per_customer["revenue"].sum()
    out["orders_per_customer"] = per_customer["orders"].mean()

    for column in ("category", "channel"):
        sales.groupby(column).apply(lambda g: pd.Series({
            "revenue": g["revenue"].sum(), "orders": g["order_id"].nunique(),
            "customers": g["customer_id"].nunique(), "units": g["quantity"].sum(),
        }))
    engagement = customers.groupby("channel")["engagement_score"].mean()
    out["engagement_email"] = engagement.get("email", float("nan"))

    out["cohort_m1_retention"] = _notebook_cohorts(known, customers, df["day"].min(), ref)
    net = df.dropna(subset=["customer_id"]).groupby("customer_id")["revenue"].sum()  # RFM monetary is net of returns
    out["rfm_champions"] = float(_notebook_rfm(per_customer.assign(revenue=net), ref).eq("champions").sum())

    by_cat = df.groupby("category").apply(lambda g: -g.loc[g["returned"], "quantity"].sum() / g.loc[~g["returned"], "quantity"].sum())
    out["return_rate"] = -rets["quantity"].sum() / sales["quantity"].sum()
    out["return_rate_max_category"] = by_cat.max()
    out["return_discount_correlation"] = df["discount"].corr(df["returned"].astype(float))

    recent = sales[sales["day"] > ref - pd.Timedelta(days=DEMAND_DAYS)]
    at_risk = 0
    for _, item in inventory.iterrows():
        demand = recent.loc[recent["product_id"] == item["product_id"], "quantity"].sum() / DEMAND_DAYS
        if demand > 0 and item["stock_on_hand"] / demand < item["lead_time_days"]:
            at_risk += 1
    out["products_at_risk"] = float(at_risk)
    return out


def _notebook_cohorts(known: pd.DataFrame, customers: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> float:
    """Loop over customers: cohort month from signup (else first purchase), the months they bought in;
    returns the size-weighted share active one month after signup, over cohorts that observe it."""
    signup = dict(zip(customers["customer_id"], customers["signup_date"]))
    first_month, last_month = first.to_period("M"), last.to_period("M")
    active: dict[tuple, int] = defaultdict(int)
    sizes: dict = defaultdict(int)
    for cid, g in known.groupby("customer_id"):
        cohort = pd.Timestamp(signup.get(cid, g["day"].min())).to_period("M")
        sizes[cohort] += 1
        for month in set(g["day"].dt.to_period("M")):
            if month >= cohort:
                active[(cohort, (month - cohort).n)] += 1
    bought = set(known["customer_id"])
    for cid, date in signup.items():  # customers who never bought still count in their cohort
        if cid not in bought:
            sizes[pd.Timestamp(date).to_period("M")] += 1
    num = den = 0.0
    for cohort, size in sizes.items():
        calendar = cohort + 1
        if first_month <= calendar <= last_month:
            num += active[(cohort, 1)]
            den += size
    return num / den


def _notebook_rfm(per_customer: pd.DataFrame, ref: pd.Timestamp) -> pd.Series:
    rfm = pd.DataFrame({
        "recency": per_customer["last"].apply(lambda d: (ref - d).days),
        "frequency": per_customer["orders"].astype(float),
        "monetary": per_customer["revenue"].astype(float),
    })
    n = len(rfm)
    score = lambda s: s.rank(method="average").apply(lambda r: int(5 * (r - 0.5) // n) + 1)  # noqa: E731
    rfm["r"], rfm["f"], rfm["m"] = score(-rfm["recency"]), score(rfm["frequency"]), score(rfm["monetary"])
    return rfm.apply(lambda row: SEGMENT_GRID[int(row["r"]) - 1][int(row["f"] + row["m"] + 1) // 2 - 1], axis=1)


def ecomlab_figures(report: dict) -> dict[str, float]:
    h = headline(report)
    cohort = report["cohort_retention"]["average_by_month"]
    segments = {r["segment"]: r["customers"] for r in report["rfm"]["segments"]}
    return {
        "average_order_value": h["average_order_value"], "churn_rate": h["churn_rate"], "clv_mean": h["clv_mean"],
        "high_value_revenue_share": h["high_value_revenue_share"], "orders_per_customer": h["orders_per_customer"],
        "engagement_email": next(r["mean_engagement"] for r in report["engagement"]["by_channel"] if r["channel"] == "email"),
        "cohort_m1_retention": next(r["retention"] for r in cohort if r["months_since_cohort_month"] == 1),
        "rfm_champions": float(segments.get("champions", 0)),
        "return_rate": h["return_rate"],
        "return_rate_max_category": max(r["return_rate"] for r in report["returns"]["by_category"]),
        "return_discount_correlation": h["return_discount_correlation"],
        "products_at_risk": float(h["products_at_risk"]),
    }


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size (Linux /proc), else the peak so far."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return maxrss_mib()


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current size (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(impl: str, folder: Path, repeat: int) -> None:
    """Child process: load the data, run one implementation, print JSON (times, memory, figures)."""
    data = synthetic.read(folder)
    gc.collect()
    loaded = rss_mib()
    reset = reset_peak()
    times = []
    for _ in range(repeat if impl == "ecomlab" else 1):
        t0 = time.perf_counter()
        if impl == "ecomlab":
            options = {"churn_window_days": CHURN_DAYS, "demand_window_days": DEMAND_DAYS, "high_value_share": HIGH_VALUE}
            figures = ecomlab_figures(kpi_report(data.lines, data.customers, data.inventory, options))
        else:
            figures = notebook_report(data.lines, data.customers, data.inventory)
        times.append(time.perf_counter() - t0)
    result = {"times": times, "rss_loaded": loaded, "maxrss": maxrss_mib(), "peak_reset": reset, "figures": figures}
    print(json.dumps(result, default=float))


def run_child(impl: str, folder: Path, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--data", str(folder), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise SystemExit(f"{impl} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="approximate number of order lines")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="ecomlab runs (the notebook style runs once)")
    parser.add_argument("--worker", choices=["ecomlab", "notebook"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = synthetic.generate(n_customers=max(10, args.lines // LINES_PER_CUSTOMER), seed=args.seed)
        gen = time.perf_counter() - t0
        data.write(Path(tmp))
        print(f"data: {len(data.lines):,} order lines, {len(data.customers):,} customers, {len(data.inventory)} products "
              f"(synthetic.generate: {gen:.2f} s); {os.cpu_count()} CPUs", flush=True)
        del data
        eco = run_child("ecomlab", Path(tmp), args.repeat)
        nb = run_child("notebook", Path(tmp), 1)
    report(eco, nb)


def report(eco: dict, nb: dict) -> None:
    t_eco, t_nb = eco["times"], nb["times"][0]
    print("\nimplementation        wall time (s)                peak RSS (MiB)   RSS after load (MiB)   rise (MiB)")
    rows = (("ecomlab kpi_report", eco, f"first {t_eco[0]:6.2f}, best {min(t_eco):6.2f}"), ("notebook style", nb, f"{t_nb:6.2f}"))
    for label, res, wall in rows:
        print(f"{label:21s} {wall:28s} {res['maxrss']:14.0f}   {res['rss_loaded']:20.0f}   {res['maxrss'] - res['rss_loaded']:10.0f}")
    print(f"speedup: {t_nb / t_eco[0]:.1f}x on the first call, {t_nb / min(t_eco):.1f}x on the best of {len(t_eco)}")
    reset = eco["peak_reset"] and nb["peak_reset"]
    print("memory: resource.getrusage ru_maxrss of a fresh process per implementation, "
          + ("high-water mark reset after loading the data" if reset else "INCLUDING the data load (peak reset not permitted here)"))
    print("\nfigure                          ecomlab        notebook   agree")
    bad = 0
    for key, value in eco["figures"].items():
        other = nb["figures"][key]
        same = math.isclose(value, other, rel_tol=1e-6, abs_tol=1e-9)
        bad += not same
        print(f"{key:30s} {value:12.6g} {other:12.6g}   {'yes' if same else 'NO'}")
    if bad:
        raise SystemExit(f"{bad} figure(s) differ between the implementations")


if __name__ == "__main__":
    main()
