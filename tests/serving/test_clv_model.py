"""The servable customer-lifetime model (serving/models/clv.py): per-row terms, defaults, bad rows named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.btyd import BetaGeoParams, GammaGammaParams
from serving.models.clv import ClvModel

MODEL = ClvModel(BetaGeoParams(0.25, 4.0, 0.8, 2.5), "bgnbd", GammaGammaParams(6.0, 4.0, 15.0), "W", 52, 0.1, 520)
ROWS = pd.DataFrame({"customer_id": ["a", "b", "c"], "frequency": [2.0, 0.0, 5.0], "recency": [5.0, 0.0, 30.0],
                     "T": [10.0, 8.0, 31.0], "monetary": [20.0, 0.0, 12.5]})


def test_rows_with_their_own_terms_equal_separate_calls() -> None:
    rows = ROWS.assign(horizon=[26.0, None, 104.0], discount_rate=[None, 0.2, 0.0])
    out = MODEL.predict(None, rows)
    for i, (h, d) in enumerate([(26.0, 0.1), (52.0, 0.2), (104.0, 0.0)]):
        one = MODEL.value(*(ROWS[c].to_numpy()[i:i + 1] for c in ("frequency", "recency", "T", "monetary")), h, d)
        for name, value in one.items():
            assert out[name].iloc[i] == pytest.approx(value[0], rel=1e-12), (i, name)
    assert out["customer_id"].tolist() == ["a", "b", "c"]  # passed through


def test_defaults_and_the_value_ordering() -> None:
    plain = MODEL.predict(None, ROWS)
    assert np.allclose(plain["clv"], MODEL.predict(None, ROWS.assign(horizon=52.0, discount_rate=0.1))["clv"])
    assert (plain["p_alive"].between(0, 1)).all() and plain["p_alive"].iloc[1] == 1.0  # BG/NBD: alive until a repeat


@pytest.mark.parametrize(
    ("change", "message"),
    [({"recency": [50.0, 0.0, 30.0]}, r"row 0 column 'recency': 50.0 is greater than T"),
     ({"monetary": [20.0, 0.0, 0.0]}, r"row 2 column 'monetary': 0.0 is zero spend"),
     ({"horizon": [26.0, 900.0, None]}, r"row 1: horizon: 900.0 is not a number in \(0, 520\] weeks"),
     ({"discount_rate": ["x", None, None]}, r"row 0 column 'discount_rate': 'x' is not a number")],
)
def test_bad_rows_are_named(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MODEL.predict(None, ROWS.assign(**change))
