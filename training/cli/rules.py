"""`ecomlab rules`: mine association rules of a source and look at them, before training a recommender.

The same mining and rule derivation as the recommender family (`training.rules`), on all the baskets
at the thresholds given: the top rules are printed, all of them written with --out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from training.cli.app import EXIT_USAGE, app, console, fail, user_errors
from training.cli.data import load_with_progress

COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "conviction", "count",
           "antecedent_count", "consequent_count", "n_baskets"]


@app.command("rules")
def rules(
    config: Annotated[Path, typer.Argument(help="a data config, e.g. configs/data/groceries.yaml")],
    min_support: Annotated[float, typer.Option(min=0, max=1, help="share of baskets an itemset must be in")] = 0.01,
    min_confidence: Annotated[float, typer.Option(min=0, max=1, help="rules below this confidence are dropped")] = 0.1,
    min_lift: Annotated[float, typer.Option(min=0, help="rules below this lift are dropped")] = 1.0,
    max_len: Annotated[int, typer.Option(min=2, help="items in a rule, antecedent and consequent together")] = 3,
    top: Annotated[int, typer.Option(min=1, help="rules to print (by lift, then confidence)")] = 20,
    out: Annotated[Path | None, typer.Option(help="folder for rules.csv (every rule)")] = None,
    level: Annotated[Literal["order", "customer"], typer.Option(help="a basket is an order or a customer")] = "order",
    item: Annotated[Literal["product_id", "product_name", "category"], typer.Option(help="what an item is")] = "product_id",
) -> None:
    """Mine frequent itemsets and rules of a source; print the top rules, write them all with --out."""
    from features.baskets import build_baskets
    from training.rules import mine_itemsets, rules_from_itemsets

    if min_support <= 0:
        fail("--min-support must be above 0")
        raise typer.Exit(EXIT_USAGE)
    with user_errors():
        loaded = load_with_progress(config)
    with console.status("mining itemsets and rules"):
        try:
            baskets = build_baskets(loaded.lines, level, item)
            itemsets = mine_itemsets(baskets, min_support, max_len)
        except ValueError as exc:  # no baskets at all, or no line with both a basket key and an item
            fail(f"{config}: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        found = rules_from_itemsets(itemsets, baskets.n_items, min_confidence, min_lift)
        frame = rules_frame(found.frame(baskets.items), baskets.n_baskets)
    console.print(
        f"{baskets.n_baskets:,} baskets, {baskets.n_items:,} items; {len(itemsets):,} frequent itemsets "
        f"(in at least {itemsets.min_count:,} baskets); {len(frame):,} rules",
        highlight=False,
    )
    if len(frame):
        console.print(top_table(frame.head(top)))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "rules.csv", index=False)
        console.print(f"wrote {len(frame):,} rules to [bold]{escape(str(out / 'rules.csv'))}[/]")


def rules_frame(rules: pd.DataFrame, n_baskets: int) -> pd.DataFrame:
    """The rules with conviction and the basket count, best first (lift, confidence, support, then by label).

    conviction = (1 - support(consequent)) / (1 - confidence): how much more often the rule would be
    wrong if antecedent and consequent were independent; infinite for a rule that is never wrong."""
    frame = rules.copy()
    consequent_support = frame["consequent_count"] / n_baskets
    wrong = 1.0 - frame["confidence"]
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["conviction"] = np.where(wrong > 1e-12, (1.0 - consequent_support) / wrong, np.inf)
    frame["n_baskets"] = n_baskets
    frame["antecedent"] = [" + ".join(map(str, a)) for a in frame["antecedent"]]
    keys = ["lift", "confidence", "support", "antecedent", "consequent"]  # labels break ties: a stable listing
    frame = frame.sort_values(keys, ascending=[False, False, False, True, True], kind="stable")
    return frame[COLUMNS].reset_index(drop=True)


def top_table(frame: pd.DataFrame) -> Table:
    table = Table(title=f"top {len(frame)} rules by lift")
    table.add_column("rule")
    for col in ("support", "confidence", "lift", "conviction", "count"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in frame.itertuples():
        table.add_row(
            f"{escape(r.antecedent)} -> {escape(str(r.consequent))}", f"{r.support:.4g}", f"{r.confidence:.4g}",
            f"{r.lift:.4g}", f"{r.conviction:.4g}", f"{r.count:,}",
        )
    return table
