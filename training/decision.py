"""The registry decision, once for every family: champion only if the candidate beats the baseline and
the current champion on the same evaluation data; a champion that cannot be scored never loses silently.

With the paired gate (`registry.decision.test: paired`, the default) "beats the champion" means "beats
it by a paired test on the per-unit losses": a win by noise on one holdout leaves the new version a
challenger. The baseline must be beaten on its score (`baseline: point`, the default) or by the same
test (`baseline: paired`); its paired test is recorded either way.
`decide` stays pure: the paired results are computed by the job and handed in with the scores."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.compare.stats import PairedResult
    from training.config import DecisionGate

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass
class Scores:
    """One family's score of each contender on the same evaluation data, and the paired tests between them."""

    direction: str
    objective: str
    candidate: float
    baseline: float
    champion: float | None = None  # None: no champion, or it could not be scored (see champion_error)
    champion_error: str | None = None
    vs_baseline: PairedResult | None = None  # candidate minus baseline
    vs_champion: PairedResult | None = None  # candidate minus champion
    gate_error: str | None = None  # why a paired test could not be run


def better(a: float, b: float, direction: str) -> bool:
    """`a` beats `b`; a non-finite score never beats anything, and anything finite beats it."""
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if direction == "maximize" else a < b


def evidence(result: PairedResult, alpha: float) -> str:
    """The paired test in a few words: its name, the difference with its CI, the p-value."""
    level = round(100 * (1 - alpha))
    return (f"{result.test}: difference {result.difference:+.4g}, {level}% CI [{result.ci_low:.4g}, {result.ci_high:.4g}], "
            f"p={result.p_value:.3g}, n={result.n}")


def _significant(result: PairedResult | None, direction: str, gate: DecisionGate) -> bool:
    from training.compare.paired import significantly_better

    return result is not None and significantly_better(result, direction, gate.alpha, gate.min_effect)


def decide(s: Scores, promote: str = "auto", replace_unloadable: bool = False, gate: DecisionGate | None = None) -> tuple[str, str]:
    """(alias, reason) for the new version; `gate` None or `test: none` is the point comparison alone."""
    paired = gate is not None and gate.test == "paired"
    if promote == "never":
        return CHALLENGER, "promotion disabled in the config (registry.promote: never)"
    if not better(s.candidate, s.baseline, s.direction):
        return CHALLENGER, f"does not beat the baseline ({s.objective} {s.candidate:.4g} vs baseline {s.baseline:.4g})"
    point = f"{s.objective} {s.candidate:.4g} vs {s.baseline:.4g}"
    if paired and s.gate_error is not None:
        return CHALLENGER, f"the paired gate could not run ({s.gate_error}); promote by hand or set registry.decision.test: none"
    if paired:
        tested = evidence(s.vs_baseline, gate.alpha) if s.vs_baseline is not None else "no paired result"
        significant = _significant(s.vs_baseline, s.direction, gate)
        if gate.baseline == "paired" and not significant:
            return CHALLENGER, f"does not beat the baseline significantly ({point}; {tested})"
        beats = f"beats the baseline {'significantly' if significant else 'on its score, not significantly'} ({point}; {tested})"
    else:
        beats = f"beats the baseline ({point})"
    if s.champion_error is not None:
        if replace_unloadable:
            return CHAMPION, f"{beats}; replaces a champion that could not be loaded or scored ({s.champion_error})"
        return CHALLENGER, (
            f"{beats}, but the current champion could not be loaded or scored ({s.champion_error}); "
            "promote by hand if it should replace it"
        )
    if s.champion is None:
        return CHAMPION, f"{beats}; no champion yet"
    versus = f"{s.candidate:.4g} vs {s.champion:.4g}"
    if not paired:
        if better(s.candidate, s.champion, s.direction):
            return CHAMPION, f"beats the champion on the same evaluation data ({versus})"
        return CHALLENGER, f"does not beat the champion on the same evaluation data ({versus})"
    tested = evidence(s.vs_champion, gate.alpha) if s.vs_champion is not None else "no paired result"
    if better(s.candidate, s.champion, s.direction) and _significant(s.vs_champion, s.direction, gate):
        return CHAMPION, f"beats the champion significantly on the same evaluation data ({versus}; {tested}); {beats}"
    return CHALLENGER, f"does not beat the champion significantly on the same evaluation data ({versus}; {tested})"
