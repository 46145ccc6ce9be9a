"""How full a shared study is, read with as few statements as possible: on an RDB storage one aggregate query
for the worker loop and one COUNT per trial's claim (`training.tuning.work`), where reading every trial back
takes six statements and grows with the study; in memory, the trials themselves.
"""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from training import study_sql


def _rdb(study: optuna.Study) -> RDBStorage | None:
    """The study's RDB storage (behind Optuna's cache layer), None for in-memory studies."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, RDBStorage) else None


def _places(study: optuna.Study) -> tuple[Counter[TrialState], int]:
    """(trials by state, FAIL trials of our own making: with an "error" attribute). On an RDB storage one
    aggregate query, where reading the trials back takes six statements and grows with the study."""
    rdb = _rdb(study)
    if rdb is None:
        stored = study.get_trials(deepcopy=False)
        return Counter(t.state for t in stored), sum(1 for t in stored if t.state == TrialState.FAIL and "error" in t.user_attrs)
    rows = study_sql.state_counts(rdb.engine, study._study_id)
    counts = Counter({state: n for state, n, _ in rows})  # the column is an Enum of TrialState
    return counts, sum(errors for state, _, errors in rows if state == TrialState.FAIL)


def _ahead(study: optuna.Study, number: int) -> int:
    """Trials numbered below `number` that run or ran to completion (one COUNT on an RDB storage)."""
    active = (TrialState.COMPLETE, TrialState.RUNNING)
    rdb = _rdb(study)
    if rdb is None:
        return sum(1 for t in study.get_trials(deepcopy=False, states=active) if t.number < number)
    return study_sql.count_ahead(rdb.engine, study._study_id, number, active)
