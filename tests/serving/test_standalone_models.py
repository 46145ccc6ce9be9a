"""Registered models stand on their own: each loads and predicts in a fresh interpreter where
`training` cannot be imported, with the code logged beside it, and gives the in-process answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.sources import load
from serving.models.registry import FAMILIES
from tests.helpers import tiny_job
from training import tracking
from training.config import load_job_config
from training.families import family_for

CHILD = r"""
import importlib.abc, json, sys

class NoTraining(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "training" or name.startswith("training."):
            raise ModuleNotFoundError(f"training is blocked in this interpreter ({name})")
        return None

sys.meta_path.insert(0, NoTraining())
import mlflow.pyfunc
import pandas as pd

uri, family, example, out = sys.argv[1:5]
loaded = mlflow.pyfunc.load_model(uri)  # puts the model's code first on sys.path
from serving.models.registry import unwrap

model = unwrap(loaded, family)
pd.to_pickle(model.predict(None, pd.read_pickle(example)), out)
heavy = sorted(m for m in ("training", "optuna", "matplotlib") if m in sys.modules)
print(json.dumps({"heavy": heavy, "module": type(model).__module__, "serving_from": sys.modules["serving"].__file__}))
"""


@pytest.mark.slow  # a subprocess per family
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_registered_model_loads_and_predicts_without_training(name: str, tracking_dir: Path) -> None:
    job, cfg = load_job_config(tiny_job(name, tracking_dir))
    family = family_for(name)
    split = family.split(family.features(load(job.data_path()), cfg), cfg)
    study_params = family.initial_trials(cfg)[:1] or [None]
    params = study_params[0] or _sampled(family, cfg)
    fitted = family.fit(split.train, params, cfg)
    model = family.servable(fitted, cfg)
    example, expected = family.example(model, fitted, cfg)
    tracking.setup()
    with tracking.parent_run("standalone", name, {}):
        logged = tracking.log_model(model, example, expected)
    example.to_pickle(tracking_dir / "example.pkl")
    out = tracking_dir / "out.pkl"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, logged.uri, name, str(tracking_dir / "example.pkl"), str(out)],
        cwd=tracking_dir, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["heavy"] == [], f"loading a {name} imported {facts['heavy']}"
    assert facts["module"].startswith("serving.models.")
    assert "code" in Path(facts["serving_from"]).parts  # the model's own copy of its code was used
    pd.testing.assert_frame_equal(pd.read_pickle(out), model.predict(None, example))


def _sampled(family, cfg) -> dict:
    import optuna

    return family.search_space(optuna.create_study(direction=family.direction).ask(), cfg)
