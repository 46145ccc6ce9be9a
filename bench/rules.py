"""Frequent-itemset mining, side by side on the same baskets: speed, peak memory, and agreement.

Methods (each run in its own child process, so peak memory is that child's ru_maxrss from wait4):
- ecomlab     training.rules.mine_itemsets, default engine, from the basket matrix (timing includes its
              conversion to transactions and back to arrays)
- pyfim       fim.fpgrowth directly (timing: the call only, transactions prepared beforehand)
- mlxtend-fpgrowth-sparse   mlxtend fpgrowth on a sparse DataFrame (timing: the call only)
- mlxtend-apriori-dense     mlxtend's default apriori on a dense bool DataFrame, under an address-space
              cap (RLIMIT_AS); reported as out of memory where it fails
- efficient-apriori         itemsets_from_transactions (pure Python apriori)
- load-only   the child's floor: Python, imports and the basket matrix, no mining

Data: FIMI retail.dat (88,162 baskets) and UCI Online Retail invoices (sales lines, item = StockCode),
both through ecomlab's loaders and basket builder, two support levels each; and synthetic 500,000
baskets x 5,000 items (seeded, Zipf-like item popularity, mean basket ~8) generated here.
All methods get the same threshold: itemsets held by at least ceil(support * n) baskets (the fraction
APIs get (count - 0.5) / n, which admits exactly those counts), no length limit.

Each method is bounded by --timeout seconds (killed and reported); a method that timed out or ran out
of memory at a higher support is skipped, with the reason, at the lower supports of the same data.
Linux carries a process's peak RSS across fork and exec, so the parent stays small (no numpy, no data):
the data sets are built and saved by a child too. "import s" is the method's imports (ecomlab's
include mlflow, optuna and matplotlib), "prep s" its input conversion, "mine s" the mining call.

Run: .venv/bin/python bench/rules.py [--quick] [--timeout 300] [--cap-gib 6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = ["load-only", "ecomlab", "pyfim", "mlxtend-fpgrowth-sparse", "mlxtend-apriori-dense", "efficient-apriori"]


# ---- data ----


def fimi():
    from features.baskets import build_baskets
    from features.sources import load

    return build_baskets(load(REPO / "configs" / "data" / "fimi_retail.yaml").lines).matrix


def uci():
    from features.baskets import build_baskets
    from features.sources import load

    return build_baskets(load(REPO / "configs" / "data" / "uci_online_retail.yaml").lines).matrix


def synthetic(n_baskets: int = 500_000, n_items: int = 5_000, seed: int = 7):
    """Zipf-Mandelbrot item popularity p(r) ~ 1/(r + 5); basket sizes 1 + Poisson(7), repeats collapse."""
    import numpy as np

    from features.baskets import basket_matrix

    rng = np.random.default_rng(seed)
    weight = 1.0 / (np.arange(n_items) + 6.0)
    sizes = 1 + rng.poisson(7, n_baskets)
    items = rng.choice(n_items, size=int(sizes.sum()), p=weight / weight.sum())
    rows = np.repeat(np.arange(n_baskets), sizes)
    return basket_matrix(rows, items, (n_baskets, n_items))


# ---- one method, in a child process ----


def transactions(m, keep_empty: bool) -> list[list[int]]:
    flat, bounds = m.indices.tolist(), m.indptr.tolist()
    return [flat[a:b] for a, b in pairwise(bounds) if keep_empty or b > a]


def digest(found: dict[tuple[int, ...], int]) -> str:
    h = hashlib.sha256()
    for key in sorted(found):
        h.update(f"{key}:{found[key]};".encode())
    return h.hexdigest()[:12]


def run_method(method: str, npz: str, support: float) -> dict:
    import numpy as np
    import scipy.sparse as sp

    matrix = sp.load_npz(npz).tocsr()
    n = matrix.shape[0]
    min_count = max(1, math.ceil(support * n - 1e-9))
    fraction = (min_count - 0.5) / n
    imported = time.perf_counter()
    if method == "load-only":
        return {"import_s": 0.0, "prep_s": 0.0, "mine_s": 0.0, "n_itemsets": None, "digest": None}
    if method == "ecomlab":
        from features.baskets import Baskets
        from training.rules import mine_itemsets

        prep = time.perf_counter()
        baskets = Baskets(matrix, np.arange(matrix.shape[1]).astype(str).astype(object), np.arange(n))
        start = time.perf_counter()
        mined = mine_itemsets(baskets, support, None)
        mine_s = time.perf_counter() - start
        found = mined.as_dict()
        extra = {"engine": mined.engine}
    elif method == "pyfim":
        import fim

        prep = time.perf_counter()
        tracts = transactions(matrix, keep_empty=False)
        start = time.perf_counter()
        raw = fim.fpgrowth(tracts, target="s", supp=-min_count, zmin=1, report="a")
        mine_s = time.perf_counter() - start
        found = {tuple(sorted(s)): c for s, c in raw}
        extra = {}
    elif method in ("mlxtend-fpgrowth-sparse", "mlxtend-apriori-dense"):
        import pandas as pd
        from mlxtend.frequent_patterns import apriori, fpgrowth

        prep = time.perf_counter()
        columns = np.arange(matrix.shape[1])
        if method == "mlxtend-fpgrowth-sparse":
            frame = pd.DataFrame.sparse.from_spmatrix(matrix.tocsc(), columns=columns)
            start = time.perf_counter()
            out = fpgrowth(frame, min_support=fraction)
        else:
            frame = pd.DataFrame(matrix.toarray(), columns=columns)
            start = time.perf_counter()
            out = apriori(frame, min_support=fraction)
        mine_s = time.perf_counter() - start
        counts = np.rint(out["support"].to_numpy() * n).astype(np.int64)
        found = {tuple(sorted(int(i) for i in s)): int(c) for s, c in zip(out["itemsets"], counts)}
        extra = {}
    elif method == "efficient-apriori":
        from efficient_apriori.itemsets import itemsets_from_transactions

        prep = time.perf_counter()
        tracts = [tuple(t) for t in transactions(matrix, keep_empty=True)]
        start = time.perf_counter()
        by_size, _ = itemsets_from_transactions(tracts, fraction, max_length=1000)
        mine_s = time.perf_counter() - start
        found = {tuple(sorted(k)): v for size in by_size.values() for k, v in size.items()}
        extra = {}
    else:
        raise ValueError(f"unknown method {method!r}")
    timings = {"import_s": prep - imported, "prep_s": start - prep, "mine_s": mine_s}
    return {**timings, "n_itemsets": len(found), "digest": digest(found), **extra}


def build(key: str, n_synth: int, npz: str) -> None:
    """Child: build one data set, save its matrix, print its description."""
    import numpy as np
    import scipy.sparse as sp

    started = time.perf_counter()
    matrix = {"fimi": fimi, "uci": uci, "synthetic": lambda: synthetic(n_synth)}[key]()
    sp.save_npz(npz, matrix, compressed=False)
    sizes = np.diff(matrix.indptr)
    print(json.dumps({
        "n_baskets": matrix.shape[0], "n_items": matrix.shape[1], "nnz": int(matrix.nnz), "mean": float(sizes.mean()),
        "max": int(sizes.max()), "seconds": time.perf_counter() - started,
    }))


def latency(k: int = 5, repeats: int = 20) -> None:
    """Child: fit the recommender on the train part of UCI invoices, time the served model on the test baskets."""
    import pickle
    import statistics

    import numpy as np
    import pandas as pd

    from features.baskets import build_baskets
    from features.sources import load
    from training.rules import RecommenderFamily, RulesConfig

    family, cfg = RecommenderFamily(), RulesConfig()
    baskets = build_baskets(load(REPO / "configs" / "data" / "uci_online_retail.yaml").lines)
    split = family.split(baskets, cfg)
    out = {}
    for params in ({"min_support": 0.005, "min_confidence": 0.1, "min_lift": 1.0, "max_len": 3},
                   {"min_support": 0.003, "min_confidence": 0.05, "min_lift": 1.0, "max_len": 4}):
        started = time.perf_counter()
        fitted = family.fit(split.train, params, cfg)
        fit_s = time.perf_counter() - started
        model = family.servable(fitted, cfg)
        blob = pickle.dumps(model)
        started = time.perf_counter()
        model = pickle.loads(blob)
        load_s = time.perf_counter() - started
        lists = split.test.baskets  # held-out baskets without their hidden item
        row = {"rules": len(fitted.rules), "fit_s": fit_s, "pickle_mib": len(blob) / 2**20, "unpickle_ms": load_s * 1e3}
        for size in (1, 100, 1000):
            frame = pd.DataFrame({"items": lists[:size]})
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                model.predict(None, frame)
                times.append(time.perf_counter() - started)
            row[f"predict_{size}_ms"] = statistics.median(times) * 1e3
        row["mean_basket"] = float(np.mean([len(x) for x in lists[:100]]))
        started = time.perf_counter()
        row["hit_rate_at_k"] = family.score(model, split.test, cfg).objective
        row["score_s"] = time.perf_counter() - started
        out[json.dumps(params)] = row
    print(json.dumps(out))


def worker(argv: list[str]) -> None:
    method, npz, support = argv[0], argv[1], float(argv[2])
    try:
        result = run_method(method, npz, support)
    except MemoryError as exc:  # numpy says how much it asked for: "Unable to allocate 11.3 GiB for an array ..."
        asked = str(exc).split(" for ")[0].replace("Unable to allocate", "asked for").strip()
        result = {"error": "out of memory" + (f": {asked}" if asked.startswith("asked") else "")}
    print(json.dumps(result))


# ---- the parent: spawn, bound, measure ----


def spawn(method: str, npz: str, support: float, timeout: float, cap_gib: float) -> dict:
    cap = int(cap_gib * 2**30) if method == "mlxtend-apriori-dense" else None

    def limits() -> None:
        if cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(  # the bench runs no threads, so preexec_fn is safe here
            [sys.executable, __file__, "--worker", method, npz, str(support)],
            stdout=out_file, stderr=err_file, preexec_fn=limits, env=env,  # noqa: PLW1509
        )
        status, usage, timed_out = _wait(proc.pid, started + timeout)
        wall = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        stdout, stderr = out_file.read().decode(), err_file.read().decode()
    measured = {"wall_s": wall, "peak_mib": usage.ru_maxrss / 1024 if usage else float("nan")}
    cap_note = f" (cap {cap_gib:g} GiB)" if cap else ""
    return {**_outcome(status, timed_out, timeout, stdout, stderr, cap_note), **measured}


def _outcome(status: int, timed_out: bool, timeout: float, stdout: str, stderr: str, cap_note: str) -> dict:
    """The child's JSON result, or what went wrong (timeout, signal, out of memory, last error line)."""
    if timed_out:
        return {"error": f"timed out after {timeout:.0f} s (killed)"}
    if os.WIFSIGNALED(status):
        killed = os.WTERMSIG(status) == signal.SIGKILL
        return {"error": "killed by the kernel (out of memory?)" if killed else f"signal {os.WTERMSIG(status)}"}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        if any(s in stderr for s in ("MemoryError", "Unable to allocate", "std::bad_alloc")):
            return {"error": f"out of memory{cap_note}"}
        return {"error": (stderr.strip().splitlines() or ["no output"])[-1][:200]}
    result = json.loads(lines[-1])
    if result.get("error", "").startswith("out of memory"):
        result["error"] = result["error"].replace("out of memory", f"out of memory{cap_note}")
    return result


def _wait(pid: int, deadline: float):
    """(status, rusage, timed_out): wait4 so the rusage is this child's alone."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, False
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage, True
        time.sleep(0.05)


# ---- report ----


def describe(name: str, d: dict) -> str:
    return (f"{name}: {d['n_baskets']:,} baskets x {d['n_items']:,} items, {d['nnz']:,} item occurrences, "
            f"mean basket {d['mean']:.2f}, max {d['max']}, density {d['nnz'] / (d['n_baskets'] * d['n_items']):.2e} "
            f"(built in {d['seconds']:.1f} s)")


def print_table(rows: list[dict], pyfim_s: float | None) -> None:
    print(f"  {'method':<26}{'mine s':>9}{'prep s':>9}{'import s':>9}{'wall s':>9}{'peak MiB':>10}{'itemsets':>10}"
          f"  {'x pyfim':>8}  digest / note")
    for r in rows:
        mined = pyfim_s and r.get("n_itemsets") is not None
        ratio = f"{r['mine_s'] / pyfim_s:.2f}" if mined else ""
        if "error" in r or "skipped" in r:
            note = r.get("error") or r.get("skipped")
            peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r and not math.isnan(r["peak_mib"]) else "-"
            wall = f"{r['wall_s']:.1f}" if "wall_s" in r else "-"
            print(f"  {r['method']:<26}{'-':>9}{'-':>9}{'-':>9}{wall:>9}{peak:>10}{'-':>10}  {'':>8}  {note}")
            continue
        items = "-" if r["n_itemsets"] is None else f"{r['n_itemsets']:,}"
        note = r["digest"] or ""
        if r.get("engine"):
            note += f" (engine {r['engine']})"
        print(f"  {r['method']:<26}{r['mine_s']:>9.3f}{r['prep_s']:>9.2f}{r['import_s']:>9.2f}{r['wall_s']:>9.1f}"
              f"{r['peak_mib']:>10.0f}{items:>10}  {ratio:>8}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per method and run")
    parser.add_argument("--cap-gib", type=float, default=6.0, help="address-space cap for the dense apriori child")
    parser.add_argument("--quick", action="store_true", help="one support level per data set, 100k synthetic baskets")
    parser.add_argument("--only", choices=["fimi", "uci", "synthetic", "serving"], action="append", help="parts to run")
    args = parser.parse_args()
    n_synth = 100_000 if args.quick else 500_000
    plans = {
        "fimi": ("FIMI retail.dat", [0.002, 0.001]),
        "uci": ("UCI Online Retail invoices", [0.01, 0.005]),
        "synthetic": (f"synthetic {n_synth:,} x 5,000", [0.002, 0.001]),
    }
    print(f"rule-mining bench: timeout {args.timeout:.0f} s per method, dense apriori capped at {args.cap_gib:g} GiB "
          f"of address space, python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for key, (name, supports) in plans.items():
            if args.only and key not in args.only:
                continue
            npz = str(Path(tmp) / f"{key}.npz")
            built = subprocess.run([sys.executable, __file__, "--build", key, str(n_synth), npz],
                                   capture_output=True, text=True, check=True)
            data = json.loads(built.stdout.strip().splitlines()[-1])
            print(f"\n{describe(name, data)}")
            failed: dict[str, str] = {}
            for support in supports[:1] if args.quick else supports:
                min_count = max(1, math.ceil(support * data["n_baskets"] - 1e-9))
                print(f"\n support {support:g} (>= {min_count:,} baskets)")
                rows = []
                for method in METHODS:
                    if method in failed:
                        rows.append({"method": method, "skipped": f"skipped: {failed[method]} at a higher support"})
                        continue
                    result = {"method": method, **spawn(method, npz, support, args.timeout, args.cap_gib)}
                    if "error" in result:
                        failed[method] = result["error"]
                    rows.append(result)
                pyfim_s = next((r["mine_s"] for r in rows if r["method"] == "pyfim" and "mine_s" in r), None)
                print_table(rows, pyfim_s)
                digests = {r["digest"] for r in rows if r.get("digest")}
                finished = [r["method"] for r in rows if r.get("digest")]
                verdict = "all agree" if len(digests) == 1 else f"DISAGREE ({len(digests)} different results)"
                print(f"  itemsets and counts: {verdict} among {', '.join(finished)}")
    if not args.only or "serving" in args.only:
        print_latency()


def print_latency() -> None:
    """The served recommender on UCI invoices (the family's train split; test baskets as requests)."""
    done = subprocess.run([sys.executable, __file__, "--latency"], capture_output=True, text=True, check=True)
    print("\nserved recommender (RulesModel.predict, UCI invoices, k=5, median of 20 calls):")
    for params, row in json.loads(done.stdout.strip().splitlines()[-1]).items():
        print(f"  {params}")
        print(f"    {row['rules']:,} rules, fit {row['fit_s']:.1f} s, model pickle {row['pickle_mib']:.1f} MiB, "
              f"unpickle {row['unpickle_ms']:.0f} ms, hit rate@5 {row['hit_rate_at_k']:.3f} "
              f"(score {row['score_s']:.1f} s)")
        print(f"    predict: 1 basket {row['predict_1_ms']:.1f} ms, 100 baskets {row['predict_100_ms']:.1f} ms, "
              f"1000 baskets {row['predict_1000_ms']:.0f} ms (mean basket {row['mean_basket']:.1f} items)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--latency":
        latency()
    elif len(sys.argv) > 1 and sys.argv[1] == "--build":
        build(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
