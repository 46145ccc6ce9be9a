"""Issue 14, "Register and serve": POST /clv over a real `bentoml serve` (the session `server`), its
answers equal to the registered model's own, and each kind of bad customer row named in a 400."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.helpers import AUTH
from tests.service_harness import Server
from tests.serving.test_service import registry_client

pytestmark = pytest.mark.service

CUSTOMERS = [
    {"customer_id": "a", "frequency": 4.0, "recency": 30.0, "T": 40.0, "monetary": 25.0},
    {"customer_id": "b", "frequency": 0.0, "recency": 0.0, "T": 35.0, "monetary": 0.0},
    {"customer_id": "c", "frequency": 4.0, "recency": 5.0, "T": 40.0, "monetary": 25.0},
]


def post(server: Server, body: dict) -> httpx.Response:
    return httpx.post(server.url + "/clv", json=body, headers=AUTH, timeout=30)


def test_clv_answers_equal_the_registered_models(server: Server, registry: tuple[Path, str]) -> None:
    import mlflow

    resp = post(server, {"customers": CUSTOMERS, "horizon": 26, "discount_rate": 0.05})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["unit"] == "W" and body["horizon"] == 26 and body["discount_rate"] == 0.05
    got = pd.DataFrame(body["customers"])
    assert got["customer_id"].tolist() == ["a", "b", "c"]
    registry_client(registry)  # points MLflow's in-process tracking and registry URIs at the session registry
    model = mlflow.pyfunc.load_model(f"models:/ecomlab-clv/{body['version']}")
    expected = model.predict(pd.DataFrame(CUSTOMERS).assign(horizon=26.0, discount_rate=0.05))
    for column in ("expected_purchases", "p_alive", "expected_value", "clv"):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-12, err_msg=column)
    # behaviour: a customer whose last purchase is long ago is less likely alive and expected to buy less
    assert got["p_alive"][2] < got["p_alive"][0] and got["expected_purchases"][2] < got["expected_purchases"][0]


def test_clv_defaults_horizon_and_discount(server: Server) -> None:
    detail = httpx.get(server.url + "/models/clv", headers=AUTH, timeout=30).json()
    assert detail["unit"] == "W" and detail["default_horizon"] == 52 and detail["default_discount_rate"] == 0.1
    plain = post(server, {"customers": CUSTOMERS[:1]}).json()
    assert plain["horizon"] == 52 and plain["discount_rate"] == 0.1
    longer = post(server, {"customers": CUSTOMERS[:1], "horizon": 104}).json()
    dearer = post(server, {"customers": CUSTOMERS[:1], "discount_rate": 0.5}).json()
    assert longer["customers"][0]["clv"] > plain["customers"][0]["clv"] > dearer["customers"][0]["clv"]


BAD = [
    ({"recency": 50.0}, "customers[0].recency", "greater than T"),
    ({"frequency": 0.0, "recency": 3.0}, "customers[0].recency", "without repeat purchases"),
    ({"monetary": 0.0}, "customers[0].monetary", "zero spend"),
    ({"frequency": 2.5}, "customers[0].frequency", "whole number"),
    ({"frequency": -1.0}, "customers[0].frequency", None),
    ({"T": "40"}, "customers[0].T", None),
    ({"colour": "red"}, "customers[0].colour", None),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD)
def test_a_bad_customer_is_a_400_naming_the_field(server: Server, change: dict, field: str, words: str | None) -> None:
    resp = post(server, {"customers": [{**CUSTOMERS[0], **change}]})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert field in [f["field"] for f in error["fields"]] or field in error["message"], error
    if words:
        assert words in error["message"], error


@pytest.mark.parametrize(
    ("terms", "field", "code"),
    [({"horizon": 0}, "horizon", "invalid_input"), ({"horizon": 10_000}, "horizon", "over_limit"),
     ({"discount_rate": 2}, "discount_rate", "invalid_input"), ({"discount_rate": -0.1}, "discount_rate", "invalid_input")],
)
def test_bad_terms_are_named(server: Server, terms: dict, field: str, code: str) -> None:
    resp = post(server, {"customers": CUSTOMERS[:1], **terms})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and field in error["message"], error
