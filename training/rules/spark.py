"""Frequent itemsets and rules on Spark: `pyspark.ml.fpm.FPGrowth`, the miner of the Spark engine.

`fpgrowth_itemsets` is the `spark-fpgrowth` entry of `mining.ENGINES`: the same input (baskets x
frequent items, local codes) and output (itemsets with their basket counts) as the local miners, so
`mining.mine_itemsets`, `derive.rules_from_itemsets` and the recommender built from them are the
local engine's code on Spark-mined itemsets. Every basket is given to FPGrowth, the empty ones too,
so its record count is the local `n` and its own rule supports and lifts have the same denominator.

The threshold: Spark keeps an itemset when its count >= ceil(minSupport x records); minSupport is
set to (min_count - 0.5) / n, whose ceiling is exactly `min_count`, the local miners' count.
FPGrowth has no maximum itemset length: itemsets longer than `max_len` are mined and dropped on
Spark before anything comes back to the driver, and at most `max_itemsets` + 1 rows ever come back.

`spark_mining` gives FPGrowth's itemsets and its own association rules (single-item consequents, as
ours) as tables with the columns of `Itemsets.frame` and `Rules.frame`, to check them against the
local miner's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.engine import session

if TYPE_CHECKING:  # pragma: no cover
    from features.baskets import Baskets


def basket_frame(matrix: sp.csr_matrix) -> Any:
    """The baskets as a Spark DataFrame of one `items` array (int codes) per basket, empty baskets included.

    Built as one Arrow list array straight from the CSR arrays (a pandas column of arrays converts ~10x slower)."""
    import pyarrow as pa

    matrix = matrix.tocsr()
    items = pa.ListArray.from_arrays(pa.array(matrix.indptr.astype("int32")), pa.array(matrix.indices.astype("int32")))
    return session().createDataFrame(pa.table({"items": items}))


def fpgrowth_model(matrix: sp.csr_matrix, min_count: int, min_confidence: float = 0.0) -> Any:
    """FPGrowth fitted on every basket at the count threshold `min_count` (see the module doc)."""
    from pyspark.ml.fpm import FPGrowth

    n = matrix.shape[0]
    if not 1 <= min_count <= n:
        raise ValueError(f"min_count must lie in [1, {n}] (the number of baskets), got {min_count}")
    miner = FPGrowth(itemsCol="items", minSupport=(min_count - 0.5) / n, minConfidence=min_confidence)
    return miner.fit(basket_frame(matrix))


def fpgrowth_itemsets(matrix: sp.csr_matrix, min_count: int, max_len: int | None, max_itemsets: int | None) -> list:
    """[(item codes, count)] of every itemset held by >= `min_count` baskets, of at most `max_len` items."""
    from pyspark.sql import functions as F

    sets = fpgrowth_model(matrix, min_count).freqItemsets
    if max_len is not None:
        sets = sets.filter(F.size("items") <= max_len)
    if max_itemsets is not None:  # mining.mine_itemsets names the limit when more come back
        sets = sets.limit(max_itemsets + 1)
    found = sets.toPandas()
    return [(tuple(int(i) for i in items), int(freq)) for items, freq in zip(found["items"], found["freq"], strict=True)]


def spark_mining(
    baskets: Baskets, min_support: float, max_len: int | None = None, min_confidence: float = 0.0, min_lift: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FPGrowth's frequent itemsets and its own association rules over `baskets` at the local thresholds,
    from one model: (itemsets with the columns of `Itemsets.frame`, rules with those of `Rules.frame`:
    antecedent as a tuple of item labels in code order, consequent, support, confidence, lift)."""
    from pyspark.sql import functions as F

    from training.rules.mining import min_count_for

    n = baskets.n_baskets
    model = fpgrowth_model(baskets.matrix, min_count_for(min_support, n), min_confidence)
    sets, rules = model.freqItemsets.cache(), model.associationRules  # the rules are derived from the cached itemsets
    if max_len is not None:
        sets = sets.filter(F.size("items") <= max_len)
        rules = rules.filter(F.size("antecedent") + 1 <= max_len)
    found, rules = sets.toPandas(), rules.filter(F.col("lift") >= min_lift).toPandas()
    model.freqItemsets.unpersist()
    labels = baskets.items

    def label(codes: Any) -> tuple[str, ...]:
        return tuple(labels[np.sort(np.asarray(codes, dtype=np.int64))].tolist())

    itemsets = pd.DataFrame({
        "itemset": [label(s) for s in found["items"]],
        "length": [len(s) for s in found["items"]],
        "count": found["freq"].to_numpy(dtype="int64"),
    }).assign(support=lambda f: f["count"] / n)
    rule_table = pd.DataFrame({
        "antecedent": [label(a) for a in rules["antecedent"]],
        "consequent": [str(labels[int(c[0])]) for c in rules["consequent"]],
        "support": rules["support"].to_numpy(dtype="float64"),
        "confidence": rules["confidence"].to_numpy(dtype="float64"),
        "lift": rules["lift"].to_numpy(dtype="float64"),
    })
    return itemsets, rule_table
