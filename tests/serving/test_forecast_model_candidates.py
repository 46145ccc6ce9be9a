"""A registered forecaster whose series use ETS, Theta and combinations loads and forecasts in a fresh
interpreter where `training` cannot be imported, giving the in-process answers (intervals included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.sources import load
from tests.helpers import tiny_job
from tests.serving.test_standalone_models import CHILD
from training import tracking
from training.config import load_job_config
from training.families import family_for

RECIPES = [
    {"method": "ets", "error": "add", "ets_trend": "add", "damped": True, "ets_season": "n"},
    {"method": "theta", "deseasonalize": False},
    {"method": "combo", "members": [{"method": "ets", "error": "mul", "ets_trend": "n", "ets_season": "n"},
                                    {"method": "theta", "deseasonalize": False},
                                    {"method": "sarimax", "p": 0, "d": 1, "q": 1, "fourier": 1}]},
]


@pytest.mark.slow  # one subprocess that imports MLflow
def test_ets_theta_and_combination_series_load_and_forecast_without_training(tracking_dir: Path) -> None:
    job, cfg = load_job_config(tiny_job("forecaster", tracking_dir))
    family = family_for("forecaster")
    feats = family.features(load(job.data_path()), cfg)
    ids = feats.ids
    params = {"method": "snaive", "per_series": {uid: RECIPES[i % len(RECIPES)] for i, uid in enumerate(ids)}}
    model = family.servable(family.fit(feats, params, cfg), cfg)
    assert {m.method for m in model.models.values()} >= {"ets", "theta", "combo"}
    example = pd.DataFrame({"series_id": ids, "horizon": [cfg.horizon] * len(ids), "levels": [[50, 80, 95]] * len(ids)})
    expected = model.predict(None, example)
    tracking.setup()
    with tracking.parent_run("standalone", "forecaster-candidates", {}):
        logged = tracking.log_model(model, example, expected)
    example.to_pickle(tracking_dir / "example.pkl")
    out = tracking_dir / "out.pkl"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, logged.uri, "forecaster", str(tracking_dir / "example.pkl"), str(out)],
        cwd=tracking_dir, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["heavy"] == [] and facts["module"].startswith("serving.models.")
    served = pd.read_pickle(out)
    pd.testing.assert_frame_equal(served, expected)
    assert set(served["model"]) == {m.method for m in model.models.values()}
