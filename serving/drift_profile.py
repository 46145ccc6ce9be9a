"""The reference profile a registered model carries (artifacts/reference_profile.json in its folder)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from features.profile import PROFILE_ARTIFACT, PROFILE_FILE, PROFILE_VERSION

log = logging.getLogger("ecomlab.serving")


def read_profile(loaded: Any) -> dict[str, Any] | None:
    """The profile of a loaded `mlflow.pyfunc` model, or None for a model registered before profiles.

    MLflow hands a python model's artifacts to it through its context (local paths in the model's
    downloaded folder); the pyfunc wrapper keeps that context, so the profile loads with the model
    through `models:/name@alias` and needs no second trip to the registry.
    """
    impl = getattr(loaded, "_model_impl", None)
    artifacts = getattr(getattr(impl, "context", None), "artifacts", None) or {}
    path = artifacts.get(PROFILE_ARTIFACT)
    if not path:
        return None
    try:
        profile = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        log.warning("reference profile at %s unreadable: %s", path, exc)
        return None
    return _checked(profile, path)


def _checked(profile: Any, path: str) -> dict[str, Any] | None:
    if not isinstance(profile, dict) or profile.get("version") != PROFILE_VERSION or not isinstance(profile.get("features"), dict):
        log.warning("reference profile at %s has an unknown layout; drift is off for this model", path)
        return None
    return profile


def drift_columns(family: str, frame: Any) -> dict[str, Any]:
    """The profiled columns of a frame of model inputs (what `ecomlab score` reads): the recommender's
    baskets become their items and sizes; other families' columns are taken as they are."""
    if family == "recommender":
        baskets = [list(b) if b is not None else [] for b in frame["items"]]
        return {"items": [i for b in baskets for i in b], "basket_size": [len(b) for b in baskets]}
    return {c: frame[c].to_numpy() for c in frame.columns}


def fetch_profile(resolved_uri: str) -> dict[str, Any] | None:
    """The profile beside a registered model (`models:/NAME/VERSION` or `runs:/RUN/PATH`), None without one."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{resolved_uri.rstrip('/')}/artifacts/{PROFILE_FILE}")
    except Exception as exc:  # no such artifact: a model registered before profiles
        log.info("no reference profile for %s: %s", resolved_uri, exc)
        return None
    return _checked(json.loads(Path(path).read_text()), path)
