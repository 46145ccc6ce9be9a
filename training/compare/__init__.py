"""Comparing runs with confidence: paired significance tests on the per-unit losses every parent run stores."""

from training.compare.paired import DIRECTIONS, compare_losses, significantly_better, verdict
from training.compare.stats import (
    PairedResult,
    diebold_mariano,
    mcnemar,
    paired_bootstrap,
    panel_diebold_mariano,
    replicate_difference,
)

__all__ = [
    "DIRECTIONS", "PairedResult", "compare_losses", "diebold_mariano", "mcnemar", "paired_bootstrap",
    "panel_diebold_mariano", "replicate_difference", "significantly_better", "verdict",
]
