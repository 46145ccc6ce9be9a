"""The model registry: versions, aliases, the decision's tags, listing and manual promotion."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from serving.models.registry import unwrap
from training.decision import CHALLENGER, CHAMPION
from training.tracking.artifacts import LoggedModel, set_tags


@dataclass
class Decision:
    version: str
    alias: str
    reason: str
    candidate_score: float
    champion_score: float | None
    champion_version: str | None
    baseline_score: float
    champion_error: str | None = None  # the current champion could not be loaded or scored
    objective: str = ""
    refit_on_all_data: bool = False
    gate: dict[str, Any] = field(default_factory=dict)  # the registry gate's setting and paired tests (training.gate)


#: what a logged pyfunc model cannot load without (training/tracking/artifacts.py `log_model` writes them)
REQUIRED_ARTIFACTS = ("MLmodel", "python_model.pkl", "requirements.txt", "code")


class ArtifactsMissing(RuntimeError):
    """A logged model's artifacts are not all in the artifact store: it is not registered."""


def missing_artifacts(model: LoggedModel) -> list[str]:
    """What of REQUIRED_ARTIFACTS the store does not hold for `model` (an empty file or folder counts as missing).

    Read back from the store, not assumed from the log call: a tracking server restarted while a job
    logged its model may have lost an upload that the client's retries did not redo.
    """
    import mlflow.artifacts

    root = mlflow.get_logged_model(model.uri.removeprefix("models:/")).artifact_location
    found = {Path(f.path).name: f for f in mlflow.artifacts.list_artifacts(artifact_uri=root)}
    missing = []
    for name in REQUIRED_ARTIFACTS:
        entry = found.get(name)
        if entry is None or (not entry.is_dir and not entry.file_size):
            missing.append(name)
        elif entry.is_dir and not mlflow.artifacts.list_artifacts(artifact_uri=f"{root}/{name}"):
            missing.append(f"{name}/")
    return missing


def register(model: LoggedModel, name: str) -> str:
    """Register `model` under `name`, only once its artifacts are all in the store (else ArtifactsMissing)."""
    missing = missing_artifacts(model)
    if missing:
        raise ArtifactsMissing(f"model {model.uri} of run {model.run_id} is not registered: the artifact store "
                               f"lacks {', '.join(missing)} (was the tracking server restarted while it was logged?)")
    version = mlflow.register_model(model.uri, name, await_registration_for=60)
    return str(version.version)


def champion_version(name: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_registered(name: str, version: str, family: str) -> Any:
    """The servable model of a registered version, checked against its family's Protocol."""
    return unwrap(mlflow.pyfunc.load_model(f"models:/{name}/{version}"), family)


def set_alias(name: str, version: str, alias: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))


def record_decision(name: str, decision: Decision) -> None:
    """Alias the version, and log the decision and the scores on the version and the parent run."""
    set_alias(name, decision.version, decision.alias)
    tags = {
        "ecomlab.decision": decision.alias,
        "ecomlab.decision_reason": decision.reason,
        "ecomlab.candidate_score": decision.candidate_score,
        "ecomlab.champion_score": "" if decision.champion_score is None else decision.champion_score,
        "ecomlab.champion_version": decision.champion_version or "",
        "ecomlab.baseline_score": decision.baseline_score,
        "ecomlab.objective": decision.objective,
        "ecomlab.refit_on_all_data": str(decision.refit_on_all_data).lower(),
        "ecomlab.champion_error": decision.champion_error or "",
        **decision.gate,
    }
    tag_version(name, decision.version, tags)
    set_tags({**tags, "ecomlab.registered_version": decision.version})


def list_models(name: str | None = None) -> list[dict[str, Any]]:
    """Every version (of `name` only, when given), newest first per model, with its aliases, decision and score."""
    client = MlflowClient()
    rows = []
    for rm in client.search_registered_models(f"name='{name}'" if name else None):
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            objective = mv.tags.get("ecomlab.objective", "")
            rows.append(
                {
                    "name": rm.name,
                    "version": str(mv.version),
                    "aliases": sorted(a for a, v in (rm.aliases or {}).items() if str(v) == str(mv.version)),
                    "decision": mv.tags.get("ecomlab.decision", ""),
                    "score": _float(mv.tags.get("ecomlab.candidate_score")),
                    "objective": objective,
                    "direction": mv.tags.get("ecomlab.direction") or objective_direction(objective),
                    "run_id": mv.run_id,
                    "created": pd.Timestamp(mv.creation_timestamp, unit="ms").strftime("%Y-%m-%d %H:%M"),
                }
            )
    return sorted(rows, key=lambda r: (r["name"], -int(r["version"])))


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


@cache
def objective_direction(objective: str) -> str:
    """'maximize' or 'minimize' for a family's objective (versions registered before the direction was tagged)."""
    from serving.models.registry import FAMILIES
    from training.families import family_for

    for name in FAMILIES:
        family = family_for(name)
        if family.objective_name == objective:
            return family.direction
    return ""


def promote(name: str, version: str) -> str | None:
    """Make `version` the champion by hand (people override the automatic decision); returns the former champion.

    The alias moves and both versions' decision tags follow it: the promoted version drops any other
    alias (a challenger alias would leave it listed as `challenger,champion`), the former champion
    becomes a challenger whose reason names the version that replaced it."""
    client = MlflowClient()
    target = client.get_model_version(name, version)  # raises a clear MlflowException if absent
    former = champion_version(name)
    client.set_registered_model_alias(name, CHAMPION, version)
    for alias in target.aliases or []:
        if alias != CHAMPION:
            client.delete_registered_model_alias(name, alias)
    replaced = f", replacing version {former}" if former and former != str(version) else ""
    tag_version(name, version, {"ecomlab.decision": CHAMPION, "ecomlab.decision_reason": f"promoted by hand{replaced}"})
    if replaced:
        tag_version(name, former, {
            "ecomlab.decision": CHALLENGER,
            "ecomlab.decision_reason": f"replaced by version {version}, promoted by hand",
        })
    return former


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(MlflowClient().get_run(run_id).data.metrics)

