"""CLV figures and the KPI report's customer-lifetime section (issue 14, "Plots")."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from features.btyd.bgnbd import BetaGeoParams, p_alive
from features.btyd.plots import (
    calibration_bins, calibration_holdout_figure, clv_by_segment_figure, p_alive_grid, p_alive_matrix_figure,
)
from features.btyd.report import MIN_HISTORY, holdout_length, lifetime_section, naive_holdout_purchases, spend_caveat
from features.rfm import SEGMENTS
from features.sources import validate_frame

BG = BetaGeoParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # the CDNOW weekly fit of Fader, Hardie & Lee (2005)


def _drawn(fig: Figure) -> Figure:
    fig.savefig(io.BytesIO(), format="png")
    return fig


def simulated_lines(n: int = 500, weeks: int = 60, seed: int = 3, repeat: bool = True) -> pd.DataFrame:
    """Order lines of a BG/NBD shop: rate ~ Gamma(r, alpha) per week, dropout after each purchase ~ Beta(a, b),
    spend per purchase ~ Gamma around a customer mean; first purchases spread over the first third."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-02")
    rows = []
    for c in range(n):
        rate, drop = rng.gamma(2.0, 1 / 8.0), rng.beta(1.0, 6.0)
        mean_spend = rng.gamma(4.0, 10.0)
        t = rng.uniform(0, weeks / 3)
        while t < weeks:
            rows.append((f"C{c}", start + pd.Timedelta(days=int(t * 7)), rng.gamma(8.0, mean_spend / 8.0)))
            if not repeat or rng.random() < drop:
                break
            t += rng.exponential(1 / rate)
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date", "unit_price"])
    return frame.assign(order_id=[f"O{i}" for i in range(len(frame))], product_id="P1", quantity=1)


@pytest.fixture(scope="module")
def shop() -> pd.DataFrame:
    return validate_frame(simulated_lines(), "btyd-test").lines


@pytest.fixture(scope="module")
def section(shop) -> tuple[dict, dict]:
    return lifetime_section(shop)


def test_calibration_bins_are_the_groupby_means_with_a_pooled_tail():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"frequency": rng.poisson(3, 400).astype(float), "frequency_holdout": rng.poisson(2, 400).astype(float),
                          "duration_holdout": 13.0})
    predicted = rng.gamma(2.0, 1.0, 400)
    expected = pd.DataFrame({"b": table["frequency"].clip(upper=7), "a": table["frequency_holdout"], "p": predicted}).groupby("b")
    fig = _drawn(calibration_holdout_figure(table, predicted, tail=7, unit="W"))
    ax, counts = fig.axes
    actual_line, predicted_line = ax.get_lines()[:2]
    np.testing.assert_allclose(actual_line.get_ydata(), expected["a"].mean().to_numpy())
    np.testing.assert_allclose(predicted_line.get_ydata(), expected["p"].mean().to_numpy())
    assert [bar.get_height() for bar in counts.patches] == expected.size().tolist()  # customers per bin
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [*map(str, range(7)), "7+"] and (table["frequency"] > 7).any()
    assert "13 weeks" in ax.get_title() and ax.get_ylabel() == "mean purchases in the holdout period"
    assert counts.get_ylabel() == "customers in the bin"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["actual", "predicted by the model", "customers in the bin (right axis)"]


def test_calibration_tail_follows_frequent_buyers():
    sparse = pd.DataFrame({"frequency": np.r_[np.zeros(85), np.arange(1.0, 16.0)], "frequency_holdout": 0.0})
    assert list(calibration_bins(sparse, np.zeros(100))["label"])[-1] == "7+"  # 90th percentile 5.1: the classic 7+
    busy = pd.DataFrame({"frequency": np.arange(100.0), "frequency_holdout": 0.0})
    bins = calibration_bins(busy, np.zeros(100))
    assert list(bins["label"])[-1] == "25+" and bins["customers"].iloc[-1] == 75  # capped at 25 bins
    middle = pd.DataFrame({"frequency": np.arange(20.0), "frequency_holdout": 0.0})
    assert list(calibration_bins(middle, np.zeros(20))["label"])[-1] == "18+"  # ceil of the 90th percentile (17.1)


def test_calibration_bins_without_a_tail_and_missing_columns():
    table = pd.DataFrame({"frequency": [0.0, 1.0, 1.0, 3.0], "frequency_holdout": [0.0, 2.0, 0.0, 5.0]})
    bins = calibration_bins(table, [0.1, 0.5, 0.7, 3.0])
    assert list(bins["label"]) == ["0", "1", "3"] and list(bins["customers"]) == [1, 2, 1]  # no "+" when nothing is pooled
    assert bins.loc[1, "predicted"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="frequency_holdout"):
        calibration_holdout_figure(table.drop(columns="frequency_holdout"), [0.0] * 4)
    with pytest.raises(ValueError, match="3 values for 4 customers"):
        calibration_bins(table, [0.0] * 3)


def test_p_alive_heatmap_is_p_alive_on_the_grid():
    fig = p_alive_matrix_figure(BG, "bgnbd", 10, 30.0, 30.0, unit="W")
    ax, bar = fig.axes
    image = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    frequencies, recencies, matrix = p_alive_grid(BG, "bgnbd", 10, 30.0, 30.0)
    assert image.shape == (11, 31) and list(frequencies) == list(range(11)) and recencies[[0, -1]].tolist() == [0.0, 30.0]
    np.testing.assert_allclose(image, matrix, equal_nan=True)
    for i, j in [(1, 0), (3, 12), (10, 30)]:  # each cell is the model's own P(alive) of that customer
        assert image[i, j] == pytest.approx(float(p_alive(BG, "bgnbd", [i], [recencies[j]], [30.0])[0]))
    x, tx, T = 2, 10.0, 30.0  # Fader, Hardie & Lee (2005) eq. (7), worked by hand here
    by_hand = 1 / (1 + BG.a / (BG.b + x - 1) * ((BG.alpha + T) / (BG.alpha + tx)) ** (BG.r + x))
    assert image[2, 10] == pytest.approx(by_hand, rel=1e-9)
    assert np.isnan(image[0, 1:]).all() and image[0, 0] == pytest.approx(1.0)  # no repeat purchase: recency 0 only
    assert (np.diff(image[1:], axis=1) > 0).all()  # a later last purchase means more likely alive
    assert ax.get_ylabel() == "repeat purchases (frequency)" and "weeks" in ax.get_xlabel()
    assert bar.get_ylabel() == "probability the customer is still active" and "aged 30 weeks" in ax.get_title()
    with pytest.raises(ValueError, match="exceeds the customer age"):
        p_alive_grid(BG, "bgnbd", 5, 31.0, 30.0)


def test_clv_by_segment_boxes_medians_and_counts():
    rng = np.random.default_rng(1)
    segments = np.array(["lost"] * 50 + ["champions"] * 30 + ["a new name"] * 20, dtype=object)
    values = np.concatenate([rng.exponential(2, 50), rng.gamma(5, 200, 30), rng.gamma(2, 50, 20)])
    ax = _drawn(clv_by_segment_figure(values, segments)).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a new name (20)", "lost (50)", "champions (30)"]  # vocabulary order from the top, others after
    boxes = {"a new name": values[80:], "lost": values[:50], "champions": values[50:80]}
    medians = [line for line in ax.get_lines() if line.get_color() == "#dd8452"]
    assert len(medians) == 3
    for line, name in zip(medians, ["a new name", "lost", "champions"]):
        assert line.get_xdata()[0] == pytest.approx(np.median(boxes[name]))
    notes = [t.get_text() for t in ax.texts]
    assert f"median {np.median(boxes['champions']):,.0f}" in notes
    tiny = clv_by_segment_figure([1e-5, 2e-5, 10.0, 20.0], ["at risk", "at risk", "loyal", "loyal"]).axes[0]
    assert "median < 0.01" in [t.get_text() for t in tiny.texts]
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0.0 and ax.get_ylabel() == "segment (customers)"
    with pytest.raises(ValueError, match="3 CLV values for 2"):
        clv_by_segment_figure([1.0, 2.0, 3.0], ["a", "b"])


def test_holdout_rule_and_naive_baseline():
    assert holdout_length(16) == 4 and holdout_length(10) == 4 and holdout_length(104) == 26
    table = pd.DataFrame({"frequency": [0.0, 3.0, 2.0], "T": [0.0, 12.0, 4.0], "duration_holdout": [8.0, 8.0, 8.0]})
    np.testing.assert_allclose(naive_holdout_purchases(table), [0.0, 2.0, 4.0])


def test_lifetime_section_on_a_simulated_shop(section, shop):
    from features.btyd.fit import fit_beta_geo
    from features.btyd.summary import summarise

    head, figures = section
    assert head.get("status") != "unavailable", head
    assert set(figures) == {"clv_calibration_holdout", "clv_p_alive_matrix", "clv_by_segment"}
    whole = summarise(shop, unit="W").table
    assert head["customers"] == len(whole) == shop["customer_id"].nunique()
    refit = fit_beta_geo(whole["frequency"], whole["recency"], whole["T"], model="bgnbd", penalizer=head["bgnbd_fit"]["penalizer"])
    assert head["bgnbd_fit"]["r"] == pytest.approx(refit.params.r) and head["bgnbd_fit"]["b"] == pytest.approx(refit.params.b)
    assert 0 < head["mean_p_alive"] < 1 and head["mean_clv_52_weeks"] > 0 and -1 <= head["frequency_spend_correlation"] <= 1
    holdout = head["holdout_check"]
    assert holdout["holdout_weeks"] == holdout_length((shop["order_date"].max() - shop["order_date"].min()).days / 7)
    assert holdout["model_rmse"] < holdout["baseline_rmse"]  # BG/NBD data: the model beats "keep your rate"
    json.dumps(head)  # JSON-ready as it is
    segment_labels = [t.get_text().rsplit(" (", 1)[0] for t in figures["clv_by_segment"].axes[0].get_yticklabels()]
    assert set(segment_labels) <= set(SEGMENTS)  # the KPI report's RFM segment names


def test_days_and_weeks_tell_the_same_story(section, shop):
    """52 weeks are 364 days: in days the CLV horizon, the holdout and P(alive) are the same calendar time."""
    weeks, _ = section
    days, _ = lifetime_section(shop, unit="D")
    assert days["holdout_check"]["holdout_days"] == 7 * weeks["holdout_check"]["holdout_weeks"]
    assert days["mean_p_alive"] == pytest.approx(weeks["mean_p_alive"], rel=1e-3)
    assert days["mean_clv_52_weeks"] == pytest.approx(weeks["mean_clv_52_weeks"], rel=0.01)  # discounting per day vs per week
    assert weeks["spend_model_caveat"].startswith("none")  # spend drawn independently of the purchase rate
    assert spend_caveat(0.45).startswith("frequency and spend per purchase correlate (0.45)")


def test_lifetime_section_says_why_it_is_unavailable():
    once = validate_frame(simulated_lines(n=80, repeat=False), "once").lines
    head, figures = lifetime_section(once)
    assert head["status"] == "unavailable" and "repeat" in head["reason"].lower() and figures == {}
    short = once[once["order_date"] < once["order_date"].min() + pd.Timedelta(weeks=MIN_HISTORY - 1)]
    head, _ = lifetime_section(short)
    assert head["status"] == "unavailable" and f"at least {MIN_HISTORY} weeks" in head["reason"]
    # 60% of them buy first just before the holdout starts, then three more times in quick succession just
    # after it, then never again: the whole history sees the burst and the weeks of silence after it, so
    # dropout is identified there; a few others buy once more on the span's last day. Every repeat purchase
    # falls in the holdout (the span's last quarter): none in the calibration period.
    last = once["order_date"].max() + pd.Timedelta(days=30)
    cutoff = last - pd.Timedelta(weeks=holdout_length((last - once["order_date"].min()).days / 7))
    late = once.sample(frac=0.6, random_state=0)
    firsts = late.assign(order_date=cutoff - pd.to_timedelta(np.arange(len(late)) % 5 + 1, unit="D"))
    bursts = [late.assign(order_date=cutoff + pd.to_timedelta(np.arange(len(late)) % 5 + 1 + 2 * j, unit="D")) for j in range(3)]
    rest = once.drop(late.index)
    tail = rest.sample(n=5, random_state=1).assign(order_date=last)
    lines = pd.concat([rest, firsts, *bursts, tail], ignore_index=True).assign(order_id=lambda f: f.index.astype(str))
    head, figures = lifetime_section(lines)
    check = head["holdout_check"]  # the whole history still has its figures; only the holdout check is missing
    assert check["status"] == "unavailable" and check["reason"].startswith("the calibration period up to ")
    assert "repeat purchase" in check["reason"] and set(figures) == {"clv_p_alive_matrix", "clv_by_segment"}
    guests = validate_frame(simulated_lines(n=20).assign(customer_id=None), "guests").lines
    assert lifetime_section(guests)[0]["reason"] == "no sales line has a customer id"


def test_free_repeat_purchases_are_left_out_of_the_spend_fit():
    raw = simulated_lines(n=300, seed=4)
    free = raw["customer_id"].isin([f"C{i}" for i in range(30)])
    head, figures = lifetime_section(validate_frame(raw.assign(unit_price=raw["unit_price"].where(~free, 0.0)), "free").lines)
    repeaters = raw[free].groupby("customer_id")["order_date"].nunique().gt(1).sum()
    assert head["repeat_customers_without_spend"] == repeaters > 0 and len(figures) == 3
    assert head["gamma_gamma_fit"]["customers"] == head["repeat_customers"] - repeaters
    head, _ = lifetime_section(validate_frame(raw.assign(unit_price=0.0), "all free").lines)
    assert head["reason"] == "no repeat purchase has a positive value: Gamma-Gamma needs spend > 0"


def test_written_kpi_report_has_the_lifetime_block(tmp_path):
    from features.jsonsafe import json_safe
    from features.kpis import kpi_report
    from training.cli.kpis import compute_and_write_kpis

    loaded = validate_frame(simulated_lines(n=200, seed=8), "btyd-test")
    page = compute_and_write_kpis(loaded, tmp_path).read_text()
    block = page[page.index('<h2 id="lifetime">'):]
    assert "Customer lifetime (BG/NBD + Gamma-Gamma)" in block and "mean p alive" in block and "model rmse" in block
    for name in ("clv_calibration_holdout", "clv_p_alive_matrix", "clv_by_segment"):
        assert f'<img alt="{name}" src="data:image/png;base64,' in block and (tmp_path / f"{name}.png").exists()
    saved = json.loads((tmp_path / "kpis.json").read_text())
    assert saved["kpis"] == json.loads(json.dumps(json_safe(kpi_report(loaded.lines))))  # the KPI payload is unchanged
    assert json.loads((tmp_path / "lifetime.json").read_text())["customers"] == loaded.lines["customer_id"].nunique()


def test_report_page_shows_the_reason():
    from features.report import render_html

    reason = lifetime_section(validate_frame(simulated_lines(n=40, repeat=False), "once").lines)
    page = render_html({}, {}, "t", {}, *reason)
    block = page[page.index('<h2 id="lifetime">'):]
    assert '<p class="na">Not available: ' in block and "repeat" in block.lower() and "<img" not in block
    assert '<h2 id="lifetime">' not in render_html({}, {}, "t", {})  # no section asked for, none shown


@pytest.mark.realdata
@pytest.mark.slow  # loads 540k lines (~3 s)
def test_uci_online_retail_gets_its_headline():
    """On UCI any BG/NBD penalty drives a to its bound; the plain MLE (a ~ 0.003) is the fallback, so the page has figures."""
    from features.sources import load
    from tests.helpers import REPO, shared_dataset

    shared_dataset("uci_online_retail")
    head, figures = lifetime_section(load(REPO / "configs" / "data" / "uci_online_retail.yaml").lines)
    assert head.get("status") != "unavailable", head.get("reason")
    assert head["customers"] == 4339  # customers with a sales line, the figure every lifetimes tutorial on UCI shows
    assert head["bgnbd_fit"]["penalizer"] in (0.001, 0.0) and 0 < head["mean_p_alive"] <= 1
    assert {"clv_p_alive_matrix", "clv_by_segment"} <= set(figures)
