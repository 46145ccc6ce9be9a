"""Every registered family through the whole Family surface on tiny data: the contract the platform relies on."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import cloudpickle
import optuna
import pandas as pd
import pytest

from features.config_io import Strict
from features.sources import load
from serving.models.registry import FAMILIES
from tests.helpers import tiny_job
from training.config import load_job_config
from training.families import family_for
from training.family import Evaluation, Family, Report, Split, TrialResult

HOOKS = [n for n, v in vars(Family).items() if inspect.isfunction(v) and not n.startswith("_")]
ATTRIBUTES = ["name", "direction", "objective_name", "config_model", "refit_on_all_data"]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def setup(request, tmp_path_factory):
    name = request.param
    job, cfg = load_job_config(tiny_job(name, tmp_path_factory.mktemp(name)))
    family = family_for(name)
    feats = family.features(load(job.data_path()), cfg)
    study = optuna.create_study(direction=family.direction)
    for params in family.initial_trials(cfg)[:1]:
        study.enqueue_trial(params)
    params = family.search_space(study.ask(), cfg)
    return family, cfg, feats, family.split(feats, cfg), params


def test_every_hook_and_attribute_is_declared(setup) -> None:
    family, cfg, *_ = setup
    missing = [h for h in HOOKS if not callable(getattr(type(family), h, None))]
    missing += [a for a in ATTRIBUTES if not hasattr(family, a)]
    assert not missing, f"{family.name} lacks {missing}"
    assert family.name in FAMILIES and family.direction in ("maximize", "minimize")
    assert issubclass(family.config_model, Strict) and isinstance(cfg, family.config_model)


def test_split_and_a_trial_equal_the_one_score(setup) -> None:
    family, cfg, feats, split, params = setup
    assert isinstance(split, Split)
    trial = family.evaluate(split.train, split.valid, params, cfg)
    model = family.servable(family.fit(split.train, params, cfg), cfg)
    assert isinstance(trial, Evaluation)
    assert family.score(model, split.valid, cfg).objective == pytest.approx(trial.objective, rel=1e-9, nan_ok=True)
    assert family.select([TrialResult(params, trial)], params, cfg).keys() >= params.keys()


def test_servable_model_implements_its_protocol_and_scores_the_same_after_pickling(setup) -> None:
    family, cfg, feats, split, params = setup
    model = family.servable(family.fit(split.train, params, cfg), cfg)
    assert isinstance(model, FAMILIES[family.name].protocol) and model.family == family.name
    assert "training" not in type(model).__module__
    again = pickle.loads(cloudpickle.dumps(model))
    assert family.score(again, split.test, cfg).objective == pytest.approx(family.score(model, split.test, cfg).objective, nan_ok=True)


def test_baseline_is_scored_by_the_same_function(setup) -> None:
    family, cfg, feats, split, params = setup
    ev = family.score(family.baseline(split.train, cfg), split.test, cfg)
    assert isinstance(ev, Evaluation) and ev.objective == ev.objective  # a number, not NaN


def test_report_is_pure_and_the_example_is_what_the_model_predicts(setup) -> None:
    family, cfg, feats, split, params = setup
    fitted = family.fit(split.train, params, cfg)
    model = family.servable(fitted, cfg)
    before = cloudpickle.dumps((fitted, model))
    report = family.report(fitted, feats, cfg)
    assert isinstance(report, Report) and cloudpickle.dumps((fitted, model)) == before
    example, output = family.example(model, fitted, cfg)
    assert isinstance(example, pd.DataFrame) and len(example)
    pd.testing.assert_frame_equal(model.predict(None, example), output)


def test_new_family_needs_no_platform_change() -> None:
    """The platform reads families from the registry only: no family name is written in it."""
    root = Path(__file__).resolve().parents[2] / "training"
    for module in ("jobs.py", "tuning.py", "decision.py", "families.py", "config.py"):
        text = (root / module).read_text()
        assert not any(f'"{name}"' in text for name in FAMILIES), module
