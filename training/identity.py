"""What makes two runs comparable: the same data, and the same evaluation units split the same way.

A run records (tags on its parent run) the data digest (`ecomlab.data_digest`, logged with the data set),
`ecomlab.eval_split`, a digest of the family and the config sections that decide which units are held
out and how they are scored, and `ecomlab.eval_units`, a digest of the held-out units themselves (the
key columns of the candidate's per-unit losses). `ecomlab runs compare` pairs losses only when all
three match."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

DATA, SPLIT, UNITS = "ecomlab.data_digest", "ecomlab.eval_split", "ecomlab.eval_units"

#: the `model:` sections that define the evaluation data (which units, what their actual values are);
#: the search space and fit limits are left out, so runs tuned differently still compare
EVALUATION_SECTIONS = ("features", "series", "evaluation", "backtest", "season_length")
#: keys of those sections that only shape tuning (the forecaster's selection windows precede the test ones)
TUNING_ONLY = {"backtest": ("selection_folds",)}
#: the columns of a per-unit loss table that name a unit (series x fold x step, basket, customer, replicate)
UNIT_KEYS = ("series_id", "fold", "step", "ds", "basket_id", "hidden_item", "customer_id", "replicate")


def evaluation_identity(family: str, model_cfg: dict[str, Any], losses: pd.DataFrame | None) -> dict[str, str]:
    """The `eval_split` and `eval_units` tags of a run (its data digest is tagged with the data set)."""
    split: dict[str, Any] = {"family": family}
    for section in EVALUATION_SECTIONS:
        if section in model_cfg:
            value = model_cfg[section]
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in TUNING_ONLY.get(section, ())}
            split[section] = value
    return {SPLIT: _digest(json.dumps(split, sort_keys=True, default=str)), UNITS: units_digest(losses)}


def units_digest(losses: pd.DataFrame | None) -> str:
    """A digest of the units' keys, whatever their order; "" without losses."""
    if losses is None:
        return ""
    keys = [c for c in UNIT_KEYS if c in losses.columns]
    if not keys:
        return _digest(str(len(losses)))
    frame = losses[keys].astype(str).sort_values(keys, kind="mergesort")
    return _digest(frame.to_csv(index=False))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
