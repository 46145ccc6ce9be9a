"""CLV model fits: ecomlab's BG/NBD, MBG/NBD and Gamma-Gamma on 1M customers, and against lifetimes.

Customers are drawn from known parameters (tests/features/btyd_simulate.py, weeks, recency and T
on a day grid as summaries from dated orders are). Prints:
- fit seconds on 1M customers per model (target < 5 s on 2 cores), with the recovered parameters;
- on 100k customers, ecomlab against lifetimes 0.11.3 (run in a throwaway env through `uv run`,
  bench/_lifetimes_worker.py, since it needs pandas<3 and numpy<2): both fit times (the fit call
  alone, no env start-up or imports), the ratio (target >= 20x) and both log-likelihoods, as the
  sum over customers in weeks on the same data.
OPENBLAS_NUM_THREADS=1 is set here, before numpy loads, and printed (DESIGN: threaded BLAS made
these fits erratic on the 2 shared cores). The `/clv` latency is measured by bench/serve.py, not here.

    .venv/bin/python bench/clv.py [--quick] [--skip-lifetimes]
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from features.btyd import fit_beta_geo, fit_gamma_gamma  # noqa: E402
from tests.features.btyd_simulate import simulate  # noqa: E402  (the tests draw their cohorts the same way)

TRUTH = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 3.8, "v": 15.0}
WORKER = REPO / "bench" / "_lifetimes_worker.py"
UV_WITH = ["--with", "lifetimes==0.11.3", "--with", "pandas<3", "--with", "numpy<2", "--with", "scipy<1.14"]
GRAIN = 1 / 7  # a day, in weeks


def cohort(n: int, seed: int, model: str = "bgnbd"):
    return simulate(n, **TRUTH, seed=seed, model=model, grain=GRAIN)


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def ours(data, models: list[str]) -> dict[str, dict]:
    out = {}
    for model in models:
        if model == "gg":
            fit, seconds = timed(fit_gamma_gamma, data["frequency"], data["monetary"])
        else:
            fit, seconds = timed(fit_beta_geo, data["frequency"], data["recency"], data["T"], model)
        out[model] = {"seconds": seconds, "log_likelihood": fit.log_likelihood, "params": vars(fit.params),
                      "std_errors": fit.std_errors, "n": fit.n}
    return out


def lifetimes(data, models: list[str]) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.csv", Path(tmp) / "out.json"
        data.to_csv(src, index=False, float_format="%.17g")
        subprocess.run(["uv", "run", "--no-project", *UV_WITH, "python", str(WORKER), str(src), str(dst),
                        "--models", ",".join(models)], check=True, cwd=REPO)
        return json.loads(dst.read_text())


def show(title: str, results: dict[str, dict]) -> None:
    print(f"\n{title}")
    for model, res in results.items():
        params = ", ".join(f"{k}={v:.4g} (true {TRUTH[k]}, se {res['std_errors'][k]:.2g})" for k, v in res["params"].items())
        print(f"  {model:7s} {res['seconds']:6.2f} s  n={res['n']:,}  LL={res['log_likelihood']:.4f}  {params}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k customers for the big fit, 20k against lifetimes")
    parser.add_argument("--skip-lifetimes", action="store_true")
    args = parser.parse_args()
    big, small = (100_000, 20_000) if args.quick else (1_000_000, 100_000)
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}  cores={os.cpu_count()}  "
          f"load={os.getloadavg()[0]:.1f}")

    results = {}
    for model in ("bgnbd", "mbgnbd"):
        data = cohort(big, seed=1, model=model)
        results.update(ours(data, [model] + (["gg"] if model == "bgnbd" else [])))
    show(f"ecomlab on {big:,} simulated customers (weeks, day grid); fit seconds include the row compression", results)

    if args.skip_lifetimes:
        return
    models = ["bgnbd", "mbgnbd", "gg"]
    data = cohort(small, seed=2)
    mine = ours(data, models)
    theirs = lifetimes(data, models)
    print(f"\necomlab vs lifetimes 0.11.3 on {small:,} customers (same data; LL = sum over customers, weeks)")
    print(f"  {'model':7s} {'ecomlab s':>10s} {'lifetimes s':>12s} {'ratio':>7s} {'ecomlab LL':>16s} {'lifetimes LL':>16s}  params (ecomlab / lifetimes)")
    for model in models:
        a, b = mine[model], theirs[model]
        params = "  ".join(f"{k} {a['params'][k]:.5g}/{b['params'][k]:.5g}" for k in a["params"])
        print(f"  {model:7s} {a['seconds']:10.3f} {b['seconds']:12.3f} {b['seconds'] / a['seconds']:6.1f}x "
              f"{a['log_likelihood']:16.4f} {b['log_likelihood']:16.4f}  {params}")


if __name__ == "__main__":
    main()
