"""The worker's storage layer (training/worker_storage.py): what it answers from memory is what the database
holds, it runs fewer statements per trial than Optuna's own cache layer, and a trial finished by another
process is not told twice. On SQLite and on a throwaway PostgreSQL database (tests/pg.py).

These tests also fail if an Optuna upgrade changes what the layer relies on: `_CachedStorage` keeping the
created trial, `RDBStorage._create_new_trial`, and the reads `Trial`, `tell` and `optimize` make.
"""

from __future__ import annotations

import math

from collections.abc import Iterator
from datetime import timedelta
from contextlib import nullcontext
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import FrozenTrial, TrialState

from tests import pg
from training.worker_storage import WorkerStorage

FIELDS = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs",
          "intermediate_values", "datetime_start", "datetime_complete")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'optuna.db'}"
    else:
        with pg.database() as db:
            yield db


def fields(trial: FrozenTrial) -> dict:
    """The trial's fields, NaN written as "nan" (NaN equals nothing, not even itself)."""
    def nan_free(value: object) -> object:
        if isinstance(value, dict):
            return {k: nan_free(v) for k, v in value.items()}
        if isinstance(value, list):
            return [nan_free(v) for v in value]
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    return {f: nan_free(getattr(trial, f)) for f in FIELDS}


def plain(url: str) -> RDBStorage:
    return RDBStorage(url)


def objective_checking_reads(url: str, seen: dict[int, dict]):  # noqa: ANN201
    """An objective that writes every kind of trial attribute and, after each, checks that what the worker
    storage answers equals a fresh read of the database by another storage object."""
    reader = plain(url)

    def same(trial: optuna.Trial) -> None:
        ours = trial.study._storage.get_trial(trial._trial_id)
        assert fields(ours) == fields(reader.get_trial(trial._trial_id))

    def objective(trial: optuna.Trial) -> float:
        same(trial)
        x = trial.suggest_float("x", -3, 3)
        k = trial.suggest_int("k", 1, 9)
        kind = trial.suggest_categorical("kind", ["a", "b", None])
        same(trial)
        trial.set_user_attr("run", {"worker": "w", "tuple": (1, 2), "nested": {"n": [1.5]}})
        trial.study._storage.set_trial_system_attr(trial._trial_id, "note", ("x", 1))
        trial.report(x * k, step=0)
        trial.report(float("nan"), step=1)
        same(trial)
        if trial.number % 5 == 3:
            raise optuna.TrialPruned("pruned on purpose")
        if trial.number % 5 == 4:
            raise ValueError("failed on purpose")
        seen[trial.number] = {"x": x, "k": k, "kind": kind}
        return (x - 1) ** 2 + k

    return objective


def test_answers_from_memory_equal_the_database(url: str) -> None:
    """Through `optimize` with TPE (constant liar): every read of the running trial equals the database's, the
    callbacks get the finished trial as stored, and the study read back by plain Optuna is the one the
    objective saw. Enqueued trials (claimed WAITING, read once) go the same way."""
    storage = WorkerStorage(plain(url))
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=4))
    study.enqueue_trial({"x": 0.5, "k": 2, "kind": "b"})
    study.enqueue_trial({"x": -1.0, "k": 7, "kind": None})
    seen: dict[int, dict] = {}
    told: list[FrozenTrial] = []
    reader = plain(url)

    def callback(_study: optuna.Study, frozen: FrozenTrial) -> None:
        told.append(frozen)
        assert fields(frozen) == fields(reader.get_trial(frozen._trial_id))

    study.optimize(objective_checking_reads(url, seen), n_trials=14, catch=(ValueError,), callbacks=[callback])
    stored = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in stored] == [t.state for t in told] and len(stored) == 14
    assert {t.state for t in stored} == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert stored[0].params == {"x": 0.5, "k": 2, "kind": "b"} and stored[1].params["kind"] is None
    assert {t.number: t.params for t in stored if t.state == TrialState.COMPLETE} == seen
    assert all(t.user_attrs["run"]["tuple"] == [1, 2] and t.system_attrs["note"] == ["x", 1] for t in stored)
    assert storage._own.keys() <= {told[-1]._trial_id}  # no running trial is kept after the study


def test_trial_finished_by_another_process_is_not_told_again(url: str) -> None:
    """A worker whose trial was failed by another (a stale heartbeat) is refused by the database when it
    tells, as without the layer, and reads the trial's real state afterwards."""
    storage = WorkerStorage(plain(url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.suggest_int("k", 1, 3)
    assert plain(url).set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial._trial_id, "late", 1)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [1.0])
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL


def count_statements(url: str, storage: optuna.storages.BaseStorage, trials: int) -> float:
    """Statements per trial of `trials` TPE trials with three parameters, after 5 to warm up."""
    engine = storage._backend.engine
    counted = [0]

    def count(*_args: object) -> None:
        counted[0] += 1

    study = optuna.create_study(storage=storage, study_name="count", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))

    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1) + trial.suggest_int("k", 1, 5) + (trial.suggest_categorical("c", ["a", "b"]) == "a")

    study.optimize(objective, n_trials=5, callbacks=[lambda s, t: None])
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        study.optimize(objective, n_trials=trials, callbacks=[lambda s, t: None])
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return counted[0] / trials


@pytest.mark.parametrize("scheme", ["sqlite", "postgresql"])
def test_fewer_statements_per_trial_than_optunas_cache(scheme: str, tmp_path: Path) -> None:
    """The statements the layer saves are real: the running trial is not read back (three reads of six
    statements with Optuna's `_CachedStorage`), no full read finds no WAITING trial, TPE's second read in a
    trial is the first. Measured against Optuna's layer on the same database kind."""
    def db(name: str):  # noqa: ANN202
        if scheme == "sqlite":
            return nullcontext(f"sqlite:///{tmp_path / name}")
        return pg.database()

    with db("a.db") as a, db("b.db") as b:
        theirs = count_statements(a, _CachedStorage(plain(a)), 10)
        ours = count_statements(b, WorkerStorage(plain(b)), 10)
    assert theirs >= 40 and ours <= theirs - 25, (theirs, ours)


def test_a_process_without_a_running_trial_reads_the_database_every_time(url: str) -> None:
    """A coordinator following the study (no trial of its own running) sees another worker's trial end at
    once: reads are reused only while a trial of this process samples."""
    follower = optuna.create_study(storage=WorkerStorage(plain(url)), study_name="s")
    worker = optuna.load_study(study_name="s", storage=url)
    trial = worker.ask()
    assert [t.state for t in follower.get_trials(deepcopy=False)] == [TrialState.RUNNING]
    worker.tell(trial, 1.0)
    assert [t.state for t in follower.get_trials(deepcopy=False)] == [TrialState.COMPLETE]


def study_of_every_kind(url: str) -> tuple[RDBStorage, int]:
    """A study holding trials in every state, with every kind of stored value (infinities, NaN, None as a
    categorical choice, nested attributes), written by plain Optuna."""
    storage = plain(url)
    study = optuna.create_study(storage=storage, study_name="kinds")
    study.enqueue_trial({"x": 0.25, "kind": None})
    for value in (1.5, float("inf"), float("-inf")):
        trial = study.ask()
        trial.suggest_float("x", 1e-3, 10, log=True)
        trial.suggest_categorical("kind", ["a", None])
        trial.set_user_attr("nested", {"n": [1, (2, 3)], "s": "é"})
        study.tell(trial, value)
    pruned = study.ask()
    for step, v in enumerate((0.5, float("nan"), float("inf"))):
        pruned.report(v, step)
    study.tell(pruned, state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    running = study.ask()
    running.suggest_int("k", 1, 9)
    storage.set_trial_system_attr(running._trial_id, "note", ["x", 1])
    study.enqueue_trial({"x": 2.0})
    return storage, study._study_id


def test_core_read_of_trials_equals_optunas(url: str) -> None:
    """study_sql.read_trials gives what RDBStorage._get_trials gives, field by field and id by id, for the
    reads the cache layer makes: everything, what is new since a finished trial, and that plus unfinished ones.
    A study that does not exist raises Optuna's KeyError; one without trials gives none."""
    from training import study_sql

    storage, study_id = study_of_every_kind(url)
    ids = [t._trial_id for t in storage.get_all_trials(study_id)]
    unfinished = {t._trial_id for t in storage.get_all_trials(study_id) if not t.state.is_finished()}
    assert len(ids) == 7 and len(unfinished) == 2  # the first enqueued trial was asked for; the second waits
    for included, above in [(set(), -1), (set(), ids[2]), (unfinished, ids[2]), (unfinished, ids[-1]), ({ids[0], 10**6}, ids[3])]:
        theirs = storage._get_trials(study_id, None, set(included), above)
        ours = study_sql.read_trials(storage.engine, study_id, set(included), above)
        assert [t._trial_id for t in ours] == [t._trial_id for t in theirs] and theirs
        assert [fields(t) for t in ours] == [fields(t) for t in theirs]
    empty = optuna.create_study(storage=storage, study_name="empty")._study_id
    assert study_sql.read_trials(storage.engine, empty, set(), -1) == []
    with pytest.raises(KeyError):
        study_sql.read_trials(storage.engine, empty + 1000, set(), -1)


def test_writes_the_layer_makes_itself_keep_optunas_checks(url: str) -> None:
    """The one-statement writes to a running trial refuse what Optuna refuses (another distribution kind or
    other choices under a name the study knows), and a second write of an attribute replaces the first, as
    Optuna's path does; the kept copy stays what the database holds."""
    storage = WorkerStorage(plain(url))
    study = optuna.create_study(storage=storage, study_name="s")
    first = study.ask()
    first.suggest_int("k", 1, 9)
    first.suggest_categorical("c", ["a", "b"])
    study.tell(first, 1.0)
    trial = study.ask()
    with pytest.raises(ValueError, match="different distribution kind"):
        trial.suggest_float("k", 1, 9)
    with pytest.raises(ValueError, match="dynamic value space"):
        trial.suggest_categorical("c", ["a", "b", "c"])
    trial.suggest_int("k", 2, 5)
    trial.set_user_attr("a", 1)
    trial.set_user_attr("a", {"now": 2})
    storage.set_trial_system_attr(trial._trial_id, "s", 1)
    storage.set_trial_system_attr(trial._trial_id, "s", 3)
    stored = plain(url).get_trial(trial._trial_id)
    assert stored.params == {"k": trial.params["k"]} and stored.user_attrs == {"a": {"now": 2}} and stored.system_attrs == {"s": 3}
    assert fields(storage.get_trial(trial._trial_id)) == fields(stored)
    study.tell(trial, float("-inf"))
    told = plain(url).get_trial(trial._trial_id)
    assert told.values == [float("-inf")] and fields(storage.get_trial(trial._trial_id)) == fields(told)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning", "ignore::optuna.exceptions.ExperimentalWarning")
def test_core_heartbeats_and_stale_trials_equal_optunas(url: str) -> None:
    """study_sql.beat writes what RDBStorage.record_heartbeat writes (one row per trial, the database's time),
    and study_sql.stale_trial_ids finds what RDBStorage._get_stale_trial_ids finds: running trials whose
    beat is older than the grace period; a trial that never beat, or has finished, is not stale."""
    from training import study_sql

    storage = RDBStorage(url, heartbeat_interval=60, grace_period=120)
    study = optuna.create_study(storage=storage, study_name="beats")
    theirs, ours, silent, old, done = (study.ask()._trial_id for _ in range(5))
    storage.record_heartbeat(theirs)
    for trial_id in (ours, ours, old, done):
        study_sql.beat(storage.engine, trial_id)
    beats = study_sql.TABLES["trial_heartbeats"]
    with storage.engine.begin() as conn:
        stamped = dict(conn.execute(sa.select(beats.c.trial_id, beats.c.heartbeat)).all())
        assert sorted(stamped) == sorted([theirs, ours, old, done])
        assert abs(stamped[ours] - stamped[theirs]) < timedelta(seconds=30)
        for trial_id in (old, done):
            conn.execute(beats.update().where(beats.c.trial_id == trial_id).values(heartbeat=stamped[trial_id] - timedelta(hours=1)))
    storage.set_trial_state_values(done, TrialState.COMPLETE, [1.0])
    assert study_sql.stale_trial_ids(storage.engine, study._study_id, 120) == storage._get_stale_trial_ids(study._study_id) == [old]
    study_sql.beat(storage.engine, old)  # beating again makes it live
    assert study_sql.stale_trial_ids(storage.engine, study._study_id, 120) == storage._get_stale_trial_ids(study._study_id) == []
    assert silent not in stamped
