"""A worker's view of an RDB study: Optuna's cache layer, plus the trial this process is running kept in memory.

Optuna 5's `_CachedStorage` (what `optuna.create_study` puts in front of an `RDBStorage`) caches finished
trials only. A worker then reads its own running trial back from the database three times per trial (when
the `Trial` is made, when it is told, and for the `optimize` callbacks), six statements each (the trial row
and one lazy load per attribute table), and reads every unfinished trial (six more) to learn that no trial
is waiting. On PostgreSQL each statement costs 1-2 ms of CPU in SQLAlchemy's ORM on these cores.

`WorkerStorage` answers those reads without a statement:
- a trial this process created (`create_new_trial`: Optuna's backend hands back the frozen trial) or claimed
  (a WAITING trial it set RUNNING: read once) is kept, and every write this process makes to it goes to the
  database first and then to the kept copy, so the copy is what the database holds. No other process writes
  to a running trial; one that finds it stale can only finish it FAIL, and then this process's next write
  to it is refused by the database (Optuna's `UpdateFinishedTrialError`), as without the copy;
- once the trial is finished its copy takes the state, values and completion time written: the `optimize`
  callbacks read it; it is dropped at the next finish;
- "which trials are WAITING" is one `EXISTS`, and the full read only when one is;
- while a trial of this process runs, a read of the study's unfinished trials less than `REUSE_SECONDS` old,
  with no write by this process since, serves the next read: TPE (`constant_liar`, Optuna 5's default)
  reads them twice within a millisecond while it samples a trial, and the second read is then the first, a
  moment earlier. Without a running trial of its own (a coordinator following the study) every read is
  a read of the database.

Writes to this process's running trial (a parameter or attribute it does not hold yet, and the finishing
state and values) are one short Core transaction each instead of an ORM session that first reads the trial
back (training/study_sql.py): the row goes in only `WHERE EXISTS` the trial is still RUNNING (the finish:
the trial row locked and its state checked), and where that finds the trial finished elsewhere, Optuna's own
path runs and raises what it raises. The parameter's distribution is checked against the study's, as Optuna's
cache layer checks it. The finish stamps the completion time itself, so the copy needs no read-back. Anything
else (a trial of another process, a value written twice) takes Optuna's path. The cache layer's read of new
and unfinished trials is six Core statements too. With these, the worker loop's overhead over an in-memory
study went from 82 to 43 ms per trial here (`bench/tuning.py`).

Every write still goes to the database before it returns, so what other workers and a crash see is the same
as with Optuna's own layer. Written against Optuna 5.0 (`_CachedStorage` and its
`_read_trials_from_remote_storage`, `RDBStorage._create_new_trial`, the RDB schema);
`tests/training/test_worker_storage.py` fails if an upgrade changes what it relies on.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import time
from collections.abc import Container, Sequence
from typing import Any

from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.trial import FrozenTrial, TrialState

from training import study_sql


REUSE_SECONDS = 0.5  # how old a read of the study's unfinished trials may be to serve another read


def _stored(value: Any) -> Any:
    """A JSON attribute as it reads back from the database (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))


class WorkerStorage(_CachedStorage):
    """Optuna's cached RDB storage; this process's running trials are answered from memory."""

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._own: dict[int, FrozenTrial] = {}  # trial id -> what the database holds for it
        self._claimed: set[int] = set()  # WAITING trials this process set RUNNING, not read yet
        self._own_lock = threading.Lock()
        self._read_at: dict[int, float] = {}  # study id -> when its unfinished trials were read (no write since)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._own_lock = threading.Lock()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_own_lock", None)
        return state

    # ---------------------------------------------------------------- reads

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._own_lock:
            own = self._own.get(trial_id)
            if own is not None:
                return copy.deepcopy(own)  # `Trial` writes into what it is given
            claimed = trial_id in self._claimed
        trial = super().get_trial(trial_id)
        if claimed and trial.state == TrialState.RUNNING:
            with self._own_lock:
                self._claimed.discard(trial_id)
                self._own[trial_id] = copy.deepcopy(trial)
        return trial

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if isinstance(states, (tuple, list, set, frozenset)) and set(states) == {TrialState.WAITING} and not self._any_waiting(study_id):
            return []
        return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._own_lock:  # only a sampler's reads, while a trial of ours runs: never a coordinator's
            sampling = any(t.state == TrialState.RUNNING for t in self._own.values())
        if sampling and time.monotonic() - self._read_at.get(study_id, float("-inf")) < REUSE_SECONDS:
            return
        # Optuna 5.0's `_CachedStorage._read_trials_from_remote_storage`, with the read in Core (study_sql.py)
        with self._lock:
            if study_id not in self._studies:
                self._studies[study_id] = _StudyInfo()
            study = self._studies[study_id]
            trials = study_sql.read_trials(self._backend.engine, study_id, study.unfinished_trial_ids, study.last_finished_trial_id)
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:
                if not trial.state.is_finished():
                    study.unfinished_trial_ids.add(trial._trial_id)
                    continue
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial._trial_id)
                study.unfinished_trial_ids.discard(trial._trial_id)
        self._read_at[study_id] = time.monotonic()

    def _any_waiting(self, study_id: int) -> bool:
        return study_sql.any_waiting(self._backend.engine, study_id)

    # ---------------------------------------------------------------- heartbeats (Core: study_sql.py)

    def record_heartbeat(self, trial_id: int) -> None:
        study_sql.beat(self._backend.engine, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        backend = self._backend
        assert backend.heartbeat_interval is not None
        grace = backend.grace_period if backend.grace_period is not None else 2 * backend.heartbeat_interval
        return study_sql.stale_trial_ids(backend.engine, study_id, grace)

    # ---------------------------------------------------------------- writes (database first, then the copy)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        self._read_at.clear()
        with self._lock:
            _, number = self._trial_id_to_study_id_and_number[trial_id]
            created = self._studies[study_id].trials[number]
        if created.state == TrialState.RUNNING:
            with self._own_lock:
                self._own[trial_id] = copy.deepcopy(created)
        return trial_id

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: distributions.BaseDistribution,
    ) -> None:
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            checked = self._studies[study_id].param_distribution.get(param_name)  # what Optuna's layer checks against
        own = self._running(trial_id)
        if own is None or checked is None or param_name in own.params:
            super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        else:
            distributions.check_distribution_compatibility(checked, distribution)
            if not self._insert_if_running("trial_params", trial_id, param_name=param_name, param_value=param_value_internal,
                                           distribution_json=distributions.distribution_to_json(distribution)):
                super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._update(trial_id, lambda t: (t.distributions.__setitem__(param_name, distribution),
                                          t.params.__setitem__(param_name, distribution.to_external_repr(param_value_internal))))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        own = self._running(trial_id)
        if own is None or key in own.user_attrs or not self._insert_if_running(
                "trial_user_attributes", trial_id, key=key, value_json=json.dumps(value)):
            super().set_trial_user_attr(trial_id, key, value)
        self._update(trial_id, lambda t: t.user_attrs.__setitem__(key, _stored(value)))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        own = self._running(trial_id)
        if own is None or key in own.system_attrs or not self._insert_if_running(
                "trial_system_attributes", trial_id, key=key, value_json=json.dumps(value)):
            super().set_trial_system_attr(trial_id, key, value)
        self._update(trial_id, lambda t: t.system_attrs.__setitem__(key, _stored(value)))

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._update(trial_id, lambda t: t.intermediate_values.__setitem__(step, float(intermediate_value)))

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        stamped = None
        try:
            stamped = self._finish_if_running(trial_id, state, values)
            changed = True if stamped is not None else super().set_trial_state_values(trial_id, state, values)
        except Exception:
            self._forget(trial_id)  # finished elsewhere (stale heartbeat) or the database failed: read it back
            raise
        finally:
            self._read_at.clear()
        if state == TrialState.RUNNING:
            if changed:
                with self._own_lock:
                    self._claimed.add(trial_id)
            return changed
        if state.is_finished():
            self._finish(trial_id, state, values, stamped)
        return changed

    def _running(self, trial_id: int) -> FrozenTrial | None:
        """This process's copy of `trial_id` while it is RUNNING, else None."""
        with self._own_lock:
            own = self._own.get(trial_id)
        return own if own is not None and own.state == TrialState.RUNNING else None

    def _insert_if_running(self, table: str, trial_id: int, **row: Any) -> bool:
        return study_sql.insert_if_running(self._backend.engine, table, trial_id, row)

    def _finish_if_running(self, trial_id: int, state: TrialState, values: Sequence[float] | None) -> datetime.datetime | None:
        """This process's running trial finished in one transaction; the completion time stored. None where the
        trial is not ours, holds values already or is no longer RUNNING: Optuna's path decides."""
        own = self._running(trial_id)
        if own is None or not state.is_finished() or own.values is not None:
            return None
        return study_sql.finish_if_running(self._backend.engine, trial_id, state, values)

    def _update(self, trial_id: int, change: Any) -> None:
        """After a write to `trial_id`: no earlier read is reused (one made while the write was under way
        included), and the kept copy takes the change."""
        self._read_at.clear()
        with self._own_lock:
            own = self._own.get(trial_id)
            if own is not None:
                change(own)

    def _finish(self, trial_id: int, state: TrialState, values: Sequence[float] | None, utc: datetime.datetime | None) -> None:
        """The copy as finished: state and values as written, the completion time stored (`utc`, or one read where
        Optuna's path stamped it)."""
        with self._own_lock:
            own = self._own.get(trial_id)
        if own is None:
            return
        import sqlalchemy as sa
        from optuna.storages._rdb import models

        trial = models.TrialModel
        if utc is None:
            with self._backend.engine.connect() as conn:
                utc = conn.execute(sa.select(trial._datetime_complete_utc).where(trial.trial_id == trial_id)).scalar_one()
        stamped = study_sql.local_time(utc)  # naive UTC to local, as Optuna reads it
        with self._own_lock:
            own.state, own.datetime_complete = state, stamped
            own.values = [float(v) for v in values] if values is not None else None
            for done in [k for k, t in self._own.items() if k != trial_id and t.state.is_finished()]:
                del self._own[done]  # the last finished trial is kept for the `optimize` callbacks' read

    def _forget(self, trial_id: int) -> None:
        with self._own_lock:
            self._own.pop(trial_id, None)
            self._claimed.discard(trial_id)
