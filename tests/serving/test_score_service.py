"""`ecomlab score`, run as a user runs it (a subprocess of the console script), gives the answers of the
running service's endpoints for the same inputs and the same registered version (issue 12 part 3,
"Same answers as the service"; issue 14: the clv family as the others).

Each test asks the service first and scores the version it answered with (`models:/NAME/VERSION`):
other service tests move the champion alias, and the service follows it within a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.models.registry import FAMILIES
from tests.helpers import AUTH
from tests.service_harness import Server

pytestmark = pytest.mark.service


def post(server: Server, path: str, body: dict) -> dict:
    resp = httpx.post(server.url + path, json=body, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ecomlab_score(registry: tuple[Path, str], tmp_path: Path, *args: str) -> pd.DataFrame:
    """`ecomlab score ARGS --out tmp/out.parquet` in a subprocess against the session registry; its output."""
    folder, uri = registry
    script = Path(sys.executable).with_name("ecomlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "training.cli"]
    out = tmp_path / "out.parquet"
    done = subprocess.run(
        [*command, "score", *args, "--out", str(out)], cwd=folder, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return pd.read_parquet(out)


def stamped(frame: pd.DataFrame, name: str, version: str) -> None:
    assert set(frame["model_name"]) == {name} and set(frame["model_version"]) == {version}


def test_segment_answers_equal_the_service(server: Server, registry: tuple[Path, str], tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 45
    rows = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "recency": rng.integers(1, 360, n).astype(float),
        "frequency": rng.integers(1, 25, n).astype(float), "monetary": rng.gamma(2.0, 300.0, n).round(2),
        "quantity": rng.integers(1, 200, n).astype(float), "tenure": rng.integers(360, 720, n).astype(float),
        "aov": rng.gamma(2.0, 40.0, n).round(2), "return_rate": rng.uniform(0, 0.3, n).round(3),
    })
    body = post(server, "/segment", {"customers": rows.to_dict("records")})
    rows.to_csv(tmp_path / "customers.csv", index=False)
    scored = ecomlab_score(registry, tmp_path, f"models:/{body['model']}/{body['version']}", str(tmp_path / "customers.csv"), "--chunk-size", "10")
    service = pd.DataFrame(body["segments"])
    assert scored["customer_id"].tolist() == service["customer_id"].tolist()
    assert scored["segment_id"].tolist() == service["segment_id"].tolist()
    assert scored["segment_name"].tolist() == service["segment_name"].tolist()
    assert service["segment_id"].nunique() > 1
    stamped(scored, body["model"], body["version"])


def test_forecast_answers_equal_the_service(server: Server, registry: tuple[Path, str], tmp_path: Path) -> None:
    """A data config: every series the model knows, at the default horizon (weekly: 4) and levels."""
    folder, _ = registry
    detail = httpx.get(server.url + "/models/forecaster", headers=AUTH, timeout=30).json()
    series = detail["series_ids"]
    body = post(server, "/forecast", {"queries": [{"series_id": s, "horizon": 4} for s in series]})
    scored = ecomlab_score(registry, tmp_path, f"models:/{body['model']}/{body['version']}", str(folder / "data.yaml"), "--chunk-size", "2")
    expected = []
    for fc in body["forecasts"]:
        for p in fc["points"]:
            bounds = {f"{side}_{level}": v for level, pair in p["intervals"].items() for side, v in zip(("lo", "hi"), pair, strict=True)}
            expected.append({"series_id": fc["series_id"], "step": p["step"], "ds": p["ds"], "yhat": p["yhat"], "model": fc["model"], **bounds})
    expected = pd.DataFrame(expected)
    assert len(scored) == 4 * len(series)
    got = scored[expected.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)
    stamped(scored, body["model"], body["version"])


def test_recommend_answers_equal_the_service(server: Server, registry: tuple[Path, str], tmp_path: Path) -> None:
    """A data config: the shop's orders as baskets (features.baskets, as training built them)."""
    from features.baskets import build_baskets
    from features.sources import load

    folder, _ = registry
    built = build_baskets(load(folder / "data.yaml").lines)
    chosen = [(str(i), b) for i, b in zip(built.ids.tolist(), built.as_lists(), strict=True) if b][:50]
    body = post(server, "/recommend", {"baskets": [{"items": b} for _, b in chosen]})
    scored = ecomlab_score(registry, tmp_path, f"models:/{body['model']}/{body['version']}", str(folder / "data.yaml"))
    assert len(scored) == built.n_baskets
    sample = scored.set_index("basket_id").loc[[i for i, _ in chosen]]
    for (_, row), result in zip(sample.iterrows(), body["results"], strict=True):
        assert list(row["items"]) == [r["item"] for r in result["recommendations"]]
        np.testing.assert_allclose(list(row["scores"]), [r["score"] for r in result["recommendations"]], rtol=1e-12)
        assert [list(r) for r in row["rules"]] == [r["rules"] for r in result["recommendations"]]
    assert any(len(r) for rules in sample["rules"] for r in rules)  # rules fired, not only the popularity fill
    stamped(scored, body["model"], body["version"])


@pytest.mark.skipif("clv" not in FAMILIES, reason="the clv family is not registered")
def test_clv_answers_equal_the_service(server: Server, registry: tuple[Path, str], tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 40
    frequency = rng.integers(0, 6, n).astype(float)
    T = rng.integers(10, 50, n).astype(float)
    rows = pd.DataFrame({
        "customer_id": [f"k{i}" for i in range(n)], "frequency": frequency,
        "recency": np.where(frequency > 0, np.floor(T * rng.uniform(0, 1, n)), 0.0), "T": T,
        "monetary": np.where(frequency > 0, rng.gamma(3.0, 12.0, n).round(2), 0.0),
    })
    body = post(server, "/clv", {"customers": rows.to_dict("records"), "horizon": 26, "discount_rate": 0.05})
    rows.to_parquet(tmp_path / "customers.parquet", index=False)
    scored = ecomlab_score(
        registry, tmp_path, f"models:/{body['model']}/{body['version']}", str(tmp_path / "customers.parquet"),
        "--horizon", "26", "--discount-rate", "0.05", "--chunk-size", "7",
    )
    service = pd.DataFrame(body["customers"])
    assert scored["customer_id"].tolist() == service["customer_id"].tolist()
    for column in ("expected_purchases", "p_alive", "expected_value", "clv"):
        np.testing.assert_allclose(scored[column], service[column], rtol=1e-12, err_msg=column)
    stamped(scored, body["model"], body["version"])
