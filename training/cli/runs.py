"""`ecomlab runs list` and `ecomlab runs compare`: a store's job runs, and paired comparisons of them.

`runs compare A B [C ...]` takes run ids, versions (`name/3`) or aliases (`name@champion`). The first
run is the reference: each other run is compared with it (pairs A-B, A-C, ...; differences are the
reference minus the other), by the family's paired test on the per-unit losses of both candidates.
Runs of different families, on different data or evaluation splits, or without per-unit losses are
refused with one line (exit 2): no comparison of apples with oranges."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from training.cli.app import EXIT_USAGE, console, fail, hint, runs_app
from training.cli.models import BETTER, TRACKING_HELP, open_store

ALPHA_HELP = "significance level: CIs are (1 - alpha), verdicts need p < alpha"


def refuse(message: str) -> typer.Exit:
    fail(message)
    return typer.Exit(EXIT_USAGE)


@runs_app.command("list")
def runs_list(
    experiment: Annotated[str, typer.Argument(help="experiment name (a job config's `experiment`)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (one object per run)")] = False,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
) -> None:
    """The experiment's job runs, newest first (not their trials): key metric, decision, version, data digest."""
    from training.tracking.compare import UnknownReference, parent_runs

    open_store(tracking_uri)
    try:
        runs = parent_runs(experiment)
    except UnknownReference as exc:
        raise refuse(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([{k: v for k, v in r.as_dict().items() if k != "metrics"} for r in runs], indent=2))
        return
    if not runs:
        console.print(f"no job runs in {experiment}: run `{hint('ecomlab train CONFIG')}`", highlight=False)
        return
    console.print(runs_table(experiment, runs))


def runs_table(experiment: str, runs: list[Any]) -> Table:
    """Narrow enough for 80 columns: the metric and its direction go in the title (one per family when an
    experiment mixes families), ids and digests are cut to 8 characters (`--json` has them whole)."""
    objectives = dict.fromkeys((r.family, r.objective, r.direction) for r in runs if r.objective)
    arrow = {"maximize": "↑", "minimize": "↓"}
    if len(objectives) == 1:
        _, objective, direction = next(iter(objectives))
        title = f"{experiment}: best_{objective}, {BETTER.get(direction, direction or 'direction unknown')}"
    else:
        title = f"{experiment}: " + ", ".join(f"{f} best_{o} {arrow.get(d, '')}" for f, o, d in objectives)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False)
    for col, justify in (("run", "left"), ("started", "left"), ("job", "left"), ("score", "right"),
                         ("decision", "left"), ("ver", "right"), ("data", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in runs:
        decision = r.decision or ("" if r.status == "FINISHED" else r.status.lower())
        table.add_row(r.run_id[:8], r.started[5:], r.job[:12], _num(r.score), decision, r.version, r.data_digest[:8])
    return table


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


@runs_app.command("compare")
def runs_compare(
    refs: Annotated[list[str], typer.Argument(help="2+ run ids, versions (name/3) or aliases (name@champion); the first is the reference")],
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="print the comparison as Markdown")] = False,
    log: Annotated[bool, typer.Option("--log", help="attach the comparison (JSON + Markdown) to the newest run")] = False,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help=ALPHA_HELP)] = 0.05,
    seed: Annotated[int, typer.Option(help="bootstrap seed (clv's paired bootstrap)")] = 0,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
) -> None:
    """Metrics side by side, then each run against the first: difference, CI, p-value and a one-line verdict."""
    from training.cli.runs_report import compare_runs, markdown_report

    if len(refs) < 2:
        raise refuse("runs compare needs at least two runs, versions or aliases")
    if as_json and markdown:
        raise refuse("--json and --markdown: choose one")
    open_store(tracking_uri)
    try:
        report = compare_runs(refs, alpha, seed)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    text = markdown_report(report)
    if log:
        from training.tracking.compare import attach

        newest = max(report["runs"], key=lambda r: r["start_time"])
        stem = "comparisons/compare-" + "-".join(r["run_id"][:8] for r in report["runs"])
        attach(newest["run_id"], {f"{stem}.json": json.dumps(report, indent=2), f"{stem}.md": text})
        report["logged"] = {"run_id": newest["run_id"], "artifacts": [f"{stem}.json", f"{stem}.md"]}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    elif markdown:
        typer.echo(text)
    else:
        _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    runs = report["runs"]
    table = Table(title=f"{report['family']}: {report['objective']}, {BETTER.get(report['direction'], '')}",
                  box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("metric", no_wrap=True)
    for r in runs:
        table.add_column(r["label"], justify="right", no_wrap=True)
    for metric in report["metrics"]:
        table.add_row(metric, *[_num(r["metrics"].get(metric)) for r in runs])
    console.print(table)
    level = round(100 * (1 - report["alpha"]))
    for p in report["pairs"]:
        console.print(
            f"[bold]{p['a']} vs {p['b']}[/]: difference {p['difference']:+.4g}, {level}% CI "
            f"[{p['ci_low']:.4g}, {p['ci_high']:.4g}], p={p['p_value']:.3g} ({p['test']}, n={p['n']})",
            highlight=False,
        )
        console.print(f"  {p['verdict']}", highlight=False, soft_wrap=True)
    if "logged" in report:
        console.print(f"logged on run {report['logged']['run_id']}: {', '.join(report['logged']['artifacts'])}", highlight=False)
