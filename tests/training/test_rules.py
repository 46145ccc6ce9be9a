"""Rule miner and recommender: exact against brute force, engines agree, behaviour, THE score, pyfunc, family."""

from __future__ import annotations

import pickle
from itertools import combinations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

import serving.models.rule_ranking as ranking
from features.baskets import Baskets, build_baskets
from features.contract import Accounting, Loaded, Quarantine
from serving.models.base import RecommenderModel
from serving.models.recommender import PopularityModel, RulesModel
from serving.models.registry import servable, unwrap
from serving.models.rule_ranking import PopularityRecommender, RuleRecommender
from tests.helpers import REPO
from training.config import Tuning
from training.family import Report, Split
from training.rules import (
    RecommenderFamily,
    RulesConfig,
    fit_rules,
    hide_one,
    min_count_for,
    mine_itemsets,
    rules_from_itemsets,
)
from training.tuning import run_study

ENGINES = ["pyfim", "mlxtend-fpgrowth", "mlxtend-hmine", "mlxtend-apriori"]
PARAMS = {"min_support": 0.02, "min_confidence": 0.3, "min_lift": 1.0, "max_len": 3}
CFG = RulesConfig(evaluation={"k": 3, "test_fraction": 0.25, "valid_fraction": 0.2, "seed": 5})


def baskets_of(lists: list[list[str]]) -> Baskets:
    """Baskets from item lists (order ids b0, b1, ... in that order; empty lists are left out)."""
    rows = [(f"b{i:04d}", item) for i, basket in enumerate(lists) for item in basket]
    lines = pd.DataFrame(rows, columns=["order_id", "product_id"]).astype("string")
    lines["returned"] = False
    return build_baskets(lines)


def random_lists(seed: int, n: int, n_items: int, p: float) -> list[list[str]]:
    """Random baskets with uneven item popularity (item i is bought with probability ~ p / (1 + i/4))."""
    rng = np.random.default_rng(seed)
    prob = p / (1 + np.arange(n_items) / 4)
    out = []
    for _ in range(n):
        picked = np.flatnonzero(rng.random(n_items) < prob)
        out.append([f"i{j:02d}" for j in (picked if len(picked) else [rng.integers(n_items)])])
    return out


def brute_itemsets(lists: list[list[str]], min_count: int, max_len: int) -> dict[tuple[str, ...], int]:
    sets = [set(b) for b in lists]
    items = sorted(set().union(*sets))
    out = {}
    for size in range(1, max_len + 1):
        for combo in combinations(items, size):
            count = sum(set(combo) <= s for s in sets)
            if count >= min_count:
                out[combo] = count
    return out


def labelled(itemsets, labels) -> dict[tuple[str, ...], int]:
    return {tuple(labels[list(k)]): v for k, v in itemsets.as_dict().items()}


# ---- exactness ----


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("min_support", "max_len"), [(0.05, 4), (0.12, 2), (0.3, None)])
def test_itemsets_equal_brute_force(engine: str, min_support: float, max_len: int | None):
    lists = random_lists(seed=1, n=120, n_items=9, p=0.45)
    b = baskets_of(lists)
    mined = mine_itemsets(b, min_support, max_len, engine)
    expected = brute_itemsets(lists, min_count_for(min_support, len(lists)), max_len or 9)
    assert labelled(mined, b.items) == expected
    assert mined.engine == engine and len(mined) == len(expected)


def test_rules_equal_brute_force():
    lists = random_lists(seed=2, n=150, n_items=8, p=0.5)
    b = baskets_of(lists)
    n, min_conf, min_lift = len(lists), 0.4, 1.05
    mined = mine_itemsets(b, 0.04, 4)
    rules = rules_from_itemsets(mined, b.n_items, min_conf, min_lift).frame(b.items)
    counts = brute_itemsets(lists, min_count_for(0.04, n), 4)
    expected = {}
    for itemset, count in counts.items():
        for c in itemset if len(itemset) > 1 else []:
            ante = tuple(i for i in itemset if i != c)
            conf = count / counts[ante]
            lift = conf / (counts[(c,)] / n)
            if conf >= min_conf and lift >= min_lift:
                expected[(ante, c)] = (count, count / n, conf, lift)
    columns = ["antecedent", "consequent", "count", "support", "confidence", "lift"]
    got = {(a, c): (k, s, f, lift) for a, c, k, s, f, lift in rules[columns].itertuples(index=False)}
    assert set(got) == set(expected) and len(got) == len(rules) > 10
    for key, (count, support, conf, lift) in expected.items():
        assert got[key][0] == count
        assert got[key][1:] == pytest.approx((support, conf, lift), rel=1e-12)


def test_engines_agree_on_larger_sparse_data():
    lists = random_lists(seed=3, n=2000, n_items=60, p=0.35)
    b = baskets_of(lists)
    results = {engine: mine_itemsets(b, 0.002, None, engine).as_dict() for engine in ENGINES}
    reference = results["pyfim"]
    assert len(reference) > 500 and max(map(len, reference)) >= 3
    for engine, found in results.items():
        assert found == reference, engine


def test_support_threshold_is_inclusive_at_exact_fractions():
    # 3 of 10 baskets is exactly 0.3, but 0.3 * 10 is 3.0000000000000004 in floating point
    b = baskets_of([["a", "b"]] * 3 + [["c"]] * 7)
    for engine in ENGINES:
        assert mine_itemsets(b, 0.3, 2, engine).as_dict() == {(0,): 3, (1,): 3, (0, 1): 3, (2,): 7}, engine
    assert min_count_for(0.3, 10) == 3 and min_count_for(0.31, 10) == 4 and min_count_for(1e-9, 10) == 1


def test_items_below_support_are_counted_and_guards_raise():
    b = baskets_of([["a", "b"], ["a", "c"], ["a", "d"], ["b"]])
    mined = mine_itemsets(b, 0.5, 3)
    assert mined.stats["items_below_min_support"] == 2 and mined.stats["items_frequent"] == 2
    with pytest.raises(ValueError, match="max_itemsets"):
        mine_itemsets(b, 0.25, 3, max_itemsets=3)
    with pytest.raises(ValueError, match="min_support"):
        mine_itemsets(b, 0.0, 3)
    with pytest.raises(ValueError, match="unknown mining engine"):
        mine_itemsets(b, 0.5, 3, engine="spark")


def test_planted_bundles_of_the_synthetic_shop_are_found():
    """Every planted anchor -> item rule comes out with the confidence and lift the generator measured."""
    synthetic = pytest.importorskip("features.synthetic")
    shop = synthetic.generate(n_customers=600, weeks=26, seed=11)
    b = build_baskets(shop.lines)
    fitted = fit_rules(b, {"min_support": 0.002, "min_confidence": 0.3, "min_lift": 2.0, "max_len": 2}, RulesConfig())
    rules = fitted.rules.frame(b.items)
    columns = ["antecedent", "consequent", "confidence", "lift"]
    found = {(a[0], c): (conf, lift) for a, c, conf, lift in rules[columns].itertuples(index=False)}
    for bundle in shop.truth["bundles"]:
        for item, observed in bundle["observed"].items():
            conf, lift = found[(bundle["anchor"], item)]
            assert conf == pytest.approx(observed["confidence"], abs=1e-4)
            assert lift == pytest.approx(observed["lift"], abs=0.01)


# ---- the recommender ----


def hand_recommender(fill: str = "none") -> RuleRecommender:
    """Items a, b, c, d, e, x, y; rules chosen so every tie-break level matters."""
    items = np.array(["a", "b", "c", "d", "e", "x", "y"], dtype=object)
    ante = [["x"], ["x"], ["x"], ["x"], ["x", "y"], ["y"], ["y"]]
    cons = ["a", "b", "c", "d", "e", "a", "x"]
    conf = [0.5, 0.5, 0.5, 0.5, 0.9, 0.4, 0.2]
    lift = [2.0, 2.0, 3.0, 2.0, 1.5, 5.0, 1.0]
    supp = [0.1, 0.2, 0.05, 0.1, 0.01, 0.3, 0.1]
    code = {label: i for i, label in enumerate(items)}
    rows = [r for r, a in enumerate(ante) for _ in a]
    cols = [code[i] for a in ante for i in a]
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ante), len(items)))
    counts = np.array([50, 40, 30, 20, 10, 60, 5])  # baskets per item in training (popularity)
    return RuleRecommender(items, counts, 100, matrix, np.array([code[c] for c in cons]), np.array(conf),
                           np.array(lift), np.array(supp), fill=fill)


def recommend(ranker: RuleRecommender, baskets: list[list[str]], k: int):
    return RulesModel(ranker, k).recommend(baskets, [k] * len(baskets))


def test_ranking_score_and_tie_breaks_are_documented_and_deterministic():
    rec = hand_recommender()
    out = recommend(rec, [["x"]], k=10)[0]
    # all conf 0.5: c has the highest lift; b beats a and d on support; a beats d on label
    assert out.items == ["c", "b", "a", "d"]
    assert out.scores == [0.5, 0.5, 0.5, 0.5]
    both = recommend(rec, [["x", "y"]], k=10)[0]
    # e fires only with x and y (conf 0.9); a has two rules: score = max confidence, rules best first
    assert both.items == ["e", "c", "b", "a", "d"]
    assert both.rules[0] == ["x & y -> e"]
    assert both.rules[3] == ["x -> a", "y -> a"]
    order = np.random.default_rng(0).permutation(rec.n_rules)
    shuffled = RuleRecommender(rec.items, rec.popularity.counts, 100, rec.antecedents[order], rec.consequents[order],
                               rec.confidence[order], rec.lift[order], rec.support[order])
    assert recommend(shuffled, [["x", "y"]], k=10)[0].items == both.items


def test_basket_items_never_recommended_and_unknown_items_reported():
    out = recommend(hand_recommender(), [["y", "a"], ["x", "c", "nope", "nope", "zzz"], ["nope"], []], k=10)
    assert out[0].items == ["x"]  # y -> a and y -> x fire; a is already in the basket
    assert out[1].items == ["b", "a", "d"] and out[1].unknown_items == ["nope", "zzz"]
    assert out[2].items == [] and out[2].unknown_items == ["nope"]
    assert out[3].items == [] and out[3].unknown_items == []


def test_popularity_fill_and_popularity_baseline():
    out = recommend(hand_recommender(fill="popular"), [["x"], ["d"]], k=6)
    assert out[0].items == ["c", "b", "a", "d", "e", "y"]  # popular fill after the rules: x is in the basket
    assert out[0].scores[4:] == [0.0, 0.0] and out[0].rules[4:] == [[], []]
    assert out[1].items == ["x", "a", "b", "c", "e", "y"]  # no rule fires: popularity only, count order
    pop = PopularityRecommender(np.array(["a", "b", "c", "d"], dtype=object), np.array([5, 9, 9, 0]), 10)
    ranked = pop.rank(sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]])), k=3)
    assert ranked.codes.tolist() == [[2, 0, -1], [1, 2, 0]]  # ties by label; unseen d never recommended
    assert ranked.scores[1].tolist() == [0.9, 0.9, 0.5]
    model = PopularityModel(pop, 3)
    got = model.recommend([["b"], [], ["d", "a"]], [3, 2, 3])
    assert [r.items for r in got] == [["c", "a"], ["b", "c"], ["b", "c"]]
    assert got[2].unknown_items == ["d"] and got[0].rules == [[], []] and got[1].scores == [0.9, 0.9]


def test_every_rule_fires_on_its_antecedent_and_chunking_changes_nothing(monkeypatch):
    lists = random_lists(seed=4, n=400, n_items=25, p=0.4)
    b = baskets_of(lists)
    fitted = fit_rules(b, {**PARAMS, "min_confidence": 0.1}, CFG)
    rec, rules = fitted.recommender, fitted.rules
    assert len(rules) > 50
    antecedents = [[str(b.items[i]) for i in rules.antecedent(r)] for r in range(len(rules))]
    out = RulesModel(rec, 5, max_k=b.n_items).recommend(antecedents, [b.n_items] * len(antecedents))
    for r, (ante, got) in enumerate(zip(antecedents, out)):
        assert str(b.items[rules.consequents[r]]) in got.items
        assert not set(ante) & set(got.items)
    whole = rec.rank(b.matrix, 4)
    monkeypatch.setattr(ranking, "PAIRS_PER_CHUNK", 7)
    monkeypatch.setattr(ranking, "MAX_CHUNK", 3)
    pieces = rec.rank(b.matrix, 4)
    np.testing.assert_array_equal(whole.codes, pieces.codes)
    np.testing.assert_array_equal(whole.scores, pieces.scores)
    assert all(set(b.matrix[i].indices).isdisjoint(whole.codes[i]) for i in range(b.n_baskets))


def test_recommend_takes_one_k_per_basket_and_names_bad_input():
    model = RulesModel(hand_recommender(), 10)
    assert isinstance(model, RecommenderModel) and servable(model, "recommender") is model
    out = model.recommend([["x"], ["x"]], [2, 4])
    assert out[0].items == ["c", "b"] and out[1].items == ["c", "b", "a", "d"] and len(out[0].rules) == 2
    with pytest.raises(ValueError, match="2 baskets but 1 values of k"):
        model.recommend([["x"], ["y"]], [3])
    with pytest.raises(ValueError, match="basket 1: 'k' must be between 1 and 100"):
        model.recommend([["x"], ["y"]], [3, 0])
    with pytest.raises(ValueError, match="basket 0: 'items' must be a list"):
        model.recommend(["x"], [3])  # type: ignore[list-item]


# ---- THE score ----


def planted_lists(seed: int, n: int = 1500) -> list[list[str]]:
    """Pairs p0..p4 -> q0..q4 bought together 90% of the time, plus popular filler items f0..f5."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        basket = {f"f{j}" for j in np.flatnonzero(rng.random(6) < [0.5, 0.45, 0.4, 0.35, 0.3, 0.25])}
        if rng.random() < 0.6:
            pair = rng.integers(5)
            basket.add(f"p{pair}")
            if rng.random() < 0.9:
                basket.add(f"q{pair}")
        out.append(sorted(basket) or ["f0"])
    return out


@pytest.fixture(scope="module")
def planted():
    family = RecommenderFamily()
    feats = baskets_of(planted_lists(seed=8))
    return family, feats, family.split(feats, CFG)


def test_hide_one_is_seeded_and_hides_an_item_of_the_basket(planted):
    _, feats, _ = planted
    part = feats.subset(np.arange(0, feats.n_baskets, 3))
    held = hide_one(part, seed=5)
    np.testing.assert_array_equal(held.hidden, hide_one(part, seed=5).hidden)
    assert not np.array_equal(held.hidden, hide_one(part, seed=6).hidden)
    eligible = np.flatnonzero(part.sizes() >= 2)
    assert held.skipped == part.n_baskets - len(eligible) and len(held) == len(eligible)
    lists = part.as_lists()
    for row, basket in enumerate(eligible):
        assert held.ids[row] == part.ids[basket]
        assert held.hidden[row] in lists[basket]
        assert held.baskets[row] == [x for x in lists[basket] if x != held.hidden[row]]


def test_split_is_seeded_three_way_and_disjoint(planted):
    family, feats, split = planted
    assert isinstance(split, Split)
    n = feats.n_baskets
    n_valid, n_test = round(0.2 * n), round(0.25 * n)
    assert split.train.n_baskets == n - n_valid - n_test
    assert len(split.valid) + split.valid.skipped == n_valid and len(split.test) + split.test.skipped == n_test
    train, valid, test = set(split.train.ids), set(split.valid.ids), set(split.test.ids)
    assert not (train & valid or train & test or valid & test)
    again = family.split(feats, CFG)
    assert list(again.test.ids) == list(split.test.ids) and list(again.valid.hidden) == list(split.valid.hidden)
    with pytest.raises(ValidationError, match="must stay below 1"):
        RulesConfig(evaluation={"test_fraction": 0.5, "valid_fraction": 0.5})


def test_rules_beat_popularity_on_planted_pairs_and_metrics_are_reported(planted):
    family, _, split = planted
    ev = family.evaluate(split.train, split.valid, PARAMS, CFG)
    base = family.score(family.baseline(split.train, CFG), split.valid, CFG)
    assert set(ev.metrics) >= {"hit_rate_at_k", "mrr_at_k", "coverage", "rule_coverage", "eval_baskets"}
    assert ev.objective == ev.metrics["hit_rate_at_k"]
    assert ev.objective > base.objective + 0.05
    assert 0 < ev.metrics["rule_coverage"] <= 1 and base.metrics["rule_coverage"] == 0 and base.metrics["coverage"] == 1
    assert ev.metrics["eval_baskets"] == base.metrics["eval_baskets"] == len(split.valid) > 250
    assert ev.metrics["mrr_at_k"] <= ev.objective
    # paired per-basket losses: same baskets, same order
    assert ev.losses["basket_id"].tolist() == base.losses["basket_id"].tolist() == list(split.valid.ids)


def test_losses_hold_one_row_per_basket_behind_the_objective(planted):
    family, _, split = planted
    ev = family.evaluate(split.train, split.test, PARAMS, CFG)
    losses = ev.losses
    assert list(losses.columns) == ["basket_id", "hidden_item", "hit", "rank"] and len(losses) == len(split.test)
    assert set(losses["hit"]) <= {0, 1} and (losses["rank"].isna() == (losses["hit"] == 0)).all()
    assert losses["rank"].dropna().between(1, CFG.evaluation.k).all()
    assert ev.objective == pytest.approx(losses["hit"].mean())
    assert ev.metrics["mrr_at_k"] == pytest.approx((1 / losses["rank"]).fillna(0).mean())


def test_evaluate_is_the_score_of_the_servable_fit(planted):
    family, _, split = planted
    ev = family.evaluate(split.train, split.valid, PARAMS, CFG)
    model = family.servable(family.fit(split.train, PARAMS, CFG), CFG)
    direct = family.score(model, split.valid, CFG)
    assert ev.objective == direct.objective and ev.metrics == direct.metrics
    pd.testing.assert_frame_equal(ev.losses, direct.losses)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_score_is_the_same_after_a_pickle_round_trip(planted, dumps):
    family, _, split = planted
    for model in (family.servable(family.fit(split.train, PARAMS, CFG), CFG), family.baseline(split.train, CFG)):
        before = family.score(model, split.test, CFG)
        after = family.score(pickle.loads(dumps(model)), split.test, CFG)
        assert after.objective == before.objective and after.metrics == before.metrics
        pd.testing.assert_frame_equal(after.losses, before.losses)


def test_the_popularity_baseline_is_a_servable_recommender_scored_by_the_same_function(planted):
    family, _, split = planted
    baseline = family.baseline(split.train, CFG)
    assert isinstance(baseline, RecommenderModel) and servable(baseline, "recommender") is baseline
    counts = dict(zip(split.train.items, split.train.item_counts()))
    popular = sorted((label for label, c in counts.items() if c > 0), key=lambda x: (-counts[x], x))
    k = CFG.evaluation.k
    test = split.test
    hits = [hidden in [x for x in popular if x not in rest][:k] for rest, hidden in zip(test.baskets, test.hidden)]
    got = family.score(baseline, split.test, CFG)
    assert got.losses["hit"].tolist() == [int(h) for h in hits]
    assert got.objective == pytest.approx(np.mean(hits)) and got.objective > 0


# ---- pyfunc ----


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pyfunc_round_trip(planted, tmp_path, monkeypatch):
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    family, _, split = planted
    fitted = family.fit(split.train, PARAMS, CFG)
    model = family.servable(fitted, CFG)
    example, expected = family.example(model, fitted, CFG)
    assert list(expected.columns) == ["items", "scores", "rules", "unknown_items"]
    assert expected["unknown_items"][1] == ["(an item the model has not seen)"]
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=model, signature=infer_signature(example, expected),
                             input_example=example, pip_requirements=["numpy"])
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    out = loaded.predict(example)
    assert out["items"].tolist() == expected["items"].tolist()
    assert out["rules"].tolist() == expected["rules"].tolist()
    request = pd.DataFrame({"items": [["p1"], ["p2", "ghost"], []]})
    got = loaded.predict(request)
    assert got["items"][0][0] == "q1" and got["rules"][0][0] == ["p1 -> q1"]
    assert got["unknown_items"][1] == ["ghost"] and got["items"][2] == []
    sized = loaded.predict(request.assign(k=[1.0, 2.0, np.nan]))["items"]
    assert [len(x) for x in sized] == [1, min(2, len(got["items"][1])), 0] and sized[1] == got["items"][1][:2]
    champion = unwrap(loaded, "recommender")
    assert family.score(champion, split.test, CFG).objective == family.score(model, split.test, CFG).objective


def test_pyfunc_bad_input_names_the_problem(planted):
    _, _, split = planted
    model = RulesModel(fit_rules(split.train, PARAMS, CFG).recommender, 3)
    with pytest.raises(ValueError, match="column 'items'"):
        model.predict(None, pd.DataFrame({"basket": [["p1"]]}))
    with pytest.raises(ValueError, match="row 1: 'items' must be a list"):
        model.predict(None, pd.DataFrame({"items": [["p1"], "p1"]}))
    with pytest.raises(ValueError, match="row 0: 'items' must hold strings"):
        model.predict(None, pd.DataFrame({"items": [[1, 2]]}))
    with pytest.raises(ValueError, match="row 0: 'k' must be a whole number"):
        model.predict(None, pd.DataFrame({"items": [["p1"]], "k": [2.5]}))
    with pytest.raises(ValueError, match="row 0: 'k' must be between 1 and 100"):
        model.predict(None, pd.DataFrame({"items": [["p1"]], "k": [0]}))


# ---- the family ----


def test_family_surface(planted):
    family, _, split = planted
    assert (family.name, family.direction, family.objective_name) == ("recommender", "maximize", "hit_rate_at_k")
    assert family.config_model is RulesConfig and family.refit_on_all_data is False
    assert family.initial_trials(CFG) == []
    lines = pd.DataFrame({"order_id": ["o1", "o1", "o2"], "product_id": ["a", "b", "a"]}).astype("string")
    lines["returned"] = [False, False, False]
    loaded = Loaded(lines, Quarantine(), Accounting(3, 3, 0, 0))
    assert family.features(loaded, CFG).n_baskets == 2
    with pytest.raises(ValueError, match="too few baskets"):
        family.split(family.features(loaded, CFG), CFG)

    result = run_study(family, CFG, split.train, split.valid, Tuning(n_trials=3, seed=1), "bounds")
    s = CFG.search
    for trial in result.trials:
        p = trial.params
        assert s.min_support.lo <= p["min_support"] <= s.min_support.hi and p["max_len"] in s.max_len
        assert s.min_confidence.lo <= p["min_confidence"] <= s.min_confidence.hi
    trials, study = result.trials, result
    assert family.select(trials, study.best_params, CFG) == study.best_params


def test_report_is_pure(planted):
    family, feats, _ = planted
    fitted = family.fit(feats, PARAMS, CFG)
    model = family.servable(fitted, CFG)
    before = model.predict(None, pd.DataFrame({"items": feats.as_lists()[:50]}))
    rules_before = fitted.rules.frame(fitted.items)
    report = family.report(fitted, feats, CFG)
    assert isinstance(report, Report)
    assert set(report.figures) == {"rules_support_confidence", "rules_network"}
    top = report.tables["top_rules_by_lift"]
    assert len(top) == min(len(fitted.rules), CFG.report.table_rules)
    assert top["lift"].is_monotonic_decreasing and top.iloc[0]["lift"] > 5
    assert report.metrics["n_rules"] == len(fitted.rules) and report.metrics["n_itemsets"] == fitted.n_itemsets
    pd.testing.assert_frame_equal(fitted.rules.frame(fitted.items), rules_before)
    pd.testing.assert_frame_equal(model.predict(None, pd.DataFrame({"items": feats.as_lists()[:50]})), before)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"engin": "pyfim"}, "engin"),
        ({"engine": "spark"}, "engine"),
        ({"features": {"basket_level": "week"}}, "basket_level"),
        ({"search": {"min_support": {"lo": 0.1, "hi": 0.01}}}, "below"),
        ({"search": {"min_support": {"lo": 0, "hi": 0.01}}}, "min_support"),
        ({"search": {"max_len": [1, 2]}}, "max_len"),
        ({"evaluation": {"test_fraction": 1.5}}, "test_fraction"),
        ({"evaluation": {"valid_fraction": 0}}, "valid_fraction"),
        ({"evaluation": {"k": 20}, "max_k": 10}, "max_k"),
    ],
)
def test_config_errors_name_the_key(section: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        RulesConfig.model_validate(section)


@pytest.mark.realdata
def test_engines_agree_on_groceries(shared_data):

    from features.sources import load

    shared_data("groceries")
    b = build_baskets(load(REPO / "configs" / "data" / "groceries.yaml").lines)
    reference = mine_itemsets(b, 0.005, None, "pyfim").as_dict()
    assert len(reference) > 900
    assert mine_itemsets(b, 0.005, None, "mlxtend-fpgrowth").as_dict() == reference
