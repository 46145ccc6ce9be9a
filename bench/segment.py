"""Benchmark: customer features + a 20-trial segmenter study on 100,000 synthetic customers.

Prints wall time per stage, time per trial and peak memory (ru_maxrss of this process). The study
runs through the platform (`training.tuning.run_study`) with MLflow in a temporary SQLite store, so
per-trial tracking costs are included, as in a real job.

    uv run python bench/segment.py [--customers 100000] [--trials 20] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
warnings.filterwarnings("ignore")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()

    from features.contract import Accounting, Loaded, Quarantine
    from features.synthetic import generate
    from training import tracking
    from training.config import Tuning
    from training.segment import SegmentConfig, SegmenterFamily
    from training.tuning import TrialRuns, run_study

    t = time.perf_counter()
    data = generate(n_customers=args.customers, weeks=args.weeks, seed=1)
    gen_s = time.perf_counter() - t
    n = len(data.lines)
    loaded = Loaded(data.lines, Quarantine(), Accounting(n, n, 0, 0), "bench", data.customers, data.inventory)
    print(f"synthetic data: {args.customers:,} customers, {n:,} order lines in {gen_s:.1f} s")

    family, cfg = SegmenterFamily(), SegmentConfig()
    t = time.perf_counter()
    feats = family.features(loaded, cfg)
    split = family.split(feats, cfg)
    feat_s = time.perf_counter() - t
    print(f"customer features + split: {feat_s:.2f} s  (peak so far {peak_mb():,.0f} MB)")

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        tracking.setup(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        times: list[float] = []
        last = [time.perf_counter()]

        def on_trial(_frozen) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        with tracking.parent_run("bench-segment", "bench", {}) as run_id:
            exp = tracking.experiment_of(run_id)
            t = time.perf_counter()
            last[0] = t
            result = run_study(
                family, cfg, split.train, split.valid, Tuning(n_trials=args.trials, n_jobs=args.n_jobs), "bench",
                TrialRuns(run_id, exp), on_trial=on_trial,
            )
            tune_s = time.perf_counter() - t
            t = time.perf_counter()
            fitted = family.fit(split.train, result.best_params, cfg)
            fit_s = time.perf_counter() - t
            candidate = family.score(family.servable(fitted, cfg), split.test, cfg)
    times.sort()
    print(f"tuning: {args.trials} trials in {tune_s:.1f} s (n_jobs={args.n_jobs}); per trial mean "
          f"{tune_s / args.trials:.2f} s, median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s; "
          f"{result.n_failed} failed")
    print(f"best: {result.best_params}  silhouette {result.best.objective:.3f} on valid, {candidate.objective:.3f} on test")
    print(f"candidate fit on the {len(split.train.table):,} train customers: {fit_s:.1f} s ({type(fitted).__name__})")
    print(f"total (features + tuning): {feat_s + tune_s:.1f} s; peak memory {peak_mb():,.0f} MB (ru_maxrss)")


if __name__ == "__main__":
    main()
