"""Seeded random splits of a family's units (customers) into train, valid and test positions."""

from __future__ import annotations

import numpy as np


def random_split(
    n: int, test_fraction: float, valid_fraction: float, seed: int, need: int, why: str = ""
) -> tuple[np.ndarray, ...]:
    """(train, valid, test) sorted row positions; a ValueError when a part would hold fewer than `need` units
    (`why` says what sets that floor, e.g. " with k up to 8")."""
    n_test, n_valid = int(round(n * test_fraction)), int(round(n * valid_fraction))
    if min(n_test, n_valid, n - n_test - n_valid) < need:
        raise ValueError(
            f"too few customers ({n}) for test {test_fraction:.0%} and validation {valid_fraction:.0%} "
            f"splits{why}: train, valid and test need at least {need} customers each"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, valid, train = np.split(order, [n_test, n_test + n_valid])
    return np.sort(train), np.sort(valid), np.sort(test)
