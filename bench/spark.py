"""Data bigger than memory: the KPIs on Spark `local[2]` with a 2 GB driver, against the pandas engine.

(a) A synthetic Parquet data set several times larger than a 2 GB cap (the largest scale, 20M lines by
default): Spark computes every KPI with `driver_memory: 2g`; the pandas engine (`ecomlab kpis`, in a
process whose address space is capped at the same 2 GB with `RLIMIT_AS`) stops with its one-line
"too large for the local engine; use engine: spark" and exit code 2, before reading, not by an OOM kill.
(b) Costs side by side at 1x, 4x and 16x a base size: wall time and peak memory of each engine, where they
cross (from a straight-line fit of time and memory against lines), and Spark's start-up cost on its own.

The data: the project's synthetic shop (`features.synthetic.generate`, one chunk of at most ~1.25M lines),
written again and again with the order and customer ids of every copy suffixed (`-1`, `-2`, ...), so each
copy is new orders of new customers over the same calendar: a shop k times larger, written one Parquet file
per copy (generation needs the memory of one chunk). A smaller scale's folder hard-links the first files of
the largest. Customers and inventory side tables are written too, so every KPI is computed.

Each run is a fresh process (`--worker spark|pandas`) that prints its phase times as JSON. Peak memory is
the peak of the summed RSS of the process tree (the Python process, Spark's JVM and its Python workers),
sampled every 0.1 s with psutil. Spark and pandas compute the same `kpi_report` options.

    .venv/bin/python bench/spark.py                                    # 1.25M x 1, 4, 16 (20M lines)
    .venv/bin/python bench/spark.py --base-lines 200000 --scales 1,4   # a quick check
    options: --cap 2g (Spark's driver_memory, the pandas cap), --out DIR (default: a temp dir, deleted after
    unless --keep), --skip-generate (reuse the data in --out), --seed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LINES_PER_CUSTOMER = 62  # the default synthetic shop: ~62 lines per customer
MAX_CHUNK = 1_250_000  # lines per generated chunk (and file): generation holds one chunk in memory
CONTRACT = ["order_id", "order_date", "customer_id", "product_id", "product_name", "category", "quantity",
            "unit_price", "discount", "channel", "returned"]
GiB = 2**30


# ---------------------------------------------------------------- data

def generate(out: Path, base_lines: int, scales: list[int], seed: int) -> dict[int, Path]:
    """One folder per scale under `out` (`scale-<k>x`), each with lines-*.parquet, side tables and data.yaml."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features import synthetic

    chunk_target = min(base_lines, MAX_CHUNK)
    t0 = time.perf_counter()
    shop = synthetic.generate(n_customers=max(10, chunk_target // LINES_PER_CUSTOMER), seed=seed)
    lines = _plain_strings(pa.Table.from_pandas(shop.lines[CONTRACT], preserve_index=False))
    customers = _plain_strings(pa.Table.from_pandas(shop.customers.drop(columns=["true_segment"]), preserve_index=False))
    inventory, chunk = shop.inventory, len(shop.lines)
    del shop
    files = {s: max(1, math.ceil(base_lines * s / chunk - 1e-9)) for s in scales}  # at least base_lines x s lines
    largest = out / f"scale-{max(scales)}x"
    largest.mkdir(parents=True, exist_ok=True)
    for k in range(files[max(scales)]):
        suffix = pa.scalar(f"-{k}")
        copy = lines.set_column(0, "order_id", pc.binary_join_element_wise(lines["order_id"], suffix, ""))
        copy = copy.set_column(2, "customer_id", pc.binary_join_element_wise(lines["customer_id"], suffix, ""))
        pq.write_table(copy, largest / f"lines-{k:05d}.parquet", coerce_timestamps="us", row_group_size=256_000)
    print(f"generated {chunk:,} lines x {files[max(scales)]} copies in {time.perf_counter() - t0:.1f} s "
          f"({_size(largest) / GiB:.2f} GiB of Parquet)", flush=True)
    folders = {}
    for s in scales:
        folder = out / f"scale-{s}x"
        folder.mkdir(exist_ok=True)
        for k in range(files[s]):
            target = folder / f"lines-{k:05d}.parquet"
            if folder != largest and not target.exists():
                os.link(largest / target.name, target)
        ids = [pc.binary_join_element_wise(customers["customer_id"], pa.scalar(f"-{k}"), "") for k in range(files[s])]
        side = pa.concat_tables([customers.set_column(0, "customer_id", i) for i in ids])
        pq.write_table(side, folder / "customers.parquet", coerce_timestamps="us")
        inventory.to_parquet(folder / "inventory.parquet", index=False)
        (folder / "data.yaml").write_text(_config(s))
        folders[s] = folder
    return folders


def _plain_strings(table):
    """pandas 3 strings arrive as large_string; Parquet and the id suffixing want plain string."""
    import pyarrow as pa

    schema = pa.schema([f.with_type(pa.string()) if f.type == pa.large_string() else f for f in table.schema])
    return table.cast(schema)


def _config(scale: int) -> str:
    columns = "\n".join(f"  {c}: {c}" for c in CONTRACT)
    return (f"name: bench-spark-{scale}x\ndescription: bench/spark.py synthetic shop, {scale}x the base size\n"
            f"format: parquet\npath: lines-*.parquet\ncolumns:\n{columns}\n"
            "customers: {path: customers.parquet}\ninventory: {path: inventory.parquet}\n")


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("lines-*.parquet"))


def _lines(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in sorted(folder.glob("lines-*.parquet")))


# ---------------------------------------------------------------- workers (fresh processes)

OPTIONS = {"churn_window_days": 90, "revenue_period": "month"}


def worker(engine: str, config: Path, cap: str) -> None:
    """Child process: compute every KPI of `config` on one engine; print one JSON line (phase times, headline)."""
    t0 = time.perf_counter()
    from features.kpis import headline
    from features.readers.files import SourceError
    from features.spark.session import SparkUnavailable

    phases: dict[str, float] = {}
    try:
        if engine == "spark":
            report, lines = _spark(config, cap, phases, t0)
        else:
            report, lines = _pandas(config, phases, t0)
    except SourceError as exc:
        print(json.dumps({"refused": str(exc), "phases": phases}))
        raise SystemExit(2) from None
    except SparkUnavailable as exc:
        print(json.dumps({"error": str(exc)}))
        raise SystemExit(2) from None
    print(json.dumps({"phases": phases, "lines": lines, "headline": headline(report)}, default=float))


def _spark(config: Path, cap: str, phases: dict[str, float], t0: float) -> tuple[dict, int]:
    from features.source_config import load_source_config
    from features.spark.kpis import kpi_report_spark
    from features.spark.read import load_spark
    from features.spark.session import spark_session
    from features.spark.settings import SparkSettings

    cfg = load_source_config(config)
    phases["imports"] = time.perf_counter() - t0
    t = time.perf_counter()
    session = spark_session(SparkSettings(master="local[2]", driver_memory=cap, shuffle_partitions=8))
    phases["session start"] = time.perf_counter() - t
    t = time.perf_counter()
    loaded = load_spark(session, cfg)
    phases["load + validate"] = time.perf_counter() - t
    t = time.perf_counter()
    report = kpi_report_spark(loaded.lines, customers=loaded.customers, inventory=loaded.inventory, options=OPTIONS)
    phases["KPIs"] = time.perf_counter() - t
    return report, loaded.accounting.rows_clean


def _pandas(config: Path, phases: dict[str, float], t0: float) -> tuple[dict, int]:
    from features.kpis import kpi_report
    from features.sources import load

    phases["imports"] = time.perf_counter() - t0
    t = time.perf_counter()
    loaded = load(config)
    phases["load + validate"] = time.perf_counter() - t
    t = time.perf_counter()
    report = kpi_report(loaded.lines, customers=loaded.customers, inventory=loaded.inventory, options=OPTIONS)
    phases["KPIs"] = time.perf_counter() - t
    return report, loaded.accounting.rows_clean


# ---------------------------------------------------------------- running and measuring

def run(cmd: list[str], address_space: int | None = None) -> dict:
    """Run `cmd`, sampling the summed RSS of its process tree every 0.1 s; wall time, peak, exit code, output."""
    import psutil

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OPENBLAS_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=limit if address_space else None)
    peak = {"tree": 0, "jvm": 0}

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = jvm = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        rss = p.memory_info().rss
                        total += rss
                        jvm += rss if p.name() == "java" else 0
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            peak["tree"], peak["jvm"] = max(peak["tree"], total), max(peak["jvm"], jvm)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    return {"rc": proc.returncode, "wall": wall, "peak": peak["tree"], "jvm": peak["jvm"],
            "result": json.loads(lines[-1]) if lines else None, "stdout": out, "stderr": err}


def engine_run(engine: str, config: Path, cap: str) -> dict:
    res = run([sys.executable, __file__, "--worker", engine, "--config", str(config), "--cap", cap])
    if res["result"] and "error" in res["result"]:
        raise SystemExit(res["result"]["error"])
    if res["rc"] not in (0, 2) or res["result"] is None:
        raise SystemExit(f"{engine} worker on {config} failed (exit {res['rc']}):\n{cause(res['stderr'])}")
    return res


def cause(stderr: str, keep: int = 15) -> str:
    """The first error lines of a failed worker's stderr (a JVM shutdown hook's stack trace comes last), else its tail."""
    lines = stderr.strip().splitlines()
    first = next((i for i, ln in enumerate(lines) if any(w in ln for w in ("Error", "Exception", "Traceback"))), None)
    return "\n".join(lines[first:first + keep] if first is not None else lines[-keep:])


def cli_under_cap(config: Path, cap_bytes: int) -> dict:
    """`ecomlab kpis CONFIG` (pandas engine) in a process whose address space is capped with RLIMIT_AS."""
    return run([sys.executable, "-m", "training.cli", "kpis", str(config), "--engine", "pandas"], address_space=cap_bytes)


# ---------------------------------------------------------------- tables

def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares line y = a + b x through (x, y); None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def crossing(spark: list[tuple[float, float]], pandas: list[tuple[float, float]], what: str, unit: str) -> str:
    """Where Spark's line (start-up + per-line cost) meets pandas' line, from the fits; the measured side too."""
    fs, fp = fit(spark), fit(pandas)
    measured = [x for (x, ys), (_, yp) in zip(spark, pandas) if ys < yp]
    seen = f"Spark lower from {measured[0]:,.0f} lines measured" if measured else "Spark never lower where both ran"
    if fs is None or fp is None:
        return f"{what}: {seen} (too few scales for a fit)"
    (a_s, b_s), (a_p, b_p) = fs, fp
    line = f"{what}: Spark {a_s:,.1f} {unit} + {b_s * 1e6:,.2f} {unit}/M lines; pandas {a_p:,.1f} + {b_p * 1e6:,.2f}/M lines"
    if b_p <= b_s:
        return f"{line} -> no crossing (Spark's per-line cost is not lower); {seen}"
    cross = (a_s - a_p) / (b_p - b_s)
    return f"{line} -> cross at ~{max(cross, 0):,.0f} lines; {seen}"


COSTS_HEADER = (f"{'scale':>6} {'lines':>12} | {'spark s':>8} {'start s':>7} {'load s':>7} {'KPIs s':>7} {'peak MiB':>9} {'JVM MiB':>8}"
                f" | {'pandas s':>8} {'load s':>7} {'KPIs s':>7} {'peak MiB':>9} {'est. MiB':>9} | headline")


def cost_row(r: dict) -> str:
    """One scale's line of table (b): Spark's time, phases and peaks, then pandas' (or its refusal)."""
    s, p = r["spark"], r["pandas"]
    sp = s["result"]["phases"]
    left = (f"{r['scale']:>5}x {r['lines']:>12,} | {s['wall']:8.1f} {sp['session start']:7.1f} {sp['load + validate']:7.1f} "
            f"{sp['KPIs']:7.1f} {_mib(s['peak']):>9} {_mib(s['jvm']):>8}")
    if "refused" in p["result"]:
        return left + f" | {'refused: too large for the local engine':>44} {_mib(r['estimate']):>9} | -"
    pp = p["result"]["phases"]
    return left + (f" | {p['wall']:8.1f} {pp['load + validate']:7.1f} {pp['KPIs']:7.1f} {_mib(p['peak']):>9} "
                   f"{_mib(r['estimate']):>9} | {r['agree']}")


def print_costs(rows: list[dict], cap: str) -> None:
    print(f"\n(b) costs side by side: Spark local[2] (driver_memory {cap}) vs pandas; peak = summed RSS of the process tree")
    print(COSTS_HEADER)
    for r in rows:
        print(cost_row(r))
    print("est. = the capacity check's estimate of pandas' rise over the interpreter (about 170 MiB after imports)")
    both = [r for r in rows if "refused" not in r["pandas"]["result"]]
    print(crossing([(r["lines"], r["spark"]["wall"]) for r in both], [(r["lines"], r["pandas"]["wall"]) for r in both], "time", "s"))
    print(crossing([(r["lines"], r["spark"]["peak"] / 2**20) for r in both],
                   [(r["lines"], r["pandas"]["peak"] / 2**20) for r in both], "peak memory", "MiB"))
    starts = [r["spark"]["result"]["phases"]["session start"] + r["spark"]["result"]["phases"]["imports"] for r in rows]
    print(f"Spark start-up (imports + JVM and session): {min(starts):.1f}-{max(starts):.1f} s per run, "
          f"inside the wall times above; a run's wall time also includes its interpreter start")


def agree(spark: dict, pandas: dict) -> str:
    """Do the two engines' headline figures match (1e-9 relative)?"""
    hs, hp = spark["result"]["headline"], pandas["result"]["headline"]
    bad = [k for k in hp if not _close(hs.get(k), hp[k])]
    return "equal" if not bad else f"DIFFER: {', '.join(bad)}"


def _close(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-lines", type=int, default=1_250_000, help="lines at scale 1 (default: 16x = 20M lines)")
    parser.add_argument("--scales", default="1,4,16", help="comma-separated multiples of --base-lines")
    parser.add_argument("--cap", default="2g", help="Spark's driver_memory and the pandas process's RLIMIT_AS")
    parser.add_argument("--out", type=Path, help="folder for the data (default: a temp dir); never inside the repo")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--skip-generate", action="store_true", help="reuse the data already in --out")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", choices=["spark", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.config, args.cap)
        return
    from features.readers.capacity import parse_size

    scales = sorted({int(s) for s in args.scales.split(",")})
    cap_bytes = parse_size(args.cap)
    if args.skip_generate and args.out is None:
        parser.error("--skip-generate needs --out (the folder holding the data)")
    out = (args.out or Path(tempfile.mkdtemp(prefix="ecomlab-bench-spark-"))).resolve()
    repo = Path(__file__).resolve().parents[1]
    if out == repo or repo in out.parents:
        parser.error(f"--out {args.out} is inside the repository; give a folder outside it")
    print(f"data in {out}; {os.cpu_count()} CPUs; OPENBLAS_NUM_THREADS=1 in the workers; cap {args.cap}", flush=True)
    try:
        folders = ({s: out / f"scale-{s}x" for s in scales} if args.skip_generate
                   else generate(out, args.base_lines, scales, args.seed))
        bench(folders, args.cap, cap_bytes)
    finally:
        if not (args.keep or args.skip_generate):
            shutil.rmtree(out, ignore_errors=True)
            print(f"deleted {out} (--keep keeps it)")


def bench(folders: dict[int, Path], cap: str, cap_bytes: int) -> None:
    from features.readers.capacity import estimate_bytes, estimate_lines

    rows = []
    for scale, folder in sorted(folders.items()):
        config = folder / "data.yaml"
        per_file = [estimate_lines("parquet", f) for f in sorted(folder.glob("lines-*.parquet"))]
        print(f"{scale}x: {sum(per_file):,} lines in {len(per_file)} files, {_size(folder) / GiB:.2f} GiB Parquet; running Spark, then pandas ...", flush=True)
        spark = engine_run("spark", config, cap)
        pandas = engine_run("pandas", config, cap)
        ok = "refused" in pandas["result"] or agree(spark, pandas)
        rows.append({"scale": scale, "lines": spark["result"]["lines"], "spark": spark, "pandas": pandas,
                     "estimate": estimate_bytes(per_file), "agree": ok})
        print(f"{COSTS_HEADER}\n{cost_row(rows[-1])}", flush=True)  # each scale's figures as soon as it is done
    largest = max(folders)
    print(f"\n(a) {largest}x ({rows[-1]['lines']:,} lines; the pandas engine's estimated need "
          f"{rows[-1]['estimate'] / GiB:.1f} GiB, {rows[-1]['estimate'] / cap_bytes:.1f}x the {cap} cap)")
    s = rows[-1]["spark"]
    print(f"  Spark local[2], driver_memory {cap}: finished in {s['wall']:.1f} s, exit {s['rc']}, "
          f"peak RSS {_mib(s['peak'])} MiB (JVM {_mib(s['jvm'])} MiB)")
    capped = cli_under_cap(folders[largest] / "data.yaml", cap_bytes)
    message = (capped["stderr"].strip().splitlines() or ["(no message)"])[-1]
    how = f"killed by signal {-capped['rc']}" if capped["rc"] < 0 else f"exit {capped['rc']}"
    print(f"  pandas (`ecomlab kpis`, RLIMIT_AS {cap}): {how} after {capped['wall']:.1f} s, "
          f"peak RSS {_mib(capped['peak'])} MiB\n  message: {message}")
    print_costs(rows, cap)


if __name__ == "__main__":
    main()
