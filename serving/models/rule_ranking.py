"""Ranking items for baskets, on item codes: association rules pre-indexed for fast batch ranking, and popularity.

Kept apart from the miner (`training.rules`) so a registered model unpickles with numpy, scipy and
pandas only: no optuna, matplotlib or mining engine at load time. Labels in and out, request
checks and the pyfunc live in `serving.models.recommender`.

Ranking (`RuleRecommender`): a rule A -> c fires for a basket that contains every item of A and
not c. An item's score is the highest confidence among its fired rules; items are ranked by score,
ties broken by that best rule's lift, then its support, then the item label (ascending), so the
order is fully deterministic. Each item comes with its fired rules, best first (same key, then
rule number). Items the model never saw are ignored and reported, never an error.

Batch path, no Python loop over rules: each rule is indexed by its pivot, the rarest item of its
antecedent (a sparse rules x items matrix with one entry per rule). One sparse product of the
baskets' matrix with it lists the candidate (basket, rule) pairs, the baskets that hold the pivot;
the other antecedent items and the consequent are then checked by binary search in the baskets'
sorted (basket, item) keys. The rules carry one precomputed rank (the tie-break order above), so
choosing each item's best rule and ordering a basket's items are two integer sorts. Baskets are
processed in chunks sized by their estimated candidate pairs, so memory stays bounded for huge
baskets against many rules. UCI invoices, 26k rules: 100 baskets in ~15 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

PAIRS_PER_CHUNK = 2_000_000  # candidate (basket, rule) pairs per step: bounds memory on big baskets x many rules
MAX_CHUNK = 5000  # baskets per step


@dataclass
class Ranked:
    """Top-k per basket as padded arrays: item codes (-1 = none), scores and, per cell, the fired rules."""

    codes: np.ndarray  # baskets x k, int64, -1 where fewer than k items
    scores: np.ndarray  # baskets x k, float64, nan where no item
    rules: list[list[np.ndarray]]  # per basket, per recommended item: rule numbers best first
    from_rules: np.ndarray  # baskets, int64: how many of the items came from rules


def encode(baskets: list[list[str]], code_of: dict[str, int], n_items: int) -> tuple[sp.csr_matrix, list[list[str]]]:
    """Basket matrix over the model's items, and the unknown labels of each basket (in request order)."""
    rows, cols, unknown = [], [], []
    for i, basket in enumerate(baskets):
        missing = []
        for label in basket:
            code = code_of.get(label)
            if code is None:
                missing.append(label)
            else:
                rows.append(i)
                cols.append(code)
        unknown.append(list(dict.fromkeys(missing)))
    data = np.ones(len(rows), dtype=np.int32)
    m = sp.csr_matrix((data, (rows, cols)), shape=(len(baskets), n_items))
    m.sum_duplicates()
    m.data[:] = 1
    return m, unknown


def _check_request(baskets: sp.csr_matrix, k: int, n_items: int) -> sp.csr_matrix:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if baskets.shape[1] != n_items:
        raise ValueError(f"baskets have {baskets.shape[1]} item columns, the model knows {n_items} items")
    out = sp.csr_matrix(baskets, dtype=np.int32)
    out.sort_indices()
    return out


class PopularityRecommender:
    """The most frequent training items not already in the basket (score = item support); no rules."""

    def __init__(self, items: np.ndarray, counts: np.ndarray, n_baskets: int) -> None:
        self.items = np.asarray(items, dtype=object)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.n_baskets = int(n_baskets)
        seen = np.flatnonzero(self.counts > 0)
        self.order_ = seen[np.lexsort((seen, -self.counts[seen]))]  # count desc, then label (code) asc
        self.code_of_ = {str(self.items[i]): int(i) for i in seen}  # items never bought in training are unknown

    def encode(self, baskets: list[list[str]]) -> tuple[sp.csr_matrix, list[list[str]]]:
        return encode(baskets, self.code_of_, len(self.items))

    def rank(self, baskets: sp.csr_matrix, k: int) -> Ranked:
        baskets = _check_request(baskets, k, len(self.items))
        n = baskets.shape[0]
        codes = np.full((n, k), -1, dtype=np.int64)
        head = self.order_[: k + int(np.diff(baskets.indptr).max(initial=0))]
        inside = baskets[:, head].toarray().astype(bool) if len(head) else np.zeros((n, 0), dtype=bool)
        for i in range(n):
            top = head[~inside[i]][:k]
            codes[i, : len(top)] = top
        scores = np.where(codes >= 0, self.counts[np.maximum(codes, 0)] / max(self.n_baskets, 1), np.nan)
        empty = [[np.empty(0, dtype=np.int64)] * int((row >= 0).sum()) for row in codes]
        return Ranked(codes, scores, empty, np.zeros(n, dtype=np.int64))

    def rule_text(self, r: int) -> str:
        """Never called: popularity ranks fire no rule."""
        raise IndexError(f"the popularity ranking has no rule {r}")


class RuleRecommender:
    """Rules with single-item consequents, indexed by antecedent; see the module docstring for the ranking."""

    def __init__(
        self,
        items: np.ndarray,
        item_counts: np.ndarray,
        n_baskets: int,
        antecedents: sp.csr_matrix,
        consequents: np.ndarray,
        confidence: np.ndarray,
        lift: np.ndarray,
        support: np.ndarray,
        fill: str = "none",
    ) -> None:
        if fill not in ("none", "popular"):
            raise ValueError(f"fill must be 'none' or 'popular', got {fill!r}")
        self.items = np.asarray(items, dtype=object)
        if any(a >= b for a, b in zip(self.items[:-1], self.items[1:])):
            raise ValueError("item labels must be unique and sorted (item codes break ties in label order)")
        self.popularity = PopularityRecommender(self.items, item_counts, n_baskets)
        self.antecedents = sp.csr_matrix(antecedents, dtype=np.int32)
        self.antecedents.sort_indices()
        self.consequents = np.asarray(consequents, dtype=np.int64)
        self.confidence = np.asarray(confidence, dtype=np.float64)
        self.lift = np.asarray(lift, dtype=np.float64)
        self.support = np.asarray(support, dtype=np.float64)
        self.fill = fill
        self.ante_len_ = np.diff(self.antecedents.indptr).astype(np.int64)
        if self.n_rules and self.ante_len_.min() < 1:
            raise ValueError("every rule needs a non-empty antecedent")
        # one global order of the rules: confidence, lift, support (all descending), consequent label, number;
        # the best fired rule of an item and the order of items are then both "lowest rank first"
        keys = (np.arange(self.n_rules), self.consequents, -self.support, -self.lift, -self.confidence)
        self.rank_ = np.empty(self.n_rules, dtype=np.int64)
        self.rank_[np.lexsort(keys)] = np.arange(self.n_rules)
        self.pivot_t_ = self._pivots(self.popularity.counts).T.tocsr()
        self.pivot_degree_ = np.diff(self.pivot_t_.indptr).astype(np.int64)

    def _pivots(self, counts: np.ndarray) -> sp.csr_matrix:
        """rules x items with one entry per rule: its rarest antecedent item, the one a basket must hold first."""
        ante = self.antecedents
        rows = np.repeat(np.arange(self.n_rules), self.ante_len_)
        order = np.lexsort((ante.indices, counts[ante.indices], rows))
        pivot = ante.indices[order[ante.indptr[:-1]]] if self.n_rules else np.empty(0, dtype=np.int64)
        ones = np.ones(self.n_rules, dtype=np.int32)
        return sp.csr_matrix((ones, (np.arange(self.n_rules), pivot)), shape=ante.shape)

    @property
    def n_rules(self) -> int:
        return len(self.consequents)

    def encode(self, baskets: list[list[str]]) -> tuple[sp.csr_matrix, list[list[str]]]:
        return self.popularity.encode(baskets)

    def rule_text(self, r: int) -> str:
        """'a & b -> c', cached: a served model spells the same popular rules again and again."""
        cache = self.__dict__.setdefault("_texts", {})
        text = cache.get(r)
        if text is None:
            lo, hi = self.antecedents.indptr[r], self.antecedents.indptr[r + 1]
            ante = " & ".join(str(x) for x in self.items[self.antecedents.indices[lo:hi]])
            text = cache[r] = f"{ante} -> {self.items[self.consequents[r]]}"
        return text

    def rank(self, baskets: sp.csr_matrix, k: int) -> Ranked:
        """Top-k items per basket (rows of a baskets x items matrix over the model's items)."""
        baskets = _check_request(baskets, k, len(self.items))
        parts = [self._rank_chunk(baskets[lo:hi], k) for lo, hi in self._chunks(baskets)]
        if not parts:
            return Ranked(np.full((0, k), -1), np.full((0, k), np.nan), [], np.zeros(0, dtype=np.int64))
        ranked = Ranked(
            np.vstack([p.codes for p in parts]),
            np.vstack([p.scores for p in parts]),
            [r for p in parts for r in p.rules],
            np.concatenate([p.from_rules for p in parts]),
        )
        return self._filled(baskets, ranked, k) if self.fill == "popular" else ranked

    def _chunks(self, baskets: sp.csr_matrix) -> list[tuple[int, int]]:
        """Row ranges whose candidate (basket, rule) pairs stay under PAIRS_PER_CHUNK (memory bound)."""
        n = baskets.shape[0]
        pairs = np.cumsum(baskets @ self.pivot_degree_) if n else np.zeros(0, dtype=np.int64)
        bounds, lo = [], 0
        while lo < n:
            hi = int(np.searchsorted(pairs, (pairs[lo - 1] if lo else 0) + PAIRS_PER_CHUNK, side="right"))
            hi = min(max(hi, lo + 1), lo + MAX_CHUNK, n)
            bounds.append((lo, hi))
            lo = hi
        return bounds

    def _fired(self, baskets: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(basket, rule) pairs of the rules that fire, their consequent not already in the basket."""
        if self.n_rules == 0 or baskets.nnz == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        width = baskets.shape[1]
        held = np.repeat(np.arange(baskets.shape[0]), np.diff(baskets.indptr)) * width + baskets.indices  # sorted
        candidates = (baskets @ self.pivot_t_).tocsr()  # the basket holds the rule's pivot item
        b = np.repeat(np.arange(candidates.shape[0]), np.diff(candidates.indptr))
        r = candidates.indices.astype(np.int64)
        multi = np.flatnonzero(self.ante_len_[r] > 1)
        if len(multi):
            ok = np.ones(len(b), dtype=bool)
            ok[multi] = self._holds_antecedent(b[multi], r[multi], held, width)
            b, r = b[ok], r[ok]
        fresh = ~_member(b * width + self.consequents[r], held)
        return b[fresh], r[fresh]

    def _holds_antecedent(self, b: np.ndarray, r: np.ndarray, held: np.ndarray, width: int) -> np.ndarray:
        lens = self.ante_len_[r]
        pair = np.repeat(np.arange(len(r)), lens)
        offset = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        items = self.antecedents.indices[np.repeat(self.antecedents.indptr[r], lens) + offset]
        present = _member(b[pair] * width + items, held)
        return np.bincount(pair, weights=present, minlength=len(r)) == lens

    def _rank_chunk(self, baskets: sp.csr_matrix, k: int) -> Ranked:
        n = baskets.shape[0]
        codes = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), np.nan)
        rules: list[list[np.ndarray]] = [[] for _ in range(n)]
        b, r = self._fired(baskets)
        if len(b) == 0:
            return Ranked(codes, scores, rules, np.zeros(n, dtype=np.int64))
        n_rules, rank = np.int64(self.n_rules), self.rank_[r]
        pair = b * np.int64(baskets.shape[1]) + self.consequents[r]
        order = np.argsort(pair * n_rules + rank, kind="stable")  # per (basket, item): best rule first
        b, r, pair, rank = b[order], r[order], pair[order], rank[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        ends = np.append(starts[1:], len(b))
        best = starts[np.argsort(b[starts] * n_rules + rank[starts], kind="stable")]  # items of a basket, best first
        pb = b[best]
        first_of_basket = np.r_[True, pb[1:] != pb[:-1]]
        group_start = np.maximum.accumulate(np.where(first_of_basket, np.arange(len(pb)), 0))
        position = np.arange(len(pb)) - group_start
        top = position < k
        chosen = best[top]
        codes[pb[top], position[top]] = self.consequents[r[chosen]]
        scores[pb[top], position[top]] = self.confidence[r[chosen]]
        stops = ends[np.searchsorted(starts, chosen)]
        for basket, start, stop in zip(pb[top].tolist(), chosen.tolist(), stops.tolist()):
            rules[basket].append(r[start:stop])
        return Ranked(codes, scores, rules, (codes >= 0).sum(axis=1).astype(np.int64))

    def _filled(self, baskets: sp.csr_matrix, ranked: Ranked, k: int) -> Ranked:
        """Empty slots after the rule items take the most popular items (score 0, no rule)."""
        codes, scores = ranked.codes.copy(), ranked.scores.copy()
        extra = k + int(np.diff(baskets.indptr).max(initial=0))
        head = self.popularity.order_[: extra + k]
        for i in np.flatnonzero(ranked.from_rules < k):
            have = set(baskets.indices[baskets.indptr[i] : baskets.indptr[i + 1]].tolist())
            have.update(codes[i][codes[i] >= 0].tolist())
            n = int(ranked.from_rules[i])
            for code in head.tolist():
                if n == k:
                    break
                if code not in have:
                    codes[i, n], scores[i, n] = code, 0.0
                    ranked.rules[i].append(np.empty(0, dtype=np.int64))
                    n += 1
        return Ranked(codes, scores, ranked.rules, ranked.from_rules)


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """keys in sorted_keys (both int64), by binary search."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys
