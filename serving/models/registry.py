"""The one registry of model families: the name, the servable Protocol, the service route and
where the family's training code lives. Job configs, the service's routes and the training
platform all read it; adding a family is one line here plus its packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.models.base import ForecasterModel, LifetimeModel, RecommenderModel, SegmenterModel, Servable


@dataclass(frozen=True)
class FamilyEntry:
    name: str
    protocol: type  # what a served model of this family implements
    route: str  # the service's POST endpoint
    training: str  # "module:Class" of the training family; imported by training only


FAMILIES: dict[str, FamilyEntry] = {
    e.name: e
    for e in (
        FamilyEntry("segmenter", SegmenterModel, "/segment", "training.segment:SegmenterFamily"),
        FamilyEntry("forecaster", ForecasterModel, "/forecast", "training.forecast:ForecasterFamily"),
        FamilyEntry("recommender", RecommenderModel, "/recommend", "training.rules:RecommenderFamily"),
        FamilyEntry("clv", LifetimeModel, "/clv", "training.clv:ClvFamily"),
    )
}


def known_family(name: str) -> str:
    """`name` if the registry has it; a ValueError naming the known families otherwise (config validators)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return name


class NotServable(TypeError):
    """A loaded model is not a servable model of the expected family; the message says what it is."""


def servable(python_model: Any, family: str) -> Any:
    """`python_model` if it implements `family`'s Protocol, else NotServable naming what it is."""
    entry = FAMILIES.get(family)
    if entry is None:
        raise NotServable(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    got = getattr(python_model, "family", None)
    if got != family or not isinstance(python_model, entry.protocol):
        raise NotServable(
            f"the model is a {type(python_model).__module__}.{type(python_model).__name__} "
            f"(family {got!r}), not a servable {family} model ({entry.protocol.__name__}); "
            "re-register it with the current code (ecomlab quickstart or ecomlab train)"
        )
    return python_model


def unwrap(loaded: Any, family: str) -> Any:
    """The servable inside a loaded `mlflow.pyfunc` model, checked against `family`'s Protocol."""
    try:
        inner = loaded.unwrap_python_model()
    except Exception as exc:  # other flavours have no python model
        raise NotServable(f"the model is not an ecomlab {family} model: {exc}") from None
    return servable(inner, family)


def code_paths() -> list[Path]:
    """The package folders every registered model is logged with (`features` turns raw rows into inputs)."""
    root = Path(__file__).resolve().parents[2]
    return [root / "serving", root / "features"]


def is_servable(model: Any) -> bool:
    return isinstance(model, Servable)
