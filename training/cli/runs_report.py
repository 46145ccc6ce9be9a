"""The comparison behind `ecomlab runs compare`: refusals, metrics side by side, paired tests, Markdown.

Plain data in, plain data out (a dict that is also the `--json` output); the MLflow reads are in
`training.tracking.compare`."""

from __future__ import annotations

from typing import Any

from training.tracking.compare import RunSummary

#: report metrics shown beside the candidate's test metrics (the segmenter's ARI across seeds)
EXTRA_METRICS = ("stability_ari_mean", "stability_ari_min")


def rerun_hint(run: RunSummary, label: str, what: str) -> str:
    return (f"run {label} ({run.job or 'unknown job'}, {run.started}) has no {what}: it was made before runs "
            f"could be compared; re-run its job (`ecomlab train CONFIG` with the same data and model sections) "
            "and compare the new run")


def label_of(ref: str, run: RunSummary) -> str:
    return run.run_id[:8] if ref == run.run_id else ref


def check_comparable(runs: list[tuple[str, RunSummary]]) -> None:
    """ValueError (one line) unless every run is a job run of one family, on the same data and split, with losses."""
    from training.tracking.compare import has_losses

    for label, run in runs:
        if run.trial_of:
            raise ValueError(f"{label} is a trial run of job run {run.trial_of[:8]}: compare job runs (`ecomlab runs list EXPERIMENT`)")
    (first_label, first), *others = runs
    for label, run in others:
        if run.family != first.family:
            raise ValueError(f"{first_label} is a {first.family or 'unknown family'} run, {label} a "
                             f"{run.family or 'unknown family'} run: only runs of one family compare")
    for label, run in runs:
        if not has_losses(run.run_id):
            raise ValueError(rerun_hint(run, label, "per-unit losses (losses/candidate.parquet)"))
        if not run.eval_split or not run.eval_units:
            raise ValueError(rerun_hint(run, label, "evaluation identity (tags ecomlab.eval_split, ecomlab.eval_units)"))
    for label, run in others:
        for attr, what in (("data_digest", "data (data set digest)"), ("eval_split", "evaluation split (split settings)"),
                           ("eval_units", "evaluation units (held-out units)")):
            mine, theirs = getattr(first, attr), getattr(run, attr)
            if mine != theirs:
                raise ValueError(f"{first_label} and {label} were evaluated on different {what}: "
                                 f"{mine[:12] or 'none'} vs {theirs[:12] or 'none'}; they cannot be compared")


def compare_runs(refs: list[str], alpha: float, seed: int) -> dict[str, Any]:
    """The comparison of `refs` (the first is the reference), or a ValueError/UnknownReference saying why not."""
    from training.compare.paired import compare_losses, verdict
    from training.tracking.compare import UnknownReference, load_losses, resolve

    try:
        resolved = [(ref, resolve(ref)) for ref in refs]
    except UnknownReference as exc:
        raise ValueError(str(exc)) from None
    runs = [(label_of(ref, run), run) for ref, run in resolved]
    check_comparable(runs)
    (first_label, first), *others = runs
    losses = {run.run_id: load_losses(run.run_id) for _, run in runs}
    pairs = []
    for label, run in others:
        result = compare_losses(first.family, losses[first.run_id], losses[run.run_id], alpha=alpha, seed=seed,
                                score_a=first.score, score_b=run.score)
        pairs.append({
            "a": first_label, "b": label, "a_run": first.run_id, "b_run": run.run_id, "test": result.test,
            "difference": result.difference, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "p_value": result.p_value, "n": result.n, "statistic": result.statistic,
            "verdict": verdict(result, first.direction, alpha, names=(first_label, label)),
        })
    return {
        "family": first.family, "objective": first.objective, "direction": first.direction, "alpha": alpha, "seed": seed,
        "data_digest": first.data_digest, "eval_split": first.eval_split,
        "metrics": shown_metrics(first.objective, [run for _, run in runs]),
        "runs": [_run_entry(label, run, first.objective) for label, run in runs],
        "pairs": pairs,
    }


def shown_metrics(objective: str, runs: list[RunSummary]) -> list[str]:
    """The objective first, then the candidates' other test metrics, the baseline's objective, the extras."""
    names = {k.removeprefix("best_") for run in runs for k in run.metrics if k.startswith("best_")}
    ordered = [objective, *sorted(names - {objective}), f"baseline_{objective}"]
    return ordered + [m for m in EXTRA_METRICS if any(m in run.metrics for run in runs)]


def _run_entry(label: str, run: RunSummary, objective: str) -> dict[str, Any]:
    values = {k.removeprefix("best_"): v for k, v in run.metrics.items() if k.startswith("best_")}
    values.update({k: v for k, v in run.metrics.items() if k == f"baseline_{objective}" or k in EXTRA_METRICS})
    return {"label": label, "run_id": run.run_id, "run_name": run.run_name, "job": run.job, "version": run.version,
            "decision": run.decision, "started": run.started, "start_time": run.start_time, "metrics": values}


def markdown_report(report: dict[str, Any]) -> str:
    runs = report["runs"]
    lines = [f"# {report['family']}: {report['objective']} ({report['direction']})", "",
             "| metric | " + " | ".join(r["label"] for r in runs) + " |", "|---|" + "---:|" * len(runs)]
    for metric in report["metrics"]:
        cells = ["" if r["metrics"].get(metric) is None else f"{r['metrics'][metric]:.4g}" for r in runs]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    level = round(100 * (1 - report["alpha"]))
    lines += ["", f"| pair | difference | {level}% CI | p-value | test | n |", "|---|---:|---|---:|---|---:|"]
    for p in report["pairs"]:
        lines.append(f"| {p['a']} vs {p['b']} | {p['difference']:+.4g} | [{p['ci_low']:.4g}, {p['ci_high']:.4g}] "
                     f"| {p['p_value']:.3g} | {p['test']} | {p['n']} |")
    lines += ["", *[f"- {p['verdict']}" for p in report["pairs"]],
              "", f"Data digest {report['data_digest']}, evaluation split {report['eval_split']}.", ""]
    return "\n".join(lines)
