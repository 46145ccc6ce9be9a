"""The synthetic shop: deterministic, contract-valid, sized by its options, and its planted structure is recoverable."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from features import synthetic
from features.btyd.summary import summarise
from features.config_io import ConfigError
from features.contract import line_revenue, sales, validate_schema
from features.kpis import stock_cover
from features.source_config import load_source_config
from tests.helpers import REPO


@pytest.fixture(scope="module")
def shop() -> synthetic.SyntheticData:
    """The default data set (~310k lines, about a second to generate)."""
    return synthetic.generate()


@pytest.fixture(scope="module")
def small() -> synthetic.SyntheticData:
    return synthetic.generate(n_customers=300, weeks=30, seed=5)


def test_same_seed_same_frames_other_seed_differs(small):
    again = synthetic.generate(n_customers=300, weeks=30, seed=5)
    pd.testing.assert_frame_equal(small.lines, again.lines)
    pd.testing.assert_frame_equal(small.customers, again.customers)
    pd.testing.assert_frame_equal(small.inventory, again.inventory)
    assert small.truth == again.truth
    other = synthetic.generate(n_customers=300, weeks=30, seed=6)
    assert len(other.lines) != len(small.lines) or not other.lines.equals(small.lines)


def test_lines_follow_the_contract(small):
    lines = validate_schema(small.lines)
    assert "country" in lines.columns
    ret = lines[lines["returned"]]
    assert len(ret) > 0 and (ret["quantity"] < 0).all() and (lines.loc[~lines["returned"], "quantity"] > 0).all()
    # a return carries the order_id of its sale, and comes after it
    sold = lines[~lines["returned"]].groupby("order_id")["order_date"].max()
    assert ret["order_id"].isin(sold.index).all()
    assert (ret["order_date"].to_numpy() > sold.reindex(ret["order_id"]).to_numpy()).all()
    assert lines["customer_id"].isna().sum() == small.truth["counts"]["guest_lines"] > 0
    assert set(lines["customer_id"].dropna()) <= set(small.customers["customer_id"])
    assert set(lines["product_id"]) <= set(small.inventory["product_id"])
    assert lines["order_date"].is_monotonic_increasing


def test_size_scales_with_customers():
    a = synthetic.generate(n_customers=200, weeks=52, seed=3)
    b = synthetic.generate(n_customers=800, weeks=52, seed=3)
    assert (len(a.customers), len(b.customers)) == (200, 800)
    assert 3.0 < len(b.lines) / len(a.lines) < 5.0


def test_default_size(shop):
    assert 200_000 < len(shop.lines) < 320_000
    assert len(shop.inventory) == 200 and shop.lines["category"].nunique() == 6


def test_write_and_read_round_trip(small, tmp_path):
    back = synthetic.read(small.write(tmp_path / "data"))
    pd.testing.assert_frame_equal(back.lines, small.lines)
    pd.testing.assert_frame_equal(back.customers, small.customers)
    pd.testing.assert_frame_equal(back.inventory, small.inventory)
    assert back.truth == small.truth
    with pytest.raises(FileNotFoundError, match="lines.parquet"):
        synthetic.read(tmp_path)


def test_bad_options_name_the_option():
    with pytest.raises(ValueError, match="n_customers"):
        synthetic.generate(n_customers=3)
    with pytest.raises(ValueError, match="guest_share"):
        synthetic.generate(guest_share=1.5)


def _customer_features(lines: pd.DataFrame) -> pd.DataFrame:
    """Plain per-customer recency, frequency, monetary, average order value and return rate."""
    lines = lines[lines["customer_id"].notna()].assign(revenue=line_revenue)
    bought, back = lines[~lines["returned"]], lines[lines["returned"]]
    g = bought.groupby("customer_id")
    f = pd.DataFrame({
        "recency": (lines["order_date"].max() - g["order_date"].max()).dt.days,
        "frequency": g["order_id"].nunique(),
        "monetary": g["revenue"].sum(),
    })
    f["aov"] = f["monetary"] / f["frequency"]
    f["return_rate"] = (-back.groupby("customer_id")["quantity"].sum()).reindex(f.index, fill_value=0) / g["quantity"].sum()
    return f


def test_planted_segments_are_recovered_by_kmeans(shop):
    feats = _customer_features(shop.lines)
    truth = shop.customers.set_index("customer_id")["true_segment"].reindex(feats.index)
    x = StandardScaler().fit_transform(np.log1p(feats))
    labels = KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(x)
    assert adjusted_rand_score(truth, labels) >= 0.8
    medians = feats.groupby(truth).median()
    assert medians["monetary"].idxmax() == "high-value loyal"
    assert medians["recency"].idxmax() == "churned"
    assert medians["frequency"].idxmin() == "occasional low-value"


def test_churned_customers_stop_halfway(shop):
    churned = shop.customers.loc[shop.customers["true_segment"] == "churned", "customer_id"]
    last = sales(shop.lines)[lambda d: d["customer_id"].isin(churned)]["order_date"].max()
    half = pd.Timestamp(shop.truth["options"]["start"]) + pd.Timedelta(days=shop.truth["options"]["weeks"] * 7 * 0.5)
    assert last < half


def test_bundles_show_high_lift(shop):
    bought = sales(shop.lines)
    n_orders = bought["order_id"].nunique()
    orders_of = bought.groupby("product_id")["order_id"].unique()
    for bundle in shop.truth["bundles"]:
        with_anchor = set(orders_of[bundle["anchor"]])
        for item in bundle["items"][1:]:
            with_item = set(orders_of[item])
            lift = len(with_anchor & with_item) * n_orders / (len(with_anchor) * len(with_item))
            assert lift > 10, (bundle, item, lift)
            # when the anchor is bought, the item follows about as often as planted
            assert len(with_anchor & with_item) / len(with_anchor) == pytest.approx(bundle["attach_probability"], abs=0.1)


def test_returns_rise_with_discount_and_differ_by_category(shop):
    lines = shop.lines
    band = pd.cut(lines["discount"], [-0.01, 0.0, 0.1, 0.2, 0.3, 0.5])
    units = lines.assign(band=band).groupby(["band", "returned"], observed=True)["quantity"].sum().abs().unstack()
    rate = units[True] / units[False]
    assert rate.is_monotonic_increasing and rate.iloc[-1] > 3 * rate.iloc[0]
    assert np.corrcoef(lines["discount"], lines["returned"])[0, 1] > 0.05
    by_cat = lines.groupby(["category", "returned"])["quantity"].sum().abs().unstack()
    observed = by_cat[True] / by_cat[False]
    base = pd.Series({c: p["return_base"] for c, p in shop.truth["categories"].items()})
    assert observed.rank().corr(base.reindex(observed.index).rank()) >= 0.8
    assert observed.idxmax() == base.idxmax() and observed.idxmin() == base.idxmin()


def test_yearly_seasonality_matches_truth(shop):
    """December vs. other months, relative to the flat category: the weekday and active-customer factors cancel.

    Bundle items are left out: they are added to their anchor's orders, so they follow the anchor
    category's season, not their own (a toys anchor lifts its sports items in December)."""
    truth = shop.truth
    flat = min(truth["categories"], key=lambda c: truth["categories"][c]["yearly_amplitude"])
    attached = {item for bundle in truth["bundles"] for item in bundle["items"][1:]}
    bought = sales(shop.lines)[lambda d: ~d["product_id"].isin(attached)]
    dec = bought["order_date"].dt.month == 12
    counts = bought.groupby([dec, "category"]).size().unstack(0)
    observed = (counts[True] / counts.loc[flat, True]) / (counts[False] / counts.loc[flat, False])
    days = pd.date_range(truth["options"]["start"], periods=truth["options"]["weeks"] * 7, freq="D")
    weekday = np.array(list(truth["seasonality"]["weekday_profile"].values()))[days.day_of_week]
    in_dec = days.month == 12
    for category in truth["categories"]:
        ratio = synthetic.seasonal_multiplier(truth, category, days) / synthetic.seasonal_multiplier(truth, flat, days)
        w = weekday * synthetic.seasonal_multiplier(truth, flat, days)
        expected = np.average(ratio[in_dec], weights=w[in_dec]) / np.average(ratio[~in_dec], weights=w[~in_dec])
        assert observed[category] == pytest.approx(expected, rel=0.1), category
    assert observed.idxmax() == "toys" and observed.idxmin() == "sports"


def test_weekday_profile_matches_truth(shop):
    orders = sales(shop.lines).drop_duplicates("order_id")
    share = orders["order_date"].dt.day_of_week.value_counts(normalize=True).sort_index()
    profile = np.array(list(shop.truth["seasonality"]["weekday_profile"].values()))
    np.testing.assert_allclose(share.to_numpy(), profile / profile.sum(), rtol=0.05)


def test_channels_differ_in_volume_and_engagement(shop):
    orders = shop.lines.groupby("channel")["order_id"].nunique()
    assert orders.max() > 1.5 * orders.min()
    engagement = shop.customers.groupby("channel")["engagement_score"].mean()
    planted = pd.Series({c: v["engagement_base"] for c, v in shop.truth["channels"].items()})
    assert list(engagement.sort_values().index) == list(planted.sort_values().index)
    assert engagement.to_dict() == pytest.approx({c: v["mean_engagement"] for c, v in shop.truth["channels"].items()}, abs=1e-3)


def test_signups_precede_purchases_and_inventory_risk_is_recoverable(shop):
    first = sales(shop.lines).groupby("customer_id")["order_date"].min()
    signup = shop.customers.set_index("customer_id")["signup_date"].reindex(first.index)
    assert (signup <= first).all()
    table = stock_cover(shop.lines, shop.inventory, demand_window_days=shop.truth["inventory"]["demand_window_days"])
    assert sorted(table.loc[table["at_risk"], "product_id"]) == shop.truth["inventory"]["at_risk_products"]
    assert 0 < len(shop.truth["inventory"]["at_risk_products"]) < len(shop.inventory)


def test_option_typo_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"n_customer: unknown key"):
        synthetic.generate(n_customer=300)
    with pytest.raises(ConfigError, match=r"n_bundles: .*n_products // 10"):
        synthetic.generate(n_products=100, n_bundles=20)


def test_data_config_synthetic_options_are_checked(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump({"name": "shop", "format": "synthetic", "synthetic": {"n_customer": 300}}))
    with pytest.raises(ConfigError, match=r"shop.yaml: synthetic.n_customer: unknown key"):
        load_source_config(path)
    path.write_text(yaml.safe_dump({"name": "shop", "format": "synthetic", "synthetic": {"n_customers": 300, "weeks": 30}}))
    options = load_source_config(path).synthetic
    assert isinstance(options, synthetic.SyntheticOptions) and (options.n_customers, options.weeks, options.seed) == (300, 30, 42)


# ---- the planted buy-till-you-die cohort (issue 14) ----

#: sha256 of the default shop's lines, customers and inventory (pd.util.hash_pandas_object, index included),
#: recorded with the generator as it was before the cohort existed (commit 6de0706): the default data is unchanged
DEFAULT_FRAMES_SHA256 = "22eb9a9c860cc51cf738140d75c032bd218278fddfd31499ab08bdb2311c21ff"


def _frames_digest(data: synthetic.SyntheticData) -> str:
    h = hashlib.sha256()
    for frame in (data.lines, data.customers, data.inventory):
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def cohort() -> synthetic.SyntheticData:
    return synthetic.generate(n_customers=300, weeks=30, seed=5, clv_customers=3000, clv_acquisition_weeks=6)


def test_default_options_give_the_frames_they_gave_before_the_cohort(shop):
    assert shop.truth["options"]["clv_customers"] == 0 and "clv" not in shop.truth
    assert _frames_digest(shop) == DEFAULT_FRAMES_SHA256


def test_the_cohort_leaves_the_rest_of_the_shop_unchanged(small, cohort):
    shop_part = cohort.lines[~cohort.lines["customer_id"].str.startswith("L", na=False)].reset_index(drop=True)
    pd.testing.assert_frame_equal(shop_part, small.lines)
    pd.testing.assert_frame_equal(cohort.customers.iloc[: len(small.customers)], small.customers)


def test_cohort_records_its_planted_parameters_and_follows_the_contract(cohort):
    clv = cohort.truth["clv"]
    assert clv["bgnbd"] == {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5} and clv["gamma_gamma"] == {"p": 6.0, "q": 4.0, "v": 15.0}
    assert (clv["unit"], clv["model"], clv["customers"], clv["acquisition_weeks"]) == ("W", "bgnbd", 3000, 6)
    lines = validate_schema(cohort.lines)
    assert lines["order_date"].is_monotonic_increasing
    mine = lines[lines["customer_id"].str.startswith("L", na=False)]
    assert mine["customer_id"].nunique() == 3000 and set(mine["customer_id"]) <= set(cohort.customers["customer_id"])
    assert mine["order_id"].str.startswith("LO").all() and not lines.loc[~lines.index.isin(mine.index), "order_id"].str.startswith("L").any()
    assert not mine["returned"].any() and set(mine["product_id"]) <= set(cohort.inventory["product_id"])
    assert len(mine) == clv["lines"] and mine["order_id"].nunique() == clv["purchases"]
    first = mine.groupby("customer_id")["order_date"].min().dt.normalize()
    signup = cohort.customers.set_index("customer_id")["signup_date"].reindex(first.index)
    assert (signup == first).all() and first.max() < pd.Timestamp(cohort.truth["options"]["start"]) + pd.Timedelta(weeks=6)


def test_cohort_summary_counts_the_planted_purchases(cohort):
    """One order per purchase day, so summarise's repeat purchases are the generated ones; spend adds up per order."""
    mine = cohort.lines[cohort.lines["customer_id"].str.startswith("L", na=False)]
    table = summarise(mine, "W").table
    clv = cohort.truth["clv"]
    assert len(table) == clv["customers"] and table["frequency"].sum() == clv["repeat_purchases"]
    assert (table["frequency"] == 0).sum() == clv["customers_without_repeat"]
    spend = mine.assign(value=line_revenue).groupby("order_id")["value"].sum()
    assert (spend >= 0.01).all() and np.allclose(spend * 100, np.round(spend * 100))
    g = clv["gamma_gamma"]  # E[spend] = p E[1/nu] = p v / (q - 1)
    assert spend.mean() == pytest.approx(g["p"] * g["v"] / (g["q"] - 1), rel=0.1)


def test_cohort_is_deterministic_per_seed_and_mbgnbd_drops_more(cohort):
    again = synthetic.generate(n_customers=300, weeks=30, seed=5, clv_customers=3000, clv_acquisition_weeks=6)
    assert _frames_digest(again) == _frames_digest(cohort) and again.truth == cohort.truth
    other = synthetic.generate(n_customers=300, weeks=30, seed=6, clv_customers=3000, clv_acquisition_weeks=6)
    assert other.truth["clv"]["purchases"] != cohort.truth["clv"]["purchases"]
    modified = synthetic.generate(n_customers=300, weeks=30, seed=5, clv_customers=3000, clv_acquisition_weeks=6, clv_model="mbgnbd")
    assert modified.truth["clv"]["alive_at_end"] < cohort.truth["clv"]["alive_at_end"]
    assert modified.truth["clv"]["repeat_purchases"] < cohort.truth["clv"]["repeat_purchases"]


def test_cohort_options_are_checked():
    with pytest.raises(ConfigError, match=r"clv_acquisition_weeks \(30\) must be below weeks \(30\)"):
        synthetic.generate(weeks=30, clv_customers=10, clv_acquisition_weeks=30)
    with pytest.raises(ConfigError, match=r"clv_q: Input should be greater than 1"):
        synthetic.generate(clv_customers=10, clv_q=1.0)
    with pytest.raises(ConfigError, match=r"clv_customers: Input should be greater than or equal to 0"):
        synthetic.generate(clv_customers=-1)


def test_synthetic_clv_config_generates_its_cohort_quickly():
    from features.sources import load

    t0 = time.perf_counter()
    loaded = load(REPO / "configs" / "data" / "synthetic_clv.yaml")
    assert time.perf_counter() - t0 < 2.0
    options = load_source_config(REPO / "configs" / "data" / "synthetic_clv.yaml").synthetic
    assert options.clv_customers == 6000 and options.weeks == 104
    assert loaded.lines["customer_id"].str.startswith("L", na=False).groupby(loaded.lines["customer_id"]).any().sum() == 6000
