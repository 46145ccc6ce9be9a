"""The MLflow reads behind `ecomlab runs list` and `ecomlab runs compare`: parent runs, references, losses.

A reference is a run id, a model version `name/3` or an alias `name@champion` (a version's run is the
job's parent run, which holds the per-unit losses of its candidate under `losses/`)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.identity import DATA, SPLIT, UNITS

LOSSES = "losses"
PAGE = 1000


class UnknownReference(LookupError):
    """A run id, version or alias the store does not hold, or an experiment it does not know."""


@dataclass(frozen=True)
class RunSummary:
    """A job's parent run as the comparison needs it."""

    run_id: str
    run_name: str
    experiment_id: str
    job: str
    family: str
    status: str
    started: str  # UTC, minutes
    start_time: int  # ms since the epoch, to order runs
    objective: str
    direction: str
    score: float | None  # best_<objective>: the candidate on the test split
    baseline: float | None
    decision: str
    version: str
    data_digest: str
    eval_split: str
    eval_units: str
    trial_of: str = ""  # the parent run id when this is a trial run
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(run: Run) -> RunSummary:
    tags, metrics = run.data.tags, dict(run.data.metrics)
    family = tags.get("ecomlab.family", "")
    objective = tags.get("ecomlab.objective") or _family_objective(family)[0]
    direction = _family_objective(family)[1] if family else ""
    return RunSummary(
        run_id=run.info.run_id, run_name=run.info.run_name or "", experiment_id=run.info.experiment_id,
        job=tags.get("ecomlab.job", ""), family=family, status=run.info.status,
        started=pd.Timestamp(run.info.start_time or 0, unit="ms").strftime("%Y-%m-%d %H:%M"),
        start_time=int(run.info.start_time or 0), objective=objective, direction=direction,
        score=metrics.get(f"best_{objective}"), baseline=metrics.get(f"baseline_{objective}"),
        decision=tags.get("ecomlab.decision", ""), version=tags.get("ecomlab.registered_version", ""),
        data_digest=tags.get(DATA, ""), eval_split=tags.get(SPLIT, ""), eval_units=tags.get(UNITS, ""),
        trial_of=tags.get("mlflow.parentRunId", ""), metrics=metrics,
    )


def _family_objective(family: str) -> tuple[str, str]:
    """(objective, direction) of a family; ("", "") for a run that names none."""
    from serving.models.registry import FAMILIES
    from training.families import family_for

    if family not in FAMILIES:
        return "", ""
    fam = family_for(family)
    return fam.objective_name, fam.direction


def parent_runs(experiment: str) -> list[RunSummary]:
    """The experiment's job runs (not their trials), newest first."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise UnknownReference(f"no experiment {experiment!r} in this store (it has: {', '.join(names) or 'none'})")
    out, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"],
                                  max_results=PAGE, page_token=token)
        out += [summarize(r) for r in page if "mlflow.parentRunId" not in r.data.tags and "ecomlab.job" in r.data.tags]
        token = page.token
        if not token:
            return out


def resolve(ref: str) -> RunSummary:
    """The parent run behind a run id, `name/VERSION` or `name@ALIAS`; UnknownReference naming `ref` if absent."""
    client = MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.rsplit("@", 1)
            run_id = client.get_model_version_by_alias(name, alias).run_id
        elif "/" in ref and ref.rsplit("/", 1)[1].isdigit():
            name, version = ref.rsplit("/", 1)
            run_id = client.get_model_version(name, version).run_id
        else:
            run_id = ref
        return summarize(client.get_run(run_id))
    except MlflowException as exc:
        what = "model version" if "/" in ref else "alias" if "@" in ref else "run id"
        raise UnknownReference(f"unknown {what} {ref!r}: {exc.message.splitlines()[0]}") from None


def has_losses(run_id: str, name: str = "candidate") -> bool:
    return any(a.path == f"{LOSSES}/{name}.parquet" for a in MlflowClient().list_artifacts(run_id, LOSSES))


def load_losses(run_id: str, name: str = "candidate") -> pd.DataFrame:
    """A run's per-unit losses (`losses/<name>.parquet`); FileNotFoundError when it has none."""
    if not has_losses(run_id, name):
        raise FileNotFoundError(f"run {run_id} has no {LOSSES}/{name}.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        path = MlflowClient().download_artifacts(run_id, f"{LOSSES}/{name}.parquet", tmp)
        return pd.read_parquet(Path(path))


def attach(run_id: str, texts: dict[str, str]) -> list[str]:
    """Text artifacts (path -> content) on a run, finished or not; the paths written."""
    client = MlflowClient()
    for path, text in texts.items():
        client.log_text(run_id, text, path)
    return list(texts)
