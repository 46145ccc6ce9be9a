"""Tuning on many workers: one study in PostgreSQL shared by real worker processes (issue 12, section 2).

The slow tests start real `ecomlab train` processes against a throwaway PostgreSQL database
(tests/pg.py) and an MLflow SQLite store in tmp_path; the collision and usage tests are fast.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from typer.testing import CliRunner

from features.config_io import ConfigError
from features.sources import load
from tests import pg
from tests.helpers import REPO
from tests.training.test_platform import write_job
from training import tracking
from training.cli import app
from training.config import load_job_config
from training.families import family_for
from training.jobs import HANDED_SPLIT, join_job, study_name
from training.places import _ahead, _places, _rdb
from training.tuning import collect, open_study

N_TRIALS = 4
FAST = ["tuning.heartbeat_interval=1", "tuning.grace_period=2"]  # a killed worker's trial is stale in ~2 s


def ecomlab(*args: str, cwd: Path, uri: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "training.cli", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def overrides(storage: str) -> list[str]:
    return [arg for o in [f"tuning.storage={storage}", *FAST] for arg in ("--set", o)]


def trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.fixture
def pg_storage():
    with pg.database() as url:
        yield url


@pytest.mark.slow
def test_two_workers_fill_the_study_once(tracking_dir: Path, pg_storage: str) -> None:
    tmp_path, uri = tracking_dir, os.environ["MLFLOW_TRACKING_URI"]
    config = write_job(tmp_path, **{"tuning.n_trials": N_TRIALS})
    proc = ecomlab("train", str(config), "--workers", "2", *overrides(pg_storage), cwd=tmp_path, uri=uri)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "--join" in out  # the command other machines run to join is printed

    stored = trials(pg_storage, "test-segment-segment")
    complete = [t for t in stored if t.state == TrialState.COMPLETE]
    assert len(complete) == N_TRIALS
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("test-segment").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in nested} == {parents[0].info.run_id}
    assert sorted(r.info.run_id for r in nested if r.info.status == "FINISHED") == sorted(t.user_attrs["run"]["run_id"] for t in complete)
    assert len(client.search_model_versions("name='ecomlab-segmenter'")) == 1
    assert parents[0].data.metrics["trials_complete"] == N_TRIALS and parents[0].data.metrics["trials_retried"] == 0


@pytest.mark.slow
def test_killed_worker_trial_is_failed_retried_and_counted_once(tracking_dir: Path, pg_storage: str) -> None:
    """Worker A is SIGKILLed mid-trial; worker B, started after, fails A's trial by its stale heartbeat,
    runs its retry and fills the study: exactly N_TRIALS COMPLETE, the killed one FAIL."""
    tmp_path, uri = tracking_dir, os.environ["MLFLOW_TRACKING_URI"]
    config = write_job(tmp_path, n_customers=5000, **{"tuning.n_trials": N_TRIALS, "model.search.n_init": [20]})  # trials long enough to be caught running
    job, model_cfg = load_job_config(config, [f"tuning.storage={pg_storage}", *FAST])
    family, name = family_for(job.family), study_name(job)
    tracking.setup(uri)
    with tracking.parent_run(job.experiment, "kill-test", {}) as parent:
        study = open_study(family, model_cfg, job.tuning, name)
        study.set_user_attr("ecomlab.parent_run", parent)
        study.set_user_attr("ecomlab.data_digest", load(job.data_path()).source_digest)
        killed = _kill_mid_trial(lambda: ecomlab("train", str(config), "--join", parent, *overrides(pg_storage), cwd=tmp_path, uri=uri),
                                 pg_storage, name)
        worker_b = ecomlab("train", str(config), "--join", parent, *overrides(pg_storage), cwd=tmp_path, uri=uri)
        out, _ = worker_b.communicate(timeout=90)
        assert worker_b.returncode == 0, out

    stored = {t.number: t for t in trials(pg_storage, name)}
    assert stored[killed].state == TrialState.FAIL
    retries = [t for t in stored.values() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in stored.values()) == N_TRIALS
    result = collect(optuna.load_study(study_name=name, storage=pg_storage))  # what the coordinator reads back
    assert (result.n_complete, result.n_retried, len(result.trials)) == (N_TRIALS, 1, N_TRIALS)
    assert "4 of 4 complete trials" in out
    print(f"kill test: asked {N_TRIALS}, completed {N_TRIALS}, killed trial {killed} retried as {retries[0].number}")


def _kill_mid_trial(start_worker: Callable[[], subprocess.Popen[str]], storage: str, name: str) -> int:
    """Start worker A and SIGKILL it while one of its trials runs; that trial's number (left RUNNING by the
    dead worker). A kill that lands just after the trial it saw running has ended (a busy machine) finds no
    trial left running: worker A is started again (its finished trials stay: the study is filled to N_TRIALS
    either way)."""
    for _attempt in range(3):
        worker = start_worker()
        deadline = time.monotonic() + 60
        while not any(t.state == TrialState.RUNNING and "run" in t.user_attrs for t in trials(storage, name)):
            assert worker.poll() is None, worker.communicate()[0]
            if time.monotonic() > deadline:
                worker.kill()
                raise AssertionError("worker A never started a trial")
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        left = [t.number for t in trials(storage, name) if t.state == TrialState.RUNNING]
        if left:
            return left[0]
    raise AssertionError("three kills in a row landed between trials")


# ---- fast: collisions and usage ----


def test_worker_started_by_the_job_tunes_on_the_data_it_is_handed(tracking_dir: Path, pg_storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker `--workers` starts gets the coordinator's train and valid data in a file (HANDED_SPLIT) and
    tunes on them without loading the data or building features (here it could not: the data config is
    gone); the study's data digest is still checked."""
    uri = os.environ["MLFLOW_TRACKING_URI"]
    job, model_cfg = load_job_config(write_job(tracking_dir, **{"tuning.n_trials": 2}), [f"tuning.storage={pg_storage}", *FAST])
    family, name, loaded = family_for(job.family), study_name(job), load(job.data_path())
    split = family.split(family.features(loaded, model_cfg), model_cfg)
    handed = tracking_dir / "split.pickle"
    tracking.setup(uri)
    with tracking.parent_run(job.experiment, "handed", {}) as parent:
        study = open_study(family, model_cfg, job.tuning, name)
        study.set_user_attr("ecomlab.parent_run", parent)
        study.set_user_attr("ecomlab.data_digest", "another digest")
        handed.write_bytes(pickle.dumps((loaded.source_digest, split.train, split.valid)))
        job.data_path().unlink()
        monkeypatch.setenv(HANDED_SPLIT, str(handed))
        with pytest.raises(ConfigError, match="differs from the data the job run"):
            join_job(job, model_cfg, parent)
        study.set_user_attr("ecomlab.data_digest", loaded.source_digest)
        monkeypatch.setenv(HANDED_SPLIT, str(handed))
        done = join_job(job, model_cfg, parent)
    assert done.study_complete == 2 and HANDED_SPLIT not in os.environ  # read once: a process it starts loads its own
    assert all(t.user_attrs["run"]["parent_run"] == parent for t in trials(pg_storage, name) if t.state == TrialState.COMPLETE)


def test_place_counts_on_postgresql_equal_the_study_read_back(pg_storage: str) -> None:
    """The worker loop's counts (one aggregate query, one COUNT per claim on an RDB storage) are what reading
    every trial back gives: states, our own failures (an "error" attribute) and the trials ahead of each."""
    study = optuna.create_study(storage=pg_storage, study_name="places")
    assert _rdb(study) is not None and _rdb(optuna.create_study()) is None
    for i in range(9):
        trial = study.ask()
        if i % 3 == 0:
            study.tell(trial, float(i))
        elif i % 3 == 1:
            if i > 4:
                trial.set_user_attr("error", "ValueError: bad k")
            trial.set_user_attr("other", 1)
            study.tell(trial, state=TrialState.FAIL)
    stored = study.get_trials(deepcopy=False)
    counts, own = _places(study)
    assert counts == Counter(t.state for t in stored) == Counter({TrialState.COMPLETE: 3, TrialState.FAIL: 3, TrialState.RUNNING: 3})
    assert own == sum(1 for t in stored if t.state == TrialState.FAIL and "error" in t.user_attrs) == 1
    active = (TrialState.COMPLETE, TrialState.RUNNING)
    for number in range(10):
        assert _ahead(study, number) == sum(1 for t in stored if t.state in active and t.number < number)




def test_study_with_another_search_space_is_refused(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    job, cfg = load_job_config(write_job(tmp_path), [f"tuning.storage={storage}", "tuning.study_name=shared"])
    family = family_for(job.family)
    open_study(family, cfg, job.tuning, "x")
    assert open_study(family, cfg, job.tuning, "x").study_name == "shared"  # the same space loads again

    _, narrower = load_job_config(write_job(tmp_path), [f"tuning.storage={storage}", "model.search.k_max=5"])
    with pytest.raises(ConfigError, match=r"study 'shared' in sqlite:///.* holds another search space \(parameters k differ\)"):
        open_study(family, narrower, job.tuning, "x")
    clv_job, clv_cfg = load_job_config(REPO / "configs" / "clv.yaml", [f"tuning.storage={storage}", "tuning.study_name=shared"])
    with pytest.raises(ConfigError, match=r"holds another search space \(family segmenter, not clv\)"):
        open_study(family_for("clv"), clv_cfg, clv_job.tuning, "x")


def test_collision_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = write_job(tmp_path)
    job, cfg = load_job_config(config, [f"tuning.storage={storage}"])
    open_study(family_for(job.family), cfg, job.tuning, study_name(job))
    args = ["train", str(config), "--join", "abc", "--set", f"tuning.storage={storage}", "--set", "model.search.k_min=3"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds another search space (parameters k differ)" in lines[0]


def test_many_workers_need_a_storage(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(write_job(tmp_path)), "--workers", "2"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "tuning.storage: --workers 2 needs a shared study storage" in result.output
    assert len(result.output.strip().splitlines()) == 1
