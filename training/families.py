"""The model families the platform knows, by name; each is one module in `training/`."""

from __future__ import annotations

from importlib import import_module
from typing import Any

FAMILIES: dict[str, str] = {
    "segmenter": "training.segment:SegmenterFamily",
    "forecaster": "training.forecast:ForecasterFamily",
    "recommender": "training.rules:RecommenderFamily",
}


def family_for(name: str) -> Any:
    """An instance of the family called `name` (imported only when used)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    module, cls = FAMILIES[name].split(":")
    return getattr(import_module(module), cls)()
