"""Schemathesis against the service's own OpenAPI document: no input, valid or not, gets a 5xx.

The session `server` (a real `bentoml serve` with all three models loaded) is fuzzed through every
operation of its /docs.json, with schema-conforming and schema-violating cases; then the model and
KPI endpoints again with plausible bodies carrying extreme values, which get past validation and
reach the models and KPI calculators. Both are bounded: examples per operation and seconds per test.

The schema is loaded inside the test and each operation's Hypothesis strategy driven here:
`schemathesis.pytest.from_fixture` fails on pytest 9 (it sets `Function._nodeid`, which is gone).
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from datetime import date

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.helpers import AUTH
from tests.service_harness import Server

pytestmark = [pytest.mark.service, pytest.mark.long_module, pytest.mark.timeout(300)]  # a hang guard only: the work is bounded by example counts

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 20}  # per operation
DERANDOMIZE = True
MUST_COVER = ("/segment", "/forecast", "/recommend", "/models", "/kpis", "/kpis/upload", "/healthz", "/readyz")


def test_no_server_error_for_any_input(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/docs.json", headers=AUTH, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert set(MUST_COVER) <= paths, set(MUST_COVER) - paths
    assert any(p.startswith("/kpis/") and p != "/kpis/upload" for p in paths), "no /kpis/<name> operation"

    started = time.time()
    failures: list[str] = []
    counts: dict[str, int] = {}
    with requests.Session() as session:  # one keep-alive connection for the whole run
        for op in operations:
            label = f"{op.method.upper()} {op.path}"
            for mode, examples in EXAMPLES.items():

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=examples, deadline=None, derandomize=DERANDOMIZE, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=False,
                )
                def run(case) -> None:
                    counts[label] = counts.get(label, 0) + 1
                    case.call_and_validate(base_url=server.url, session=session, headers=AUTH, checks=[not_a_server_error], timeout=30)

                try:
                    run()
                except Unsatisfiable:  # no parameters and no body: nothing can be invalid
                    if mode is GenerationMode.POSITIVE or op.body or any(True for _ in op.iter_parameters()):
                        raise
                except Exception as exc:  # the failure report names the case; collect them all
                    failures.append(f"{label} ({mode.value}):\n{exc}")
    took = time.time() - started
    print(f"fuzz: {sum(counts.values())} cases over {len(operations)} operations in {took:.1f} s")
    print("fuzz: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    assert not failures, "\n\n".join(failures)


# ---- deeper: bodies that pass the schema and reach the models and KPI calculators ----
# Schema-driven cases rarely get past validation here (a customer needs every feature the model
# uses, a KPI request a parseable date), so these strategies build plausible bodies with extreme values.

@functools.cache
def _shop() -> tuple[list[str], list[str]]:
    """Series and items the session models know (the registry fixture trains on this synthetic shop)."""
    from features.synthetic import generate

    lines = generate(n_customers=400, weeks=52, seed=3).lines
    return sorted(map(str, lines["category"].unique())), sorted(map(str, lines["product_id"].unique()))[:40]


def _floats(**bounds) -> st.SearchStrategy[float]:
    return st.floats(allow_nan=False, allow_infinity=False, **bounds)


def _bodies() -> dict[str, st.SearchStrategy[dict]]:
    series, items = _shop()
    text = st.text(max_size=12)
    customer = st.fixed_dictionaries(
        {
            "recency": _floats(min_value=0), "frequency": _floats(min_value=0), "monetary": _floats(),
            "quantity": _floats(), "tenure": _floats(min_value=0), "aov": _floats(), "return_rate": _floats(min_value=0, max_value=1),
        },
        optional={"customer_id": st.one_of(st.none(), text)},
    )
    query = st.fixed_dictionaries(
        {"series_id": st.one_of(st.sampled_from(series), text.filter(bool)), "horizon": st.integers(1, 30)},
        optional={
            "levels": st.lists(st.integers(1, 99), min_size=1, max_size=5),
            "exog": st.dictionaries(text, st.lists(_floats(), max_size=30), max_size=2),
        },
    )
    basket = st.fixed_dictionaries(
        {"items": st.lists(st.one_of(st.sampled_from(items), text), min_size=1, max_size=20)},
        optional={"k": st.integers(1, 10)},
    )
    churn_days = st.one_of(st.sampled_from([-5, -1, 0, 1, 3650, 3651, 10**6]), st.integers(1, 3650))
    recent = st.dates(date(2015, 1, 1), date(2030, 12, 31))
    plausible_day = st.one_of(recent.map(str), recent.map(lambda d: f"{d}T{d.day % 24:02d}:15:00"))
    any_day = st.one_of(
        st.dates().map(str), st.datetimes().map(lambda d: d.isoformat(timespec="seconds")), st.sampled_from(["2024-02-30", "", "0001-01-01"]),
    )

    def line(day: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
        return st.fixed_dictionaries(
            {
                "order_id": st.sampled_from(["1", "2", "3", "4"]), "order_date": day, "product_id": st.sampled_from(items[:5]),
                "quantity": st.integers(-(2**53), 2**53), "unit_price": _floats(),
            },
            optional={
                "customer_id": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), "category": st.sampled_from(series),
                "discount": _floats(), "channel": st.sampled_from(["web", "store"]), "returned": st.booleans(),
                "product_name": text,
            },
        )

    lines = st.one_of(st.lists(line(plausible_day), min_size=1, max_size=15), st.lists(line(any_day), min_size=1, max_size=5))

    def csv(rows: list[dict], encoding: str, junk: bytes) -> bytes:
        import pandas as pd

        return pd.DataFrame(rows).to_csv(index=False).encode(encoding, errors="replace") + junk

    upload = st.fixed_dictionaries(
        {"file": st.builds(csv, lines, st.sampled_from(["utf-8", "utf-16", "latin-1"]), st.one_of(st.just(b""), st.binary(max_size=20)))},
        optional={"churn_window_days": churn_days},
    )
    return {
        "/kpis/upload": upload,
        "/segment": st.fixed_dictionaries({"customers": st.lists(customer, min_size=1, max_size=10)}),
        "/forecast": st.fixed_dictionaries({"queries": st.lists(query, min_size=1, max_size=4)}),
        "/recommend": st.fixed_dictionaries({"baskets": st.lists(basket, min_size=1, max_size=5)}, optional={"k": st.integers(1, 10)}),
        "/kpis": st.fixed_dictionaries({"lines": lines}, optional={"options": st.fixed_dictionaries({"churn_window_days": churn_days})}),
    }


DEEP_EXAMPLES = {"/segment": 60, "/forecast": 60, "/recommend": 60, "/kpis": 60, "/kpis/upload": 60, "/kpis/": 15}  # "/kpis/": each named KPI


def test_plausible_bodies_with_extreme_values_never_5xx(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/docs.json", headers=AUTH, timeout=30)
    bodies = _bodies()
    operations = [r.ok() for r in schema.get_all_operations() if r.ok().method.upper() == "POST"]
    targets = [(op, p if p in bodies else "/kpis") for op in operations if (p := op.path) in bodies or p.startswith("/kpis/")]
    assert {p for _, p in targets} == set(bodies) and len(targets) > len(bodies), [op.path for op, _ in targets]
    started = time.time()
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    with requests.Session() as session:
        for op, key in targets:
            examples = DEEP_EXAMPLES[op.path if op.path in DEEP_EXAMPLES else "/kpis/"]

            @given(body=bodies[key])
            @settings(
                max_examples=examples, deadline=None, derandomize=DERANDOMIZE, database=None,
                suppress_health_check=list(HealthCheck), print_blob=False,
            )
            def run(body: dict) -> None:
                case = op.Case(body=body, media_type="multipart/form-data" if "file" in body else "application/json")
                resp = case.call_and_validate(base_url=server.url, session=session, headers=AUTH, checks=[not_a_server_error], timeout=30)
                statuses.setdefault(op.path, Counter())[resp.status_code] += 1

            try:
                run()
            except Exception as exc:
                failures.append(f"POST {op.path}:\n{exc}")
    print(f"deep fuzz: {sum(sum(c.values()) for c in statuses.values())} cases in {time.time() - started:.1f} s")
    print("deep fuzz: " + ", ".join(f"{p} {dict(c)}" for p, c in sorted(statuses.items())))
    assert not failures, "\n\n".join(failures)
    reached = {p: c.get(200, 0) for p, c in statuses.items() if p in bodies}
    assert all(reached.values()), f"some endpoints never answered 200, so the fuzz did not reach their models: {reached}"
