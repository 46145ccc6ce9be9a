"""The training side of the family registry (`serving.models.registry.FAMILIES`): name -> family instance."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from serving.models.registry import FAMILIES


def family_for(name: str) -> Any:
    """An instance of the family called `name` (its package is imported only when used)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    module, cls = FAMILIES[name].training.split(":")
    return getattr(import_module(module), cls)()
