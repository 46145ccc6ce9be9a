"""Cohort retention: for each cohort month (signup, else first purchase), the share of its customers who buy k months later.

Cohort = month of `customers.signup_date` when the customers table gives one, else the month of
the customer's first purchase. Cohort size = its customers (from the customers table, including
those who never bought, plus customers seen only in the lines). Cell (cohort, k) = customers of the
cohort with a sales line in calendar month `cohort + k` / cohort size. A cell whose calendar month
lies outside the months the data covers is not observed (None), never 0: a cohort that signed up
before the data starts has no observed early months. Purchases dated before the customer's signup
month are left out of the matrix and counted (`purchases_before_signup`); customers of the table
with neither a signup date nor a purchase belong to no cohort and are counted too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.kpis.base import KpiUnavailable, Prepared, prepare, require_columns



def signups(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The customers table's signup dates: (id, date) of each customer with one (first row per id), and the
    ids listed without one; a signup_date that is not a date is KpiUnavailable naming the rows. The Spark
    engine (features/spark/kpis/cohorts.py) reads the table the same way."""
    require_columns(customers, ["customer_id"], "customers table")
    dates = pd.to_datetime(customers["signup_date"], errors="coerce")
    bad = np.flatnonzero((customers["signup_date"].notna() & dates.isna()).to_numpy())
    if len(bad):
        raise KpiUnavailable(f"customers table: signup_date is not a date in {len(bad)} rows (first rows {bad[:5].tolist()})")
    known = pd.DataFrame({"id": customers["customer_id"].astype("string"), "date": dates})
    no_date = known[known["id"].notna() & known["date"].isna()]["id"]
    return known[known["id"].notna() & known["date"].notna()].drop_duplicates("id"), no_date


def _month(values: np.ndarray) -> np.ndarray:
    """Month index (years * 12 + month) of datetime64 values."""
    return values.astype("datetime64[M]").astype(np.int64)


def _label(month: int) -> str:
    return str(np.datetime64(int(month), "M"))


def _cohort_months(data: Prepared, customers: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Customer ids (sorted union of the table's and the lines') and each one's cohort month, with its source."""
    sales = data.customer_sales
    buyer_ids = sales["customer_id"].to_numpy(dtype=object)
    first = _month(sales["first_day"].to_numpy().astype("datetime64[D]"))
    signup_ids, signup = np.array([], dtype=object), np.array([], dtype=np.int64)
    unplaced = 0
    if customers is not None and "signup_date" in customers.columns:
        known, no_date = signups(customers)
        unplaced = int((~no_date.isin(buyer_ids)).sum())  # no signup date and never bought: in no cohort
        signup_ids = known["id"].to_numpy(dtype=object)
        signup = _month(known["date"].to_numpy().astype("datetime64[D]"))
    ids = np.union1d(signup_ids, buyer_ids)
    in_table = pd.Index(signup_ids).get_indexer(ids)
    as_buyer = pd.Index(buyer_ids).get_indexer(ids)
    has = in_table >= 0
    cohort = np.empty(len(ids), dtype=np.int64)
    cohort[has] = signup[in_table[has]]
    cohort[~has] = first[as_buyer[~has]]  # not in the table (or no signup date): bought, so a buyer
    sources = {"signup_date": int(has.sum()), "first_purchase": int((~has).sum()), "no_signup_date_no_purchase": unplaced}
    return ids, cohort, sources


def cohort_retention(lines: pd.DataFrame | Prepared, customers: pd.DataFrame | None = None) -> dict[str, Any]:
    """Cohort x months-since-the-cohort-month matrix of active-customer shares (see module docstring); `cohort_by`
    says in words what the cohort month is in this data (signup month, else first-purchase month), and
    `average_by_month.months_since_cohort_month` counts from it."""
    data = prepare(lines)
    if data.lines_without_customer == len(data.lines):
        raise KpiUnavailable("no line has a customer id")
    ids, cohort, sources = _cohort_months(data, customers)
    first_m, last_m = (int(_month(np.array([d], dtype="datetime64[D]"))[0]) for d in (data.day.min(), data.last_day))
    late = cohort > last_m  # signed up after the data ends: no observable month
    if late.all():
        raise KpiUnavailable("every customer's signup month is after the last month of the data")
    c0 = int(cohort[~late].min())
    n = last_m - c0 + 1  # cohorts and offsets both span c0..last_m
    codes, line_ids = data.customer
    row_of_code = pd.Index(ids).get_indexer(line_ids)
    mask = data.sale & (codes >= 0)
    row = row_of_code[codes[mask]]
    offset = _month(data.day[mask].astype("datetime64[D]")) - cohort[row]
    before = offset < 0
    pairs = pd.unique(row[~before].astype(np.int64) * n + offset[~before])  # distinct (customer, offset)
    cohort_ix = np.where(late, n, cohort - c0)  # late signups go to a dropped extra row
    active = np.bincount(cohort_ix[pairs // n] * n + pairs % n, minlength=(n + 1) * n)[: n * n].reshape(n, n)
    sizes = np.bincount(cohort_ix, minlength=n + 1)[:n]
    calendar = c0 + np.arange(n)[:, None] + np.arange(n)[None, :]
    matrix = np.where(calendar <= last_m, active / np.maximum(sizes, 1)[:, None], np.nan)
    matrix[calendar < first_m] = np.nan
    keep = sizes > 0
    return {
        "cohort_by": _cohort_by(sources),
        "cohort_source": sources,
        "customers": int(len(ids)),
        "lines_without_customer": data.lines_without_customer,
        "purchases_before_signup": int(before.sum()),
        "signups_after_data": int(late.sum()),
        "first_month": _label(first_m),
        "last_month": _label(last_m),
        "matrix": _wide(matrix[keep], sizes[keep], [_label(c0 + i) for i in np.flatnonzero(keep)]),
        "average_by_month": _average(matrix[keep], sizes[keep]),
    }


def _cohort_by(sources: dict[str, int]) -> str:
    """What a cohort month is in this data, in words: plots and pages must not say "signup" when it is not."""
    if not sources["signup_date"]:
        return "first purchase month"
    return "signup month" if not sources["first_purchase"] else "signup month (first purchase month where none)"


def _wide(matrix: np.ndarray, sizes: np.ndarray, labels: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(matrix, columns=[f"m{k}" for k in range(matrix.shape[1])])
    table = table.loc[:, table.notna().any()]
    table.insert(0, "customers", sizes)
    table.insert(0, "cohort", labels)
    return table


def _average(matrix: np.ndarray, sizes: np.ndarray) -> pd.DataFrame:
    """Size-weighted mean retention per months-since-signup over the cohorts that observe it."""
    observed = ~np.isnan(matrix)
    weights = np.where(observed, sizes[:, None], 0)
    avg = (np.nan_to_num(matrix) * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1)
    table = pd.DataFrame({"months_since_cohort_month": np.arange(matrix.shape[1]), "retention": avg, "cohorts_observed": observed.sum(axis=0)})
    return table[observed.any(axis=0)].reset_index(drop=True)
