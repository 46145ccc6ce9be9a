"""Optuna's RDB tables read and written in SQLAlchemy Core, for the worker's storage layer (worker_storage.py).

Optuna's `RDBStorage` goes through the ORM for every call: a session, the trial read back before each write,
each statement built anew. On these cores that is 3-4 ms of CPU per write and ~8 ms per read of the study's
new trials, most of a trial's overhead once the objective is fast. Here each statement is built once and
run with its parameters; a write is one short transaction; the reads fill `FrozenTrial`s exactly as Optuna's
`_build_frozen_trial_from_trial_model` does (the tests compare every field with a plain `RDBStorage` read).
Written against Optuna 5.0's schema (`optuna/storages/_rdb/models.py`).
"""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from optuna import distributions
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

TABLES = models.BaseModel.metadata.tables
TRIALS = models.TrialModel.__table__
_STATEMENTS: dict[tuple[str, ...], Any] = {}  # built once: building a statement costs more than running it


def _statement(key: tuple[str, ...], build: Any) -> Any:
    if key not in _STATEMENTS:
        _STATEMENTS[key] = build()
    return _STATEMENTS[key]


def insert_if_running(engine: sa.Engine, table: str, trial_id: int, row: dict[str, Any]) -> bool:
    """One row into `table` for `trial_id`, in one statement that inserts it only while the trial is RUNNING
    (`INSERT ... SELECT :values WHERE EXISTS (the trial, RUNNING)`). False where it is not."""
    def build() -> Any:
        target, names = TABLES[table], ["trial_id", *row]
        source = sa.select(*(sa.bindparam(k, type_=target.c[k].type) for k in names)).where(
            sa.exists().where(TRIALS.c.trial_id == sa.bindparam("trial_id"), TRIALS.c.state == TrialState.RUNNING))
        return target.insert().from_select(names, source).execution_options(preserve_rowcount=True)

    statement = _statement(("insert", table, *row), build)
    with engine.begin() as conn:
        return conn.execute(statement, {"trial_id": trial_id, **row}).rowcount == 1


def finish_if_running(engine: sa.Engine, trial_id: int, state: TrialState, values: Sequence[float] | None) -> datetime.datetime | None:
    """A RUNNING trial without values finished in one transaction: its row locked and its state checked, the
    values inserted, state and completion time set. The completion time as stored (naive UTC, as Optuna
    stores it); None, with nothing written, where the trial is no longer RUNNING."""
    lock = _statement(("lock",), lambda: sa.select(TRIALS.c.state).where(TRIALS.c.trial_id == sa.bindparam("id")).with_for_update())
    finish = _statement(("finish",), lambda: TRIALS.update().where(TRIALS.c.trial_id == sa.bindparam("id")).values(
        state=sa.bindparam("state", type_=TRIALS.c.state.type), datetime_complete=sa.bindparam("utc", type_=TRIALS.c.datetime_complete.type)))
    with engine.begin() as conn:
        if conn.execute(lock, {"id": trial_id}).scalar_one_or_none() != TrialState.RUNNING:
            return None
        if values is not None:
            rows = [dict(zip(("value", "value_type"), models.TrialValueModel.value_to_stored_repr(v)), trial_id=trial_id, objective=i)
                    for i, v in enumerate(values)]
            conn.execute(TABLES["trial_values"].insert(), rows)
        utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        conn.execute(finish, {"id": trial_id, "state": state, "utc": utc})
    return utc


def any_waiting(engine: sa.Engine, study_id: int) -> bool:
    """Whether the study holds a WAITING (enqueued) trial: one `EXISTS`."""
    statement = _statement(("waiting",), lambda: sa.select(sa.exists().where(
        TRIALS.c.study_id == sa.bindparam("study_id"), TRIALS.c.state == TrialState.WAITING)))
    with engine.connect() as conn:
        return bool(conn.execute(statement, {"study_id": study_id}).scalar_one())


def beat(engine: sa.Engine, trial_id: int) -> None:
    """`RDBStorage.record_heartbeat`: the trial's heartbeat set to the database's current time (its row made
    at the first beat). One transaction of one statement (two at the first beat), no ORM session."""
    beats = TABLES["trial_heartbeats"]
    update = _statement(("beat",), lambda: beats.update().where(beats.c.trial_id == sa.bindparam("id")).values(
        heartbeat=sa.func.current_timestamp()).execution_options(preserve_rowcount=True))
    first = _statement(("first beat",), lambda: beats.insert().values(trial_id=sa.bindparam("id"), heartbeat=sa.func.current_timestamp()))
    with engine.begin() as conn:
        if conn.execute(update, {"id": trial_id}).rowcount == 0:
            conn.execute(first, {"id": trial_id})


def stale_trial_ids(engine: sa.Engine, study_id: int, grace_seconds: float) -> list[int]:
    """`RDBStorage._get_stale_trial_ids`: the study's RUNNING trials whose last heartbeat is more than
    `grace_seconds` older than the database's current time (trials that never beat are not stale). One
    statement: each running trial's heartbeat beside the database's time, compared here as Optuna compares."""
    beats = TABLES["trial_heartbeats"]
    statement = _statement(("stale",), lambda: sa.select(TRIALS.c.trial_id, beats.c.heartbeat, sa.func.now()).join_from(
        TRIALS, beats, beats.c.trial_id == TRIALS.c.trial_id).where(
        TRIALS.c.study_id == sa.bindparam("study_id"), TRIALS.c.state == TrialState.RUNNING))
    with engine.connect() as conn:
        rows = conn.execute(statement, {"study_id": study_id}).all()
    grace = datetime.timedelta(seconds=grace_seconds)
    return [trial_id for trial_id, heartbeat, now in rows if now.replace(tzinfo=None) - heartbeat > grace]


def state_counts(engine: sa.Engine, study_id: int) -> list[tuple[TrialState, int, int]]:
    """(state, trials, trials with an "error" user attribute) for each state the study's trials are in."""
    attrs = TABLES["trial_user_attributes"]
    statement = _statement(("states",), lambda: sa.select(TRIALS.c.state, sa.func.count(), sa.func.count(attrs.c.trial_id))
                           .select_from(TRIALS)
                           .outerjoin(attrs, sa.and_(attrs.c.trial_id == TRIALS.c.trial_id, attrs.c.key == "error"))
                           .where(TRIALS.c.study_id == sa.bindparam("study_id")).group_by(TRIALS.c.state))
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(statement, {"study_id": study_id})]


def count_ahead(engine: sa.Engine, study_id: int, number: int, states: Sequence[TrialState]) -> int:
    """The study's trials numbered below `number` in one of `states`."""
    statement = _statement(("ahead",), lambda: sa.select(sa.func.count()).select_from(TRIALS).where(
        TRIALS.c.study_id == sa.bindparam("study_id"), TRIALS.c.state.in_(sa.bindparam("states", expanding=True)),
        TRIALS.c.number < sa.bindparam("number")))
    with engine.connect() as conn:
        return int(conn.execute(statement, {"study_id": study_id, "states": list(states), "number": number}).scalar_one())


def local_time(utc: datetime.datetime | None) -> datetime.datetime | None:
    """A stored naive-UTC time as Optuna's `TrialModel` hands it out (naive local time)."""
    return None if utc is None else utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


_CHILDREN = {  # table -> the columns read, in Optuna's order of the rows (its primary key)
    "trial_params": ("param_id", "param_name", "param_value", "distribution_json"),
    "trial_values": ("trial_value_id", "objective", "value", "value_type"),
    "trial_user_attributes": ("trial_user_attribute_id", "key", "value_json"),
    "trial_system_attributes": ("trial_system_attribute_id", "key", "value_json"),
    "trial_intermediate_values": ("trial_intermediate_value_id", "step", "intermediate_value", "intermediate_value_type"),
}


def read_trials(engine: sa.Engine, study_id: int, included: Iterable[int], greater_than: int) -> list[FrozenTrial]:
    """What `RDBStorage._get_trials(study_id, None, included, greater_than)` returns: the study's trials with an
    id above `greater_than` or in `included` (those not above it), by id. Six statements in one transaction;
    a seventh only where none is found, to raise Optuna's KeyError for a study that does not exist."""
    ids = sorted(i for i in included if i <= greater_than)

    def which(table: sa.Table) -> Any:
        chosen = sa.select(TRIALS.c.trial_id).where(TRIALS.c.study_id == sa.bindparam("study_id"),
                                                    sa.or_(TRIALS.c.trial_id > sa.bindparam("above"),
                                                           TRIALS.c.trial_id.in_(sa.bindparam("ids", expanding=True))))
        return table.c.trial_id.in_(chosen)

    trials = _statement(("trials",), lambda: sa.select(
        TRIALS.c.trial_id, TRIALS.c.number, TRIALS.c.state, TRIALS.c.datetime_start, TRIALS.c.datetime_complete,
    ).where(which(TRIALS)).order_by(TRIALS.c.trial_id))
    args = {"study_id": study_id, "above": greater_than, "ids": ids}
    children: dict[str, dict[int, list[Any]]] = {}
    with engine.connect() as conn:
        rows = conn.execute(trials, args).all()
        if not rows:
            studies = TABLES["studies"]
            if conn.execute(sa.select(studies.c.study_id).where(studies.c.study_id == study_id)).first() is None:
                raise KeyError(models.NOT_FOUND_MSG)
            return []
        for table, columns in _CHILDREN.items():
            t = TABLES[table]
            statement = _statement(("children", table), lambda t=t, columns=columns: sa.select(t.c.trial_id, *(t.c[c] for c in columns)).where(
                which(t)).order_by(t.c[columns[0]]))
            children[table] = defaultdict(list)
            for row in conn.execute(statement, args):
                children[table][row[0]].append(row[1:])
    return [_frozen(row, {table: found.get(row.trial_id, []) for table, found in children.items()}) for row in rows]


def _frozen(trial: Any, rows: dict[str, list[Any]]) -> FrozenTrial:
    """A `FrozenTrial` from a trial row and its child rows, as `RDBStorage._build_frozen_trial_from_trial_model`."""
    values = None
    if rows["trial_values"]:
        values = [0.0] * len(rows["trial_values"])
        for _, objective, value, kind in rows["trial_values"]:
            values[objective] = models.TrialValueModel.stored_repr_to_value(value, kind)
    dists = {name: distributions.json_to_distribution(dist) for _, name, _, dist in rows["trial_params"]}
    return FrozenTrial(
        number=trial.number, state=trial.state, value=None, values=values,
        datetime_start=local_time(trial.datetime_start), datetime_complete=local_time(trial.datetime_complete),
        params={name: dists[name].to_external_repr(value) for _, name, value, _ in rows["trial_params"]},
        distributions=dists,
        user_attrs={key: json.loads(value) for _, key, value in rows["trial_user_attributes"]},
        system_attrs={key: json.loads(value) for _, key, value in rows["trial_system_attributes"]},
        intermediate_values={step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(value, kind)
                             for _, step, value, kind in rows["trial_intermediate_values"]},
        trial_id=trial.trial_id,
    )
