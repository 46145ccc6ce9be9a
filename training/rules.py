"""The association-rule recommender family: frequent itemsets, rules, evaluation, figures, pyfunc.

Mining (`mine_itemsets`): an itemset is frequent when at least `min_count = ceil(min_support * n)`
baskets hold it (n counts every basket, empty ones included). Items below `min_count` are dropped
before mining and counted. Engines, all exact and giving identical itemsets and counts:
- `pyfim`: Borgelt's C FP-growth (`fim.fpgrowth`, absolute support, counts reported): the default.
- `mlxtend-fpgrowth`, `mlxtend-hmine`, `mlxtend-apriori` (low_memory=True): always on a sparse
  DataFrame. mlxtend's dense default `apriori` needs 13-26 GiB for 50k baskets x 2k items: never used.
- `auto`: pyfim when it is importable; otherwise mlxtend hmine for sparse data (density < 1%), where
  its projected-database recursion does well, fpgrowth for denser data.
mlxtend compares fractions; it is given `(min_count - 0.5) / n`, so its threshold is the same count.

Rules (`rules_from_itemsets`): computed here, exactly, from the itemset counts: every frequent
itemset S of 2+ items gives one rule S - {c} -> c per item c (single-item consequents: the
recommender ranks items, and a multi-item consequent never has a higher confidence than each of its
items). support = n(S)/n, confidence = n(S)/n(S - {c}), lift = confidence / (n({c})/n). Rules below
min_confidence or min_lift are dropped; max_len bounds |S|.

Evaluation (`score_recommender`): in each held-out basket of 2+ items one item is hidden (chosen
with the seed), the model ranks top-k items from the rest; hit rate@k = share of those baskets whose
hidden item is in the top k. Also reported: coverage (share of those baskets that get at least one
rule-based recommendation), rules and itemsets. The popularity baseline is scored the same way.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
import scipy.sparse as sp
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.baskets import Baskets, basket_matrix, build_baskets
from features.contract import Loaded
from training.family import Evaluation
from training.rules_pyfunc import (
    PopularityRecommender,
    Ranked,
    RuleRecommender,
    RulesModel,
)

log = logging.getLogger(__name__)

Engine = Literal["auto", "pyfim", "mlxtend-fpgrowth", "mlxtend-hmine", "mlxtend-apriori"]
SPARSE_DENSITY = 0.01
UNKNOWN_EXAMPLE = "(an item the model has not seen)"


# ---- config ----


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureOptions(Strict):
    basket_level: Literal["order", "customer"] = "order"
    item: Literal["product_id", "product_name", "category"] = "product_id"
    min_item_count: int = Field(1, ge=1, description="items in fewer baskets are dropped before anything else")


class EvaluationOptions(Strict):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    k: int = Field(5, ge=1, description="recommendations per basket (hit rate@k)")
    seed: int = 42


class Bounds(Strict):
    lo: float = Field(ge=0)
    hi: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.hi < self.lo:
            raise ValueError(f"hi ({self.hi}) is below lo ({self.lo})")
        return self


class SearchSpace(Strict):
    min_support: Bounds = Bounds(lo=0.001, hi=0.05)  # sampled on a log scale
    min_confidence: Bounds = Bounds(lo=0.05, hi=0.6)
    min_lift: Bounds = Bounds(lo=1.0, hi=3.0)
    max_len: list[int] = Field(default_factory=lambda: [2, 3, 4], min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> SearchSpace:
        if not 0 < self.min_support.lo <= self.min_support.hi <= 1:
            raise ValueError(f"min_support bounds must lie in (0, 1], got {self.min_support}")
        if self.min_confidence.hi > 1:
            raise ValueError(f"min_confidence bounds must lie in [0, 1], got {self.min_confidence}")
        if any(n < 2 for n in self.max_len):
            raise ValueError(f"max_len choices must be >= 2 (a rule needs two items), got {self.max_len}")
        return self


class ReportOptions(Strict):
    table_rules: int = Field(100, ge=1, description="rules in the top-by-lift table")
    network_rules: int = Field(25, ge=1, description="rules drawn in the co-occurrence network")


class RulesConfig(Strict):
    """The `model:` section of a recommender job."""

    features: FeatureOptions = FeatureOptions()
    engine: Engine = "auto"
    fill: Literal["none", "popular"] = Field(
        "none", description="empty slots after the rule-based items take the most popular items"
    )
    max_itemsets: int = Field(1_000_000, ge=1, description="a candidate mining more itemsets fails (raise min_support)")
    max_rules: int = Field(500_000, ge=1, description="a candidate with more rules fails (a big, slow model)")
    max_rules_per_item: int = Field(3, ge=1, description="fired rules returned with each recommended item")
    evaluation: EvaluationOptions = EvaluationOptions()
    search: SearchSpace = SearchSpace()
    report: ReportOptions = ReportOptions()


# ---- frequent itemsets ----


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
    """Engine output (local codes, any order inside a set) -> per-size arrays of sorted global codes."""
    groups: dict[int, tuple[list, list]] = {}
    for items, count in found:
        sets, counts = groups.setdefault(len(items), ([], []))
        sets.append(items)
        counts.append(count)
    sets_by, counts_by = {}, {}
    for size in sorted(groups):
        local = np.array(groups[size][0], dtype=np.int64).reshape(-1, size)
        sets_by[size] = np.sort(keep[local], axis=1)
        counts_by[size] = np.array(groups[size][1], dtype=np.int64)
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


def _mlxtend(algorithm: str) -> Any:
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


ENGINES = {
    "pyfim": _pyfim,
    "mlxtend-fpgrowth": _mlxtend("fpgrowth"),
    "mlxtend-hmine": _mlxtend("hmine"),
    "mlxtend-apriori": _mlxtend("apriori"),
}


# ---- rules ----


@dataclass
class Rules:
    """Rules A -> c: antecedents as a CSR incidence (rules x items), the rest one value per rule."""

    antecedents: sp.csr_matrix
    consequents: np.ndarray
    count: np.ndarray  # baskets holding A and c
    antecedent_count: np.ndarray
    consequent_count: np.ndarray
    n_baskets: int

    def __len__(self) -> int:
        return len(self.consequents)

    @property
    def support(self) -> np.ndarray:
        return self.count / self.n_baskets

    @property
    def confidence(self) -> np.ndarray:
        return self.count / self.antecedent_count

    @property
    def lift(self) -> np.ndarray:
        return self.count * self.n_baskets / (self.antecedent_count * self.consequent_count)

    def antecedent(self, r: int) -> tuple[int, ...]:
        ptr = self.antecedents.indptr
        return tuple(self.antecedents.indices[ptr[r] : ptr[r + 1]].tolist())

    def frame(self, labels: np.ndarray) -> pd.DataFrame:
        ante = [tuple(labels[list(self.antecedent(r))].tolist()) for r in range(len(self))]
        return pd.DataFrame(
            {
                "antecedent": ante,
                "consequent": labels[self.consequents].tolist() if len(self) else [],
                "count": self.count,
                "support": self.support,
                "confidence": self.confidence,
                "lift": self.lift,
                "antecedent_count": self.antecedent_count,
                "consequent_count": self.consequent_count,
            }
        )


def rules_from_itemsets(
    itemsets: Itemsets, n_items: int, min_confidence: float = 0.0, min_lift: float = 0.0
) -> Rules:
    """Every rule S - {c} -> c of the frequent itemsets, kept when it meets both thresholds."""
    single = np.zeros(n_items, dtype=np.int64)
    if 1 in itemsets.sets:
        single[itemsets.sets[1][:, 0]] = itemsets.counts[1]
    parts = []
    for size in sorted(s for s in itemsets.sets if s >= 2):
        sets, counts = itemsets.sets[size], itemsets.counts[size]
        lookup = _index(itemsets.sets[size - 1])
        for j in range(size):
            ante = np.delete(sets, j, axis=1)
            pos = lookup.get_indexer(pd.MultiIndex.from_arrays(list(ante.T)) if size > 2 else ante[:, 0])
            if (pos < 0).any():
                raise AssertionError("a subset of a frequent itemset is missing: the engine's output is incomplete")
            parts.append((ante, sets[:, j], counts, itemsets.counts[size - 1][pos]))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return Rules(sp.csr_matrix((0, n_items), dtype=np.int32), empty, empty, empty, empty, itemsets.n_baskets)
    cons = np.concatenate([p[1] for p in parts])
    count = np.concatenate([p[2] for p in parts])
    ante_count = np.concatenate([p[3] for p in parts])
    cons_count = single[cons]
    n = itemsets.n_baskets
    keep = (count / ante_count >= min_confidence) & (count * n / (ante_count * cons_count) >= min_lift)
    rows, cols, offset = [], [], 0
    for ante, *_ in parts:
        m, width = ante.shape
        rows.append(np.repeat(np.arange(offset, offset + m), width))
        cols.append(ante.ravel())
        offset += m
    antecedents = basket_matrix(np.concatenate(rows), np.concatenate(cols), (offset, n_items))[np.flatnonzero(keep)]
    return Rules(antecedents, cons[keep], count[keep], ante_count[keep], cons_count[keep], n)


def _index(sets: np.ndarray) -> pd.Index:
    return pd.MultiIndex.from_arrays(list(sets.T)) if sets.shape[1] > 1 else pd.Index(sets[:, 0])


# ---- the fitted model ----


@dataclass
class RulesFit:
    """What a fit produces: the recommender, its rules and itemset summary, the item labels."""

    recommender: RuleRecommender
    rules: Rules
    items: np.ndarray
    params: dict[str, Any]
    n_itemsets: int
    itemsets_by_size: dict[int, int]
    stats: dict[str, float]


def fit_rules(baskets: Baskets, params: dict[str, Any], cfg: RulesConfig) -> RulesFit:
    """Mine, derive rules and index them for serving."""
    itemsets = mine_itemsets(
        baskets, float(params["min_support"]), int(params["max_len"]), cfg.engine, cfg.max_itemsets
    )
    rules = rules_from_itemsets(itemsets, baskets.n_items, float(params["min_confidence"]), float(params["min_lift"]))
    if len(rules) > cfg.max_rules:
        raise ValueError(
            f"{len(rules)} rules exceed max_rules ({cfg.max_rules}) at {params}: "
            "raise min_support, min_confidence or min_lift"
        )
    recommender = RuleRecommender(
        baskets.items, baskets.item_counts(), baskets.n_baskets, rules.antecedents, rules.consequents,
        rules.confidence, rules.lift, rules.support, fill=cfg.fill,
    )
    sizes = {int(s): len(c) for s, c in itemsets.counts.items()}
    return RulesFit(recommender, rules, baskets.items, dict(params), len(itemsets), sizes, itemsets.stats)


# ---- evaluation ----


@dataclass
class HeldOut:
    """Held-out baskets with one item hidden each: the rest (as a matrix) and the hidden item codes."""

    rest: sp.csr_matrix
    hidden: np.ndarray
    skipped: int  # held-out baskets with fewer than 2 items (nothing left to recommend from)


def hide_one(baskets: Baskets, seed: int) -> HeldOut:
    """Hide one item of every basket of 2+ items; which one depends only on the seed and basket order."""
    m = baskets.matrix
    sizes = np.diff(m.indptr)
    u = np.random.default_rng(seed).random(len(sizes))
    eligible = np.flatnonzero(sizes >= 2)
    pos = m.indptr[eligible] + np.floor(u[eligible] * sizes[eligible]).astype(np.int64)
    hidden = m.indices[pos].astype(np.int64)
    mask = np.ones(m.nnz, dtype=bool)
    mask[pos] = False
    rows = np.repeat(np.arange(m.shape[0]), sizes)
    keep_row = np.zeros(m.shape[0], dtype=bool)
    keep_row[eligible] = True
    mask &= keep_row[rows]
    new_row = np.cumsum(keep_row) - 1
    rest = basket_matrix(new_row[rows[mask]], m.indices[mask], (len(eligible), m.shape[1]))
    return HeldOut(rest, hidden, int(len(sizes) - len(eligible)))


def hit_metrics(ranked: Ranked, hidden: np.ndarray, skipped: int) -> dict[str, float]:
    n = len(hidden)
    hits = (ranked.codes == hidden[:, None]).any(axis=1) if n else np.zeros(0, dtype=bool)
    return {
        "hit_rate_at_k": float(hits.mean()) if n else 0.0,
        "coverage": float((ranked.from_rules > 0).mean()) if n else 0.0,
        "eval_baskets": float(n),
        "eval_baskets_skipped": float(skipped),
    }


def score_recommender(fitted: RulesFit, holdout: Baskets, cfg: RulesConfig) -> Evaluation:
    held = hide_one(holdout, cfg.evaluation.seed)
    metrics = hit_metrics(fitted.recommender.rank(held.rest, cfg.evaluation.k), held.hidden, held.skipped)
    metrics |= {"n_rules": float(len(fitted.rules)), "n_itemsets": float(fitted.n_itemsets)}
    metrics["mining_seconds"] = float(fitted.stats.get("mining_seconds", 0.0))
    return Evaluation(objective=metrics["hit_rate_at_k"], metrics=metrics)


def score_popularity(train: Baskets, holdout: Baskets, cfg: RulesConfig) -> Evaluation:
    held = hide_one(holdout, cfg.evaluation.seed)
    popularity = PopularityRecommender(train.items, train.item_counts(), train.n_baskets)
    metrics = hit_metrics(popularity.rank(held.rest, cfg.evaluation.k), held.hidden, held.skipped)
    metrics["coverage"] = float(len(held.hidden) > 0)  # every basket gets a popular item
    return Evaluation(objective=metrics["hit_rate_at_k"], metrics=metrics)


def score_pyfunc(model: Any, holdout: Baskets, cfg: RulesConfig) -> float:
    """Hit rate@k of a loaded pyfunc, through its label interface, on the same hidden items."""
    held = hide_one(holdout, cfg.evaluation.seed)
    if len(held.hidden) == 0:
        return 0.0
    flat = holdout.items[held.rest.indices].tolist()
    bounds = held.rest.indptr.tolist()
    request = pd.DataFrame({"items": [flat[a:b] for a, b in pairwise(bounds)]})
    request["k"] = float(cfg.evaluation.k)  # the signature types k as an optional double
    out = model.predict(request)
    hidden = holdout.items[held.hidden]
    hits = [h in set(items) for h, items in zip(hidden, out["items"])]
    return float(np.mean(hits))


# ---- figures and tables ----


def top_rules_table(fitted: RulesFit, n: int) -> pd.DataFrame:
    """The `n` rules with the highest lift (ties: confidence, support), labels spelled out."""
    frame = fitted.rules.frame(fitted.items)
    if frame.empty:
        return frame
    frame["antecedent"] = [" & ".join(a) for a in frame["antecedent"]]
    frame = frame.sort_values(["lift", "confidence", "support"], ascending=False, kind="stable")
    return frame.head(n).reset_index(drop=True)


def scatter_figure(fitted: RulesFit) -> Figure:
    rules = fitted.rules
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    if len(rules):
        order = np.argsort(rules.lift, kind="stable")  # high lift drawn on top
        dots = ax.scatter(
            rules.support[order], rules.confidence[order], c=rules.lift[order], s=10, cmap="viridis", alpha=0.8
        )
        fig.colorbar(dots, ax=ax, label="lift")
        ax.set_xscale("log")
        _plain_log_ticks(ax)
    else:
        ax.text(0.5, 0.5, "no rules at these thresholds", ha="center", va="center", transform=ax.transAxes)
    title = f"{len(rules)} rules: support, confidence and lift"
    ax.set(xlabel="support (share of baskets)", ylabel="confidence", title=title)
    fig.tight_layout()
    return fig


def network_figure(table: pd.DataFrame) -> Figure:
    """Items of the top rules on a circle; an arrow per rule from each antecedent item to the consequent."""
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(f"Item network of the top {len(table)} rules by lift (width: confidence, colour: lift)")
    if table.empty:
        ax.text(0.5, 0.5, "no rules at these thresholds", ha="center", va="center", transform=ax.transAxes)
        return fig
    columns = table[["antecedent", "consequent", "confidence", "lift"]].itertuples(index=False)
    edges = [(a, c, conf, lift) for ante, c, conf, lift in columns for a in ante.split(" & ")]
    nodes = list(dict.fromkeys(x for a, c, *_ in edges for x in (a, c)))
    angle = 2 * np.pi * np.arange(len(nodes)) / len(nodes)
    xy = dict(zip(nodes, np.c_[np.cos(angle), np.sin(angle)]))
    lifts = table["lift"].to_numpy()
    norm = _normaliser(lifts.min(), lifts.max())
    cmap = _colormap()
    for a, c, conf, lift in edges:
        style = {"arrowstyle": "-|>", "color": cmap(norm(lift)), "lw": 0.5 + 3 * conf, "alpha": 0.7}
        ax.annotate("", xy=xy[c], xytext=xy[a], arrowprops={**style, "shrinkA": 8, "shrinkB": 8})
    pts = np.array([xy[n] for n in nodes])
    ax.scatter(pts[:, 0], pts[:, 1], s=60, color="black", zorder=3)
    for name, (x, y), a in zip(nodes, pts, angle):
        ax.text(1.1 * x, 1.1 * y, _short(name), fontsize=7, rotation=np.degrees(a) if x >= 0 else np.degrees(a) + 180,
                ha="left" if x >= 0 else "right", va="center", rotation_mode="anchor")
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    fig.colorbar(_mappable(cmap, norm), ax=ax, shrink=0.6, label="lift")
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _short(label: str, width: int = 24) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _colormap() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"]


def _normaliser(lo: float, hi: float) -> Any:
    from matplotlib.colors import Normalize

    return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-9)


def _mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


# ---- pyfunc examples ----


def examples(model: RulesModel, fitted: RulesFit, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two request baskets that fire rules; the second has an unknown item and no `k`.

    The missing `k` makes MLflow mark the column optional (type double: send k as a float, or leave
    the column out for the model's default); the unknown item gives `unknown_items` its type.
    """
    rules = fitted.rules
    if len(rules):
        best = np.argsort(-rules.confidence, kind="stable")[:2]
        baskets = [[str(fitted.items[i]) for i in rules.antecedent(int(r))] for r in best]
    else:
        baskets = [[str(x) for x in fitted.items[fitted.recommender.popularity.order_[:2]]]]
    baskets = (baskets * 2)[:2]
    baskets[1] = [*baskets[1], UNKNOWN_EXAMPLE]
    example = pd.DataFrame({"items": baskets, "k": [float(k), np.nan]})
    return example, model.predict(None, example)


# ---- the family ----


class RecommenderFamily:
    """Association-rule recommender; see the module docstring for mining, rules and scoring."""

    name = "recommender"
    direction: Literal["maximize", "minimize"] = "maximize"
    objective_name = "hit_rate_at_k"
    config_model = RulesConfig

    def features(self, loaded: Loaded, cfg: RulesConfig) -> Baskets:
        f = cfg.features
        baskets = build_baskets(loaded.lines, f.basket_level, f.item, f.min_item_count)
        log.info("baskets: %s", baskets.stats)
        return baskets

    def split(self, feats: Baskets, cfg: RulesConfig) -> tuple[Baskets, Baskets]:
        """Seeded random holdout of `test_fraction` of the baskets."""
        n = feats.n_baskets
        n_test = round(n * cfg.evaluation.test_fraction)
        if n_test < 1 or n - n_test < 2:
            raise ValueError(
                f"too few baskets ({n}) for a holdout of {cfg.evaluation.test_fraction:.0%}: "
                "train needs at least 2 baskets and the holdout at least 1"
            )
        order = np.random.default_rng(cfg.evaluation.seed).permutation(n)
        return feats.subset(np.sort(order[n_test:])), feats.subset(np.sort(order[:n_test]))

    def search_space(self, trial: optuna.Trial, cfg: RulesConfig) -> dict[str, Any]:
        s = cfg.search
        return {
            "min_support": trial.suggest_float("min_support", s.min_support.lo, s.min_support.hi, log=True),
            "min_confidence": trial.suggest_float("min_confidence", s.min_confidence.lo, s.min_confidence.hi),
            "min_lift": trial.suggest_float("min_lift", s.min_lift.lo, s.min_lift.hi),
            "max_len": trial.suggest_categorical("max_len", sorted(set(s.max_len))),
        }

    def evaluate(self, train: Baskets, holdout: Baskets, params: dict[str, Any], cfg: RulesConfig) -> Evaluation:
        return score_recommender(fit_rules(train, params, cfg), holdout, cfg)

    def baseline(self, train: Baskets, holdout: Baskets, cfg: RulesConfig) -> Evaluation:
        return score_popularity(train, holdout, cfg)

    def fit(self, feats: Baskets, params: dict[str, Any], cfg: RulesConfig) -> RulesFit:
        return fit_rules(feats, params, cfg)

    def report(
        self, fitted: RulesFit, feats: Baskets, cfg: RulesConfig
    ) -> tuple[dict[str, Figure], dict[str, pd.DataFrame], dict[str, float]]:
        table = top_rules_table(fitted, cfg.report.table_rules)
        figures = {
            "rules_support_confidence": scatter_figure(fitted),
            "rules_network": network_figure(table.head(cfg.report.network_rules)),
        }
        metrics = {
            "n_rules": float(len(fitted.rules)),
            "n_itemsets": float(fitted.n_itemsets),
            **{f"n_itemsets_size_{s}": float(c) for s, c in fitted.itemsets_by_size.items()},
            **{f"mining_{k}": float(v) for k, v in fitted.stats.items()},
            **{f"baskets_{k}": float(v) for k, v in feats.stats.items()},
            "mean_basket_size": float(feats.sizes().mean()) if feats.n_baskets else 0.0,
        }
        return figures, {"top_rules_by_lift": table}, metrics

    def pyfunc(self, fitted: RulesFit, cfg: RulesConfig) -> tuple[RulesModel, pd.DataFrame, pd.DataFrame]:
        model = RulesModel(fitted.recommender, cfg.evaluation.k, cfg.max_rules_per_item)
        return (model, *examples(model, fitted, cfg.evaluation.k))

    def score_model(self, model: Any, holdout: Baskets, cfg: RulesConfig) -> float:
        return score_pyfunc(model, holdout, cfg)
