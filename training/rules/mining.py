"""Frequent itemsets: an itemset is frequent when at least `min_count = ceil(min_support * n)` baskets hold it.

n counts every basket, empty ones included. Items below `min_count` are dropped before mining and
counted. Engines, all exact and giving identical itemsets and counts:
- `pyfim`: Borgelt's C FP-growth (`fim.fpgrowth`, absolute support, counts reported): the default.
- `mlxtend-fpgrowth`, `mlxtend-hmine`, `mlxtend-apriori` (low_memory=True): always on a sparse
  DataFrame. mlxtend's dense default `apriori` needs 13-26 GiB for 50k baskets x 2k items: never used.
- `auto`: pyfim when it is importable; otherwise mlxtend hmine for sparse data (density < 1%), where
  its projected-database recursion does well, fpgrowth for denser data.
- `spark-fpgrowth`: `pyspark.ml.fpm.FPGrowth` (`training.rules.spark`), what a job on the Spark engine
  (`engine: spark`) mines with, whatever `model.engine` says.
mlxtend compares fractions; it is given `(min_count - 0.5) / n`, so its threshold is the same count.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.baskets import Baskets
from training.engine import spark_settings

log = logging.getLogger(__name__)

SPARSE_DENSITY = 0.01
Miner = Callable[[sp.csr_matrix, int, int | None, int | None], list]


@dataclass
class Itemsets:
    """Frequent itemsets by size: `sets[L]` (m x L, item codes ascending per row) and `counts[L]` (m,)."""

    sets: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]
    n_baskets: int
    min_count: int
    engine: str
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(c) for c in self.counts.values())

    def as_dict(self) -> dict[tuple[int, ...], int]:
        """{itemset: count}: the form the tests and engine cross-checks compare."""
        return {tuple(row): int(c) for size in self.sets for row, c in zip(self.sets[size].tolist(), self.counts[size])}

    def frame(self, labels: np.ndarray) -> pd.DataFrame:
        rows = [
            (tuple(labels[row].tolist()), size, int(c), c / self.n_baskets)
            for size in sorted(self.sets)
            for row, c in zip(self.sets[size], self.counts[size])
        ]
        return pd.DataFrame(rows, columns=["itemset", "length", "count", "support"])


def min_count_for(min_support: float, n_baskets: int) -> int:
    """Smallest basket count that meets `min_support` (a fraction of all baskets); at least 1."""
    if not 0 < min_support <= 1:
        raise ValueError(f"min_support must lie in (0, 1], got {min_support}")
    return max(1, math.ceil(min_support * n_baskets - 1e-9))


def choose_engine(engine: str, density: float) -> str:
    if spark_settings() is not None:  # the job runs on the Spark engine
        return "spark-fpgrowth"
    if engine != "auto":
        return engine
    try:
        import fim  # noqa: F401
    except ImportError:
        return "mlxtend-hmine" if density < SPARSE_DENSITY else "mlxtend-fpgrowth"
    return "pyfim"


def mine_itemsets(
    baskets: Baskets,
    min_support: float,
    max_len: int | None = None,
    engine: str = "auto",
    max_itemsets: int | None = None,
) -> Itemsets:
    """All itemsets held by at least ceil(min_support * n) baskets, of at most `max_len` items."""
    started = time.perf_counter()
    n = baskets.n_baskets
    if n == 0:
        raise ValueError("no baskets to mine")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    min_count = min_count_for(min_support, n)
    keep = np.flatnonzero(baskets.item_counts() >= min_count)
    matrix = baskets.matrix[:, keep].tocsr()
    density = matrix.nnz / max(1, matrix.shape[0] * matrix.shape[1])
    used = choose_engine(engine, density)
    if used not in ENGINES:
        raise ValueError(f"unknown mining engine {engine!r}; known: auto, {', '.join(ENGINES)}")
    with _gc_paused():
        found = ENGINES[used](matrix, min_count, max_len, max_itemsets) if len(keep) else []
        _check_count(len(found), max_itemsets)
        sets, counts = _by_size(found, keep)
    itemsets = Itemsets(sets, counts, n, min_count, used)
    itemsets.stats = {
        "items_below_min_support": int(baskets.n_items - len(keep)),
        "items_frequent": len(keep),
        "min_count": min_count,
        "itemsets": len(itemsets),
        "mining_seconds": time.perf_counter() - started,
    }
    log.info("mined %d itemsets with %s (min count %d, %d items below it)", len(itemsets), used, min_count,
             itemsets.stats["items_below_min_support"])
    return itemsets


def _check_count(found: int, max_itemsets: int | None) -> None:
    if max_itemsets is not None and found > max_itemsets:
        raise ValueError(
            f"{found} frequent itemsets exceed max_itemsets ({max_itemsets}): raise min_support or lower max_len"
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building millions of small lists and tuples (no cycles) triggers the cyclic GC over and over: 4x slower."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _by_size(found: list[tuple[tuple[int, ...], int]], keep: np.ndarray) -> tuple[dict, dict]:
    """Engine output (local codes, any order inside and between sets) -> per-size arrays of sorted global codes,
    the sets in ascending order, so the rules (and the ties of the served ranking) do not depend on the engine."""
    groups: dict[int, tuple[list, list]] = {}
    for items, count in found:
        sets, counts = groups.setdefault(len(items), ([], []))
        sets.append(items)
        counts.append(count)
    sets_by, counts_by = {}, {}
    for size in sorted(groups):
        local = np.array(groups[size][0], dtype=np.int64).reshape(-1, size)
        sets = np.sort(keep[local], axis=1)
        order = np.lexsort(sets.T[::-1])
        sets_by[size] = sets[order]
        counts_by[size] = np.array(groups[size][1], dtype=np.int64)[order]
    return sets_by, counts_by


def _pyfim(matrix: sp.csr_matrix, min_count: int, max_len: int | None, max_itemsets: int | None) -> list:
    """With `max_itemsets`, a first pass counts the itemsets (pattern spectrum, no itemsets kept), so
    a candidate with millions of them fails before they fill the memory; it costs one more mining pass."""
    import fim

    flat = matrix.indices.tolist()
    bounds = matrix.indptr.tolist()
    tracts = [flat[a:b] for a, b in pairwise(bounds) if b > a]
    options = {"target": "s", "supp": -min_count, "zmin": 1, **({"zmax": max_len} if max_len else {})}
    if max_itemsets is not None:
        spectrum = fim.fpgrowth(tracts, report="#", **options)
        _check_count(int(sum(spectrum.values())), max_itemsets)
    return fim.fpgrowth(tracts, report="a", **options)


def _mlxtend(algorithm: str) -> Miner:
    def run(matrix: sp.csr_matrix, min_count: int, max_len: int | None, _max_itemsets: int | None) -> list:
        from mlxtend import frequent_patterns as fp

        n = matrix.shape[0]
        frame = pd.DataFrame.sparse.from_spmatrix(matrix.tocsc(), columns=np.arange(matrix.shape[1]))
        threshold = (min_count - 0.5) / n  # fraction threshold that admits exactly count >= min_count
        if algorithm == "apriori":
            found = fp.apriori(frame, min_support=threshold, max_len=max_len, low_memory=True)
        else:
            found = getattr(fp, algorithm)(frame, min_support=threshold, max_len=max_len)
        counts = np.rint(found["support"].to_numpy(dtype=np.float64) * n).astype(np.int64)
        return [(tuple(int(i) for i in s), int(c)) for s, c in zip(found["itemsets"], counts)]

    return run


def _spark(matrix: sp.csr_matrix, min_count: int, max_len: int | None, max_itemsets: int | None) -> list:
    from training.rules.spark import fpgrowth_itemsets

    return fpgrowth_itemsets(matrix, min_count, max_len, max_itemsets)


ENGINES = {
    "pyfim": _pyfim,
    "mlxtend-fpgrowth": _mlxtend("fpgrowth"),
    "mlxtend-hmine": _mlxtend("hmine"),
    "mlxtend-apriori": _mlxtend("apriori"),
    "spark-fpgrowth": _spark,
}
