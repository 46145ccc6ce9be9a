"""The model service over HTTP: a real `bentoml serve` on loopback, started once per session."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers import AUTH, TOKEN  # the registry and server fixtures are in conftest too
from tests.service_harness import Server, start, write_serve_config

pytestmark = pytest.mark.service
from tests.helpers import REPO  # noqa: E402


def post(server: Server, path: str, body, headers: dict | None = None) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30, headers=AUTH if headers is None else headers)


def models(server: Server) -> list[dict]:
    """GET /models: each served model."""
    resp = httpx.get(server.url + "/models", timeout=30, headers=AUTH)
    assert resp.status_code == 200, resp.text
    return resp.json()["models"]


def champion_version(registry: tuple[Path, str], name: str, server: Server) -> str:
    """The version the registry's champion alias points to, once the server serves it (other tests move
    the alias and the server follows within its reload interval; never assume version "1")."""
    import time

    from mlflow.tracking import MlflowClient

    _, uri = registry
    wanted = str(MlflowClient(uri, uri).get_model_version_by_alias(name, "champion").version)
    deadline = time.time() + 20
    while time.time() < deadline:
        served = {m["name"]: m["version"] for m in models(server)}
        if served.get(name) == wanted:
            break
        time.sleep(0.2)
    return wanted


def registry_client(registry: tuple[Path, str]):
    """A client of the session registry, with MLflow's in-process URI pointed at it too: a version made
    from a `models:/m-...` source is resolved through that URI (other tests point it at their own stores)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    _, uri = registry
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def segmenter_reporting(server: Server, version: str, timeout: float) -> dict:
    """The segmenter's /models entry once its error names `version` (not an earlier test's error)."""
    import time

    deadline = time.time() + timeout
    while True:
        model = models(server)[0]  # the segmenter comes first
        if f"version {version}" in (model["error"] or "") or time.time() > deadline:
            return model
        time.sleep(0.3)


CUSTOMER = {"recency": 12.0, "frequency": 9.0, "monetary": 850.0, "quantity": 40.0, "tenure": 400.0, "aov": 94.4, "return_rate": 0.02}


def test_segment_batch(server: Server, registry: tuple[Path, str]) -> None:
    version = champion_version(registry, "ecomlab-segmenter", server)
    rows = [dict(CUSTOMER, customer_id="c1"), dict(CUSTOMER, recency=300.0, frequency=1.0, monetary=15.0, aov=15.0, customer_id="c2")]
    resp = post(server, "/segment", {"customers": rows})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "ecomlab-segmenter" and body["version"] == version
    assert [s["customer_id"] for s in body["segments"]] == ["c1", "c2"]
    assert all(isinstance(s["segment_id"], int) and s["segment_name"] for s in body["segments"])


def test_big_batches_answer_like_single_rows(server: Server) -> None:
    """Over the service's inline size (32 rows) a batch is answered in a worker thread: same answers."""
    rows = [
        dict(CUSTOMER, customer_id=f"c{i}", recency=float(5 + 9 * i), frequency=float(1 + i % 7), monetary=float(20 + 37 * i))
        for i in range(45)
    ]
    batch = post(server, "/segment", {"customers": rows})
    assert batch.status_code == 200, batch.text
    singles = [post(server, "/segment", {"customers": [row]}).json()["segments"][0] for row in rows]
    assert batch.json()["segments"] == singles
    assert len({s["segment_id"] for s in singles}) > 1


def test_identical_customers_get_the_same_segment(server: Server) -> None:
    resp = post(server, "/segment", {"customers": [CUSTOMER] * 5})
    assert len({s["segment_id"] for s in resp.json()["segments"]}) == 1


def test_models_and_probes(server: Server, registry: tuple[Path, str]) -> None:
    version = champion_version(registry, "ecomlab-segmenter", server)
    by_family = {m["family"]: m for m in models(server)}
    assert set(by_family) == {"segmenter", "forecaster", "recommender", "clv"}
    model = by_family["segmenter"]
    assert model["name"] == "ecomlab-segmenter" and model["alias"] == "champion"
    assert model["version"] == version
    assert model["run_id"] and "best_silhouette" in model["metrics"] and model["status"] == "serving"
    assert "best_mase" in by_family["forecaster"]["metrics"] and "best_hit_rate_at_k" in by_family["recommender"]["metrics"]
    assert "best_holdout_mae" in by_family["clv"]["metrics"]
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"customers": [dict(CUSTOMER, recency="7")]}, "recency"),  # strings are not numbers
        ({"customers": [dict(CUSTOMER, colour="red")]}, "colour"),  # unknown field
        ({"customers": []}, "customers"),  # empty batch
        ({}, "customers"),  # missing field
        ({"customers": [dict(CUSTOMER, recency=-3.0)]}, "recency"),
        ({"customers": [dict(CUSTOMER, return_rate=1.5)]}, "return_rate"),
        ({"customers": [{k: v for k, v in CUSTOMER.items() if k != "frequency"}]}, "frequency"),
    ],
)
def test_bad_segment_requests_name_the_field(server: Server, body: dict, field: str) -> None:
    resp = post(server, "/segment", body)
    assert resp.status_code == 400, resp.text
    assert field in resp.text


def test_nan_and_malformed_json_are_400(server: Server) -> None:
    raw = '{"customers": [{"recency": NaN, "frequency": 1, "monetary": 1}]}'
    headers = {"content-type": "application/json", **AUTH}
    resp = httpx.post(server.url + "/segment", content=raw, headers=headers)
    assert resp.status_code == 400 and "recency" in resp.text
    resp = httpx.post(server.url + "/segment", content="{not json", headers=headers)
    assert resp.status_code == 400


def test_oversize_batch_is_413(server: Server) -> None:
    resp = post(server, "/segment", {"customers": [CUSTOMER] * 51})
    assert resp.status_code == 413 and "limit is 50" in resp.text


def test_body_over_the_byte_limit_is_413(server: Server) -> None:
    resp = httpx.post(server.url + "/segment", content=b"x" * 300_000, headers={"content-type": "application/json", **AUTH})
    assert resp.status_code == 413 and "limit" in resp.text


def test_api_token_required_but_probes_open(server: Server) -> None:
    assert post(server, "/segment", {"customers": [CUSTOMER]}, headers={}).status_code == 401
    assert post(server, "/segment", {"customers": [CUSTOMER]}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(server, "/segment", {"customers": [CUSTOMER]}, headers={"X-API-Token": TOKEN}).status_code == 200
    for probe in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(server.url + probe).status_code == 200


def test_prometheus_metrics_per_model(server: Server, registry: tuple[Path, str]) -> None:
    version = champion_version(registry, "ecomlab-segmenter", server)
    ok = post(server, "/segment", {"customers": [CUSTOMER] * 3})
    assert ok.status_code == 200 and ok.json()["version"] == version, (ok.status_code, ok.text[:300])
    post(server, "/segment", {"customers": [dict(CUSTOMER, recency="x")]})
    text = httpx.get(server.url + "/metrics", headers=AUTH).text
    ours = [line for line in text.splitlines() if line.startswith("ecomlab_")]
    assert f'ecomlab_predictions_total{{family="segmenter",model="ecomlab-segmenter",version="{version}"}}' in text, ours
    assert "ecomlab_model_requests_total" in text
    assert "bentoml_service_request_total" in text or "bentoml_api_server_request_total" in text


def forecast_ids(server: Server) -> list[str]:
    resp = post(server, "/forecast", {"queries": [{"series_id": "no-such-series", "horizon": 2}]})
    assert resp.status_code == 400
    return resp.text


def test_forecast_batch_with_intervals(server: Server) -> None:
    text = forecast_ids(server)
    assert "no-such-series" in text and "known" in text.lower()
    from features.synthetic import generate

    category = str(generate(n_customers=50, weeks=10, seed=3).lines["category"].iloc[0])
    resp = post(server, "/forecast", {"queries": [{"series_id": category, "horizon": 8, "levels": [80, 95]}]})
    assert resp.status_code == 200, resp.text
    (fc,) = resp.json()["forecasts"]
    assert fc["series_id"] == category and len(fc["points"]) == 8 and fc["model"]
    widths = [p["intervals"]["95"][1] - p["intervals"]["95"][0] for p in fc["points"]]
    assert widths[-1] >= widths[0] > 0
    inner = [p["intervals"]["80"][1] - p["intervals"]["80"][0] for p in fc["points"]]
    assert all(i < w for i, w in zip(inner, widths))


@pytest.mark.parametrize(
    "query, field",
    [
        ({"series_id": "x", "horizon": 0}, "horizon"),
        ({"series_id": "x", "horizon": -3}, "horizon"),
        ({"series_id": "x", "horizon": 31}, "horizon"),
        ({"series_id": "x", "horizon": "4"}, "horizon"),
        ({"series_id": "x", "horizon": 2, "levels": [100]}, "levels"),
        ({"series_id": "x", "horizon": 2, "extra": 1}, "extra"),
        ({"horizon": 2}, "series_id"),
    ],
)
def test_bad_forecast_requests(server: Server, query: dict, field: str) -> None:
    resp = post(server, "/forecast", {"queries": [query]})
    assert resp.status_code == 400 and field in resp.text, resp.text


def test_recommend_reports_unknown_items(server: Server) -> None:
    from features.synthetic import generate

    truth = generate(n_customers=400, weeks=52, seed=3).truth
    bundle = truth["bundles"][0]
    first = str(bundle["items"][0] if "items" in bundle else bundle["products"][0])
    resp = post(server, "/recommend", {"baskets": [{"items": [first, "no-such-item"]}, {"items": ["nothing-known"], "k": 2}], "k": 3})
    assert resp.status_code == 200, resp.text
    a, b = resp.json()["results"]
    assert a["unknown_items"] == ["no-such-item"] and len(a["recommendations"]) == 3
    assert first not in [r["item"] for r in a["recommendations"]]
    assert b["unknown_items"] == ["nothing-known"] and len(b["recommendations"]) <= 2
    assert all(r["score"] >= 0 for r in a["recommendations"])


@pytest.mark.parametrize(
    "body, field, status",
    [
        ({"baskets": []}, "baskets", 400),
        ({"baskets": [{"items": []}]}, "items", 400),
        ({"baskets": [{"items": [1, 2]}]}, "items", 400),
        ({"baskets": [{"items": ["a"]}], "k": 0}, "k", 400),
        ({"baskets": [{"items": ["a"]}], "k": 11}, "k", 400),
        ({"baskets": [{"items": ["a"]}] * 51}, "baskets", 413),
    ],
)
def test_bad_recommend_requests(server: Server, body: dict, field: str, status: int) -> None:
    resp = post(server, "/recommend", body)
    assert resp.status_code == status and field in resp.text, resp.text


LINES = [
    {"order_id": "1", "order_date": "2024-01-03", "customer_id": "a", "product_id": "p1", "quantity": 2, "unit_price": 10.0},
    {"order_id": "1", "order_date": "2024-01-03", "customer_id": "a", "product_id": "p2", "quantity": 1, "unit_price": 5.0},
    {"order_id": "2", "order_date": "2024-02-10", "customer_id": "b", "product_id": "p1", "quantity": 1, "unit_price": 10.0},
    {"order_id": "3", "order_date": "not a date", "customer_id": "b", "product_id": "p1", "quantity": 1, "unit_price": 10.0},
    {"order_id": "4", "order_date": "2024-02-11", "customer_id": "b", "product_id": "p1", "quantity": -1, "unit_price": 10.0},
]


def test_kpis_over_http_with_quarantine(server: Server) -> None:
    resp = post(server, "/kpis", {"lines": LINES})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accounting"] == {"rows_read": 5, "rows_clean": 4, "rows_quarantined": 1, "duplicates_dropped": 0, "files": 1}
    assert body["quarantine"] == [{"index": 3, "column": "order_date", "reason": "unparseable date", "value": "not a date"}]
    # orders 1 (25.0) and 2 (10.0) are sales; order 4 is a return
    assert body["kpis"]["order_value"]["average_order_value"] == pytest.approx(17.5)
    assert body["kpis"]["channels"]["status"] == "unavailable"


def test_one_named_kpi(server: Server) -> None:
    body = post(server, "/kpis/order_value", {"lines": LINES}).json()
    assert list(body["kpis"]) == ["order_value"]


def test_kpis_csv_upload(server: Server) -> None:
    csv = "order_id,order_date,customer_id,product_id,quantity,unit_price\n1,2024-01-03,a,p1,2,10\n2,2024-01-04,b,p1,x,10\n"
    resp = httpx.post(server.url + "/kpis/upload", files={"file": ("lines.csv", csv, "text/csv")}, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accounting"]["rows_clean"] == 1 and body["quarantine"][0]["row"] == 3
    bad = httpx.post(server.url + "/kpis/upload", files={"file": ("x.csv", "a,b\n1,2\n", "text/csv")}, headers=AUTH)
    assert bad.status_code == 400 and "order_id" in bad.text


@pytest.mark.parametrize("days", ["-5", "0", "3651"])
def test_upload_churn_window_out_of_range_is_400(server: Server, days: str) -> None:
    """The form field has the bounds of the JSON option (-5 was a 500 from the KPI options parser)."""
    csv = "order_id,order_date,customer_id,product_id,quantity,unit_price\n1,2024-01-03,a,p1,2,10\n"
    files = {"file": ("lines.csv", csv, "text/csv")}
    resp = httpx.post(server.url + "/kpis/upload", files=files, data={"churn_window_days": days}, headers=AUTH, timeout=30)
    assert resp.status_code == 400 and "churn_window_days" in resp.text, resp.text


@pytest.mark.parametrize(
    "body, field",
    [
        ({"lines": []}, "lines"),
        ({"lines": [dict(LINES[0], quantity="2")]}, "quantity"),
        ('{"lines": [{"order_id": "1", "order_date": "2024-01-03", "product_id": "p", "quantity": 1, "unit_price": 1e999}]}', "unit_price"),
        ({"lines": [dict(LINES[0], colour=1)]}, "colour"),
        ({"lines": [{k: v for k, v in LINES[0].items() if k != "product_id"}]}, "product_id"),
        ({"lines": LINES, "options": {"churn_window_days": 0}}, "churn_window_days"),
    ],
)
def test_bad_kpi_requests(server: Server, body: dict | str, field: str) -> None:
    if isinstance(body, str):
        resp = httpx.post(server.url + "/kpis", content=body, headers={"content-type": "application/json", **AUTH})
    else:
        resp = post(server, "/kpis", body)
    assert resp.status_code == 400 and field in resp.text


def test_openapi_describes_every_endpoint(server: Server) -> None:
    spec = httpx.get(server.url + "/docs.json", headers=AUTH).json()
    for path in ("/segment", "/forecast", "/recommend", "/models", "/kpis", "/kpis/clv", "/kpis/upload"):
        op = spec["paths"][path]["post"]
        assert "requestBody" in op or path == "/models", path
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema, path


def test_missing_model_is_alive_but_not_ready(registry: tuple[Path, str], tmp_path: Path) -> None:
    folder, uri = registry
    config = write_serve_config(tmp_path, [{"family": "segmenter", "name": "no-such-model", "alias": "champion"}])
    srv = start(tmp_path, config, uri, wait_ready=False)
    try:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503 and "no-such-model" in ready.text
        resp = post(srv, "/segment", {"customers": [CUSTOMER]})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "model_unavailable"
        assert "no-such-model" in resp.json()["error"]["message"]
    finally:
        srv.stop()


def test_hot_reload_swaps_champion_without_failing_requests(server: Server, registry: tuple[Path, str]) -> None:
    """Move the alias to a new version: in-flight and later requests all succeed, /models shows it."""
    import threading
    import time


    _, uri = registry
    client = registry_client(registry)
    current = client.get_model_version_by_alias("ecomlab-segmenter", "champion")
    new = client.create_model_version("ecomlab-segmenter", current.source, run_id=current.run_id)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(headers=AUTH, timeout=30) as http:
            while not stop.is_set() and len(statuses) < 2000:
                statuses.append(http.post(server.url + "/segment", json={"customers": [CUSTOMER] * 4}).status_code)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        client.set_registered_model_alias("ecomlab-segmenter", "champion", new.version)
        deadline = time.time() + 30
        while time.time() < deadline:
            versions = [m["version"] for m in models(server) if m["family"] == "segmenter"]
            if versions == [str(new.version)]:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the service did not pick up the new champion within 30 s")
        time.sleep(1)
    finally:
        stop.set()
        worker.join()
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests, statuses {set(statuses)}"
    assert post(server, "/segment", {"customers": [CUSTOMER]}).json()["version"] == str(new.version)


def test_alias_to_version_with_missing_artifacts_keeps_serving(server: Server, registry: tuple[Path, str], tmp_path: Path) -> None:


    _, uri = registry
    client = registry_client(registry)
    serving_version = models(server)[0]["version"]  # the segmenter comes first
    broken = client.create_model_version("ecomlab-segmenter", (tmp_path / "gone").as_uri(), run_id=None)
    client.set_registered_model_alias("ecomlab-segmenter", "champion", broken.version)
    try:
        model = segmenter_reporting(server, broken.version, timeout=20)
        assert model["error"] and model["version"] == serving_version and model["status"] == "serving"
        resp = post(server, "/segment", {"customers": [CUSTOMER]})
        assert resp.status_code == 200 and resp.json()["version"] == serving_version
        assert httpx.get(server.url + "/readyz").status_code == 200
    finally:
        client.set_registered_model_alias("ecomlab-segmenter", "champion", serving_version)


SERVE_WITHOUT_TRAINING = """
import json, sys

class TrainingOnly:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("training", "optuna", "matplotlib"):
            raise ImportError(f"{name} is not importable where models are served")
        return None

sys.meta_path.insert(0, TrainingOnly())
import numpy as np
from serving.settings import ServeSettings
from serving.store import ModelStore

families = ("segmenter", "forecaster", "recommender", "clv")
store = ModelStore(ServeSettings(models=[{"family": f, "name": f"ecomlab-{f}"} for f in families], reload_interval_s=0))
store.refresh()
seg, fc, rec, clv = (store.get(f).model for f in families)
out = {
    "ready": store.ready(),
    "segment": seg.assign(np.ones((2, len(seg.features)))).tolist(),
    "forecast": fc.forecast(fc.series_ids[0], 3).method,
    "recommend": len(rec.recommend([["anything"]], [2])),
    "clv": clv.value(np.array([2.0]), np.array([10.0]), np.array([30.0]), np.array([20.0]), None, None)["clv"].tolist(),
}
print(json.dumps(out))
"""


def test_champions_serve_where_training_cannot_be_imported(registry: tuple[Path, str]) -> None:
    """A registered model loads and answers through its Protocol with `training`, optuna and matplotlib unimportable."""
    import json
    import os
    import subprocess
    import sys

    _, uri = registry
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_TRAINING], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ready"] == [True, []], out
    assert len(out["segment"]) == 2 and out["forecast"] and out["recommend"] == 1
    assert len(out["clv"]) == 1 and out["clv"][0] > 0


def test_alias_to_a_model_that_is_not_servable_keeps_serving(server: Server, registry: tuple[Path, str]) -> None:
    """The segmenter's alias moved to a recommender: reported on /models and /readyz, the served version stays."""


    _, uri = registry
    client = registry_client(registry)
    serving_version = models(server)[0]["version"]  # the segmenter comes first
    other = client.get_model_version_by_alias("ecomlab-recommender", "champion")
    wrong = client.create_model_version("ecomlab-segmenter", other.source, run_id=other.run_id)
    client.set_registered_model_alias("ecomlab-segmenter", "champion", wrong.version)
    try:
        model = segmenter_reporting(server, wrong.version, timeout=30)
        assert "not a servable segmenter model" in model["error"], model
        assert model["status"] == "serving" and model["version"] == serving_version
        assert post(server, "/segment", {"customers": [CUSTOMER]}).json()["version"] == serving_version
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200 and "not a servable segmenter" in ready.text
    finally:
        client.set_registered_model_alias("ecomlab-segmenter", "champion", serving_version)
