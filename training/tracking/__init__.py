"""Every MLflow call of the training side: tracking URI, experiments, runs, artifacts, registry, aliases.

Trainers return plain results; this package decides how they are logged (`runs`: URI, experiments,
parent and trial runs; `artifacts`: what a run holds; `registry`: versions, aliases, decisions).
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from serving.tracking_uri import default_tracking_uri, resolve_tracking_uri  # noqa: E402
from training.decision import CHALLENGER, CHAMPION  # noqa: E402
from training.tracking.artifacts import (  # noqa: E402
    LoggedModel,
    log_config,
    log_dataset,
    log_figures,
    log_json,
    log_losses,
    log_metrics,
    log_model,
    log_params,
    log_tables,
    set_tags,
)
from training.tracking.registry import (  # noqa: E402
    Decision,
    champion_version,
    list_models,
    load_registered,
    promote,
    record_decision,
    register,
    run_metrics,
    set_alias,
    tag_version,
)
from training.tracking.runs import (  # noqa: E402
    REPORTED_PACKAGES,
    RUNTIME_PACKAGES,
    artifact_root,
    context_tags,
    end_trial_run,
    ensure_experiment,
    experiment_of,
    flatten,
    git_commit,
    package_versions,
    parent_run,
    pip_requirements,
    setup,
    start_trial_run,
)

for noisy in ("alembic", "urllib3"):
    logging.getLogger(noisy).setLevel(logging.WARNING)

__all__ = [
    "CHALLENGER", "CHAMPION", "REPORTED_PACKAGES", "RUNTIME_PACKAGES", "Decision", "LoggedModel", "artifact_root",
    "champion_version", "context_tags", "default_tracking_uri", "end_trial_run", "ensure_experiment", "experiment_of",
    "flatten", "git_commit", "list_models", "load_registered", "log_config", "log_dataset", "log_figures", "log_json",
    "log_losses", "log_metrics", "log_model", "log_params", "log_tables", "package_versions", "parent_run",
    "pip_requirements", "promote", "record_decision", "register", "resolve_tracking_uri", "run_metrics", "set_alias",
    "set_tags", "setup", "start_trial_run", "tag_version",
]
