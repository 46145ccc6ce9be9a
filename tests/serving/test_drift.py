"""Issue 16, drift: reference profiles, the bounded window per served version and the statistics (fast lane)."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from features.config_io import ConfigError, parse_model
from features.profile import categorical_profile, compare, compare_frame, counts_of, make_profile, numeric_profile
from serving.drift import DriftMonitor, Ring
from serving.drift_profile import read_profile
from serving.settings import DriftSettings, ServeSettings
from serving.store import Served
from training.profiles import horizon_profile

CATEGORIES = [f"sku{i}" for i in range(40)]
ZIPF = 1.0 / np.arange(1, 41)
ZIPF /= ZIPF.sum()


def training_profile(seed: int = 0, n: int = 5000) -> dict:
    rng = np.random.default_rng(seed)
    return make_profile("test", {
        "amount": numeric_profile(rng.lognormal(3.0, 1.0, n)),
        "orders": numeric_profile(rng.poisson(2.0, n)),  # discrete: tied quantiles merge into fewer bins
        "items": categorical_profile(rng.choice(CATEGORIES, n, p=ZIPF)),
    })


def draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict:
    return {
        "amount": rng.lognormal(3.0 + shift, 1.0, n),
        "orders": rng.poisson(2.0 + 2 * shift, n),
        "items": rng.choice(CATEGORIES, n, p=np.roll(ZIPF, int(10 * shift))),
    }


def served(profile: dict | None, version: str = "1") -> Served:
    return Served("segmenter", "m", "champion", version, "run", object(), {}, float(version), profile)


def test_inputs_from_the_training_distribution_stay_ok() -> None:
    """1,000 seeded windows of min_window (1,000) rows from the training distribution: per feature, the share
    of windows that are not ok (the false-alarm rate) stays at most 1% (measured: 0 of 1,000 for each; the
    99th percentile of PSI is 0.026 numeric, 0.047 for a 21-bin categorical feature)."""
    profile, s = training_profile(), DriftSettings()
    rng = np.random.default_rng(1)
    psis: dict[str, list[float]] = {}
    alarms: dict[str, int] = {}
    for _ in range(1000):
        for d in compare_frame(profile, draw(rng, s.min_window), s.warn_psi, s.alert_psi, s.min_window):
            psis.setdefault(d.feature, []).append(d.psi)
            alarms[d.feature] = alarms.get(d.feature, 0) + (d.status != "ok")
    assert sorted(psis) == ["amount", "items", "orders"] and all(len(v) == 1000 for v in psis.values())
    assert all(n / 1000 <= 0.01 for n in alarms.values()), alarms
    assert all(np.quantile(v, 0.99) < s.warn_psi / 2 for v in psis.values())


def test_shifted_inputs_alert() -> None:
    profile, s = training_profile(), DriftSettings()
    got = {d.feature: d for d in compare_frame(profile, draw(np.random.default_rng(2), 1000, shift=1.0), s.warn_psi, s.alert_psi)}
    assert {f: d.status for f, d in got.items()} == {"amount": "alert", "orders": "alert", "items": "alert"}
    assert all(d.p_value < 1e-6 for d in got.values())
    same = compare_frame(profile, draw(np.random.default_rng(3), 1000))
    assert all(d.status == "ok" and d.p_value > 0.001 for d in same)


def test_a_small_window_is_insufficient_and_unknown_categories_count_as_other() -> None:
    spec = categorical_profile(["a"] * 90 + ["b"] * 10, top=1)
    assert spec["categories"] == ["a"] and spec["shares"] == pytest.approx([0.9, 0.1])
    assert counts_of(spec, ["a", "zzz", "b"]).tolist() == [1, 2]
    assert compare("x", spec, np.array([3, 1]), min_window=5).status == "insufficient"
    assert compare("x", spec, np.array([0, 100])).status == "alert"  # an empty reference bin stays finite


def test_ring_keeps_the_last_values() -> None:
    ring = Ring(5, np.float64)
    ring.push(np.arange(3.0))
    ring.push(np.arange(3.0, 7.0))  # wraps around
    assert sorted(ring.view()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    ring.push(np.arange(100.0))
    assert sorted(ring.view()) == [95.0, 96.0, 97.0, 98.0, 99.0] and ring.filled == 5


def test_window_memory_stays_flat_under_100k_requests() -> None:
    monitor = DriftMonitor(DriftSettings(window=2000, min_window=100), seed=0)
    model = served(training_profile())
    rng = np.random.default_rng(4)
    rows = [draw(rng, 1) for _ in range(100)]
    for i in range(1000):
        monitor.record(model, lambda i=i: rows[i % 100])
    nbytes = monitor.window(model).nbytes()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        monitor.record(model, lambda i=i: rows[i % 100])
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert monitor.window(model).nbytes() == nbytes == 2000 * (8 + 8 + 4)
    assert after - before < 64 * 1024, after - before  # no growth with the traffic (100k requests)
    assert monitor.feature_drift(model)["amount"].window == 2000


def test_a_new_version_starts_a_new_window() -> None:
    monitor = DriftMonitor(DriftSettings(window=100, min_window=10), seed=0)
    profile = training_profile()
    v1, v2 = served(profile, "1"), served(profile, "2")
    for _ in range(20):
        monitor.record(v1, lambda: draw(np.random.default_rng(5), 5))
    assert monitor.feature_drift(v1)["amount"].window == 100
    old = monitor.window(v1)
    monitor.record(v2, lambda: draw(np.random.default_rng(6), 3))
    fresh = monitor.feature_drift(v2)
    assert fresh["amount"].window == 3 and fresh["amount"].status == "insufficient"
    assert monitor.window(v2) is not old and monitor.windows["segmenter"].version == "2"
    monitor.record(v1, lambda: draw(np.random.default_rng(7), 5))  # a request still in flight on the old version
    assert monitor.window(v2).rings["amount"].filled == 3 and monitor.windows["segmenter"].version == "2"


def test_sampling_and_switching_off() -> None:
    profile = training_profile()
    sampled = DriftMonitor(DriftSettings(window=10_000, sample_rate=0.1, min_window=1), seed=7)
    model = served(profile)
    for _ in range(2000):
        sampled.record(model, lambda: {"amount": [1.0]})
    assert 150 <= sampled.feature_drift(model)["amount"].window <= 250
    off = DriftMonitor(DriftSettings(enabled=False), seed=0)
    off.record(model, lambda: pytest.fail("columns built while drift is off"))
    no_reference = DriftMonitor(DriftSettings(), seed=0)
    no_reference.record(served(None), lambda: pytest.fail("columns built for a model without a profile"))


def test_drift_settings_are_strict(tmp_path) -> None:
    with pytest.raises(ValueError, match="alert_psi"):
        DriftSettings(warn_psi=0.3, alert_psi=0.2)
    with pytest.raises(ValueError, match="min_window"):
        DriftSettings(window=100, min_window=500)
    with pytest.raises(ConfigError, match="windw"):
        parse_model(ServeSettings, {"drift": {"windw": 10}}, tmp_path / "serve.yaml")
    assert ServeSettings().drift.warn_psi == 0.1 and ServeSettings().drift.alert_psi == 0.25


def test_a_model_registered_before_profiles_has_none(tmp_path) -> None:
    assert read_profile(SimpleNamespace(unwrap_python_model=lambda: None)) is None
    path = tmp_path / "reference_profile.json"
    path.write_text('{"version": 1, "features": {}}')
    loaded = SimpleNamespace(_model_impl=SimpleNamespace(context=SimpleNamespace(artifacts={"reference_profile": str(path)})))
    assert read_profile(loaded) == {"version": 1, "features": {}}


def test_each_handler_records_its_profiled_columns() -> None:
    """The service's handlers on stand-in models (tests/serving/test_service_parts.py) fill the window of
    each family's profiled inputs: segmenter features, series ids, basket items and sizes, the clv summary."""
    from serving.schemas import Basket, ClvCustomer, CustomerRow, ForecastQuery
    from tests.serving.test_service_parts import service

    profiles = {
        "segmenter": make_profile("segmenter", {"monetary": numeric_profile([1.0, 2.0, 3.0]), "recency": numeric_profile([1.0, 5.0])}),
        "forecaster": make_profile("forecaster", {"series_id": categorical_profile(["a", "b"]), "horizon": horizon_profile(4, 2)}),
        "recommender": make_profile("recommender", {"items": categorical_profile(["a", "x"]), "basket_size": numeric_profile([1, 2, 3])}),
        "clv": make_profile("clv", {c: numeric_profile([0.0, 1.0, 5.0]) for c in ("frequency", "recency", "T", "monetary")}),
    }
    svc = service()
    get = svc.store.get
    svc.store.get = lambda family: replace(get(family), profile=profiles[family])
    svc._segment([CustomerRow(recency=3.0, monetary=500.0), CustomerRow(recency=9.0, monetary=5.0)])
    svc._forecast([ForecastQuery(series_id="a", horizon=3)])
    svc._recommend([Basket(items=["a", "new"]), Basket(items=["a"])], None)
    svc._clv([ClvCustomer(frequency=2.0, recency=5.0, T=10.0, monetary=20.0)], 26.0, None)
    for w in svc.drift.windows.values():
        w.flush()  # rows are queued per request and copied into the rings in batches
    filled = {f: {k: r.filled for k, r in w.rings.items()} for f, w in svc.drift.windows.items()}
    assert filled == {
        "segmenter": {"monetary": 2, "recency": 2}, "forecaster": {"series_id": 1, "horizon": 1},
        "recommender": {"items": 3, "basket_size": 2}, "clv": {"frequency": 1, "recency": 1, "T": 1, "monetary": 1},
    }
    assert sorted(svc.drift.windows["segmenter"].rings["monetary"].view()) == [5.0, 500.0]
    assert sorted(svc.drift.windows["recommender"].rings["items"].view()) == [0, 0, 2]  # "new" is "other"


def test_get_drift_answers_per_model_and_404s_an_unknown_family() -> None:
    import json

    from serving.middleware import ModelGate
    from tests.serving.test_service_parts import service

    svc = service()
    svc.store.models.pop("clv")  # configured but not loaded
    get = svc.store.get
    svc.store.get = lambda family: replace(get(family), profile=training_profile() if family == "segmenter" else None)
    body = json.loads(ModelGate.read_drift(svc.store, svc.drift, "/drift").body)
    got = {m["family"]: (m["status"], m["version"]) for m in body["models"]}
    assert got == {"segmenter": ("insufficient", "7"), "forecaster": ("no reference", "7"),
                   "recommender": ("no reference", "7"), "clv": ("unavailable", None)}
    missing = ModelGate.read_drift(svc.store, svc.drift, "/drift/nope")
    assert missing.status_code == 404 and json.loads(missing.body)["error"]["code"] == "not_found"
    one = json.loads(ModelGate.read_drift(svc.store, svc.drift, "/drift/segmenter").body)
    assert [m["family"] for m in one["models"]] == ["segmenter"]


def test_gauges_follow_the_served_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import prometheus_client

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    registry = prometheus_client.CollectorRegistry()
    gauge = prometheus_client.Gauge("ecomlab_input_drift", "psi", ["model", "version", "feature"], registry=registry)
    monitor = DriftMonitor(DriftSettings(window=100, min_window=10), gauge=gauge, seed=0)
    profile = training_profile()
    v1, v2 = served(profile, "1"), served(profile, "2")
    monitor.record(v1, lambda: draw(np.random.default_rng(8), 50, shift=1.0))
    monitor._set_gauges(v1, list(monitor.feature_drift(v1).values()))
    assert registry.get_sample_value("ecomlab_input_drift", {"model": "m", "version": "1", "feature": "amount"}) > 0.25
    monitor.record(v2, lambda: draw(np.random.default_rng(9), 50))
    monitor._set_gauges(v2, list(monitor.feature_drift(v2).values()))
    assert registry.get_sample_value("ecomlab_input_drift", {"model": "m", "version": "1", "feature": "amount"}) is None
    assert registry.get_sample_value("ecomlab_input_drift", {"model": "m", "version": "2", "feature": "amount"}) is not None


def test_horizons_beyond_the_backtested_one_alert_and_shorter_ones_never_do() -> None:
    """The forecaster's horizon reference (training/profiles.py): every request within the backtested horizon."""
    spec = horizon_profile(4, 6)
    within = compare("horizon", spec, counts_of(spec, [1, 2, 3, 4] * 250), min_window=1000)
    assert within.status == "ok" and within.psi == 0.0
    beyond = compare("horizon", spec, counts_of(spec, [4] * 900 + [8] * 100), min_window=1000)
    assert beyond.status == "alert" and beyond.psi > 0.25  # a tenth of the requests forecast past what was validated
    few = compare("horizon", spec, counts_of(spec, [4] * 999 + [12]), min_window=1000)
    assert few.status == "ok"  # one request in a thousand is not drift


def test_the_forecasters_profile_holds_its_backtested_horizon() -> None:
    from training.forecast.config import ForecastConfig
    from training.profiles import reference_profile

    cfg = ForecastConfig.model_validate({"series": {"freq": "W"}, "backtest": {"horizon": 6}})
    train = SimpleNamespace(ids=["a", "b", "c"])
    profile = reference_profile("forecaster", train, None, cfg)
    assert profile["features"]["horizon"] == {"kind": "numeric", "edges": [6.0], "shares": [1.0, 0.0], "n": 3}
    assert "horizon" not in reference_profile("forecaster", train, None)["features"]  # no config: series ids only
