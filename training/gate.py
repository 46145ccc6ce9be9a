"""The registry gate's evidence: paired tests of the candidate against the baseline and the champion.

All three are scored by the family's one `score` on the same test data, so their per-unit losses pair
up unit by unit; the results go to `decision.decide` (pure) and, as tags, to the new version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from training.decision import Scores
from training.family import Evaluation

if TYPE_CHECKING:
    from training.compare.stats import PairedResult
    from training.config import DecisionGate

SEED = 0  # the bootstrap's seed: the same evidence every time a decision is re-run


def run_gate(family: str, scores: Scores, candidate: Evaluation, baseline: Evaluation,
             champion: Evaluation | None, gate: DecisionGate) -> None:
    """Fill `scores.vs_baseline` / `vs_champion` (or `gate_error`) when the gate is `paired`."""
    if gate.test != "paired":
        return
    try:
        scores.vs_baseline = paired(family, candidate, baseline, "baseline", gate)
        if champion is not None:
            scores.vs_champion = paired(family, candidate, champion, "champion", gate)
    except ValueError as exc:
        scores.gate_error = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__


def paired(family: str, a: Evaluation, b: Evaluation, b_name: str, gate: DecisionGate) -> PairedResult:
    """`a` minus `b` by the family's paired test; a ValueError says which side has no per-unit losses."""
    from training.compare.paired import compare_losses

    for name, ev in (("candidate", a), (b_name, b)):
        if ev.losses is None or ev.losses.empty:
            raise ValueError(f"no per-unit losses for the {name}")
    return compare_losses(family, a.losses, b.losses, alpha=gate.alpha, seed=SEED, score_a=a.objective, score_b=b.objective)


def gate_tags(scores: Scores, gate: DecisionGate) -> dict[str, Any]:
    """The version's record of the gate: its setting, each paired test's name, effect, CI and p-value, and
    (unprefixed: `ecomlab.gate_p_value`...) the deciding one: against the champion when there is one."""
    tags: dict[str, Any] = {"ecomlab.gate_test": gate.test, "ecomlab.gate_alpha": gate.alpha,
                            "ecomlab.gate_min_effect": gate.min_effect, "ecomlab.gate_baseline_rule": gate.baseline}
    if scores.gate_error:
        tags["ecomlab.gate_error"] = scores.gate_error
    for against, result in (("baseline", scores.vs_baseline), ("champion", scores.vs_champion)):
        if result is None:
            continue
        prefix = f"ecomlab.gate_{against}_"
        tags.update({
            f"{prefix}test": result.test, f"{prefix}effect": result.difference, f"{prefix}ci_low": result.ci_low,
            f"{prefix}ci_high": result.ci_high, f"{prefix}p_value": result.p_value, f"{prefix}n": result.n,
        })
    deciding = scores.vs_champion or scores.vs_baseline
    if deciding is not None:
        tags.update({"ecomlab.gate_effect": deciding.difference, "ecomlab.gate_ci_low": deciding.ci_low,
                     "ecomlab.gate_ci_high": deciding.ci_high, "ecomlab.gate_p_value": deciding.p_value})
    return tags
