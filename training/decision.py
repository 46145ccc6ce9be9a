"""The registry decision, once for every family: champion only if the candidate beats the baseline and
the current champion on the same evaluation data; a champion that cannot be scored never loses silently."""

from __future__ import annotations

import math
from dataclasses import dataclass

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass
class Scores:
    """One family's score of each contender on the same evaluation data."""

    direction: str
    objective: str
    candidate: float
    baseline: float
    champion: float | None = None  # None: no champion, or it could not be scored (see champion_error)
    champion_error: str | None = None


def better(a: float, b: float, direction: str) -> bool:
    """`a` beats `b`; a non-finite score never beats anything, and anything finite beats it."""
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if direction == "maximize" else a < b


def decide(s: Scores, promote: str = "auto", replace_unloadable: bool = False) -> tuple[str, str]:
    """(alias, reason) for the new version."""
    if promote == "never":
        return CHALLENGER, "promotion disabled in the config (registry.promote: never)"
    if not better(s.candidate, s.baseline, s.direction):
        return CHALLENGER, f"does not beat the baseline ({s.objective} {s.candidate:.4g} vs baseline {s.baseline:.4g})"
    beats = f"beats the baseline ({s.objective} {s.candidate:.4g} vs {s.baseline:.4g})"
    if s.champion_error is not None:
        if replace_unloadable:
            return CHAMPION, f"{beats}; replaces a champion that could not be loaded or scored ({s.champion_error})"
        return CHALLENGER, (
            f"{beats}, but the current champion could not be loaded or scored ({s.champion_error}); "
            "promote by hand if it should replace it"
        )
    if s.champion is None:
        return CHAMPION, f"{beats}; no champion yet"
    if better(s.candidate, s.champion, s.direction):
        return CHAMPION, f"beats the champion on the same evaluation data ({s.candidate:.4g} vs {s.champion:.4g})"
    return CHALLENGER, f"does not beat the champion on the same evaluation data ({s.candidate:.4g} vs {s.champion:.4g})"
