"""Benchmark: `ecomlab score` of a registered segmenter over 1M and 10M customers, rows/s and peak RSS.

Issue 12 part 3 asks for rows per second on 10M customers and peak RSS at 1M and at 10M rows (target:
flat, since the scorer streams in chunks). A K-means segmenter shaped like the trained ones (signed
log1p -> StandardScaler -> KMeans on the seven customer features) is fitted on seeded customers and
registered in a temporary SQLite store; the inputs are seeded Parquet files written batch by batch.
Each size is scored by the console command in a fresh process; its peak RSS is its VmHWM, read from
/proc every 20 ms until it exits (see `high_water_kib` for why not ru_maxrss). The command prints the seconds it took after its imports (model
load + scoring); a 10k-row run measures the model load, so the scoring rate is
(rows - 10k) / (seconds - the 10k run's seconds). Children run with OPENBLAS_NUM_THREADS=1.

    uv run python bench/score.py [--rows 1000000 10000000] [--chunk-size 100000] [--out-format parquet]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
warnings.filterwarnings("ignore")

FEATURES = ["recency", "frequency", "monetary", "quantity", "tenure", "aov", "return_rate"]
BATCH = 1_000_000
STARTUP_ROWS = 10_000


def customers(n: int, seed: int, start: int = 0):
    """Seeded customer feature rows with the ranges of the synthetic shop's (ids c<start>..)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frequency = rng.integers(1, 40, n).astype(float)
    aov = rng.gamma(2.0, 35.0, n)
    return pd.DataFrame({
        "customer_id": pd.array(np.char.add("c", np.arange(start, start + n).astype(str)), dtype="string"),
        "recency": rng.integers(1, 730, n).astype(float), "frequency": frequency, "monetary": frequency * aov,
        "quantity": frequency * rng.integers(1, 6, n), "tenure": rng.integers(30, 1100, n).astype(float),
        "aov": aov, "return_rate": rng.beta(0.5, 8.0, n),
    })


def register_segmenter(folder: Path) -> str:
    """A fitted K-means pipeline logged and registered as `bench-segmenter`; the store's URI."""
    import mlflow
    from sklearn.cluster import KMeans
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from features.customers import signed_log1p
    from serving.models.segmenter import SegmentModel
    from training import tracking

    train = customers(20_000, seed=0)
    pipeline = Pipeline([
        ("transform", FunctionTransformer(signed_log1p)), ("scale", StandardScaler()),
        ("kmeans", KMeans(5, n_init=3, random_state=0)),
    ]).fit(train[FEATURES].to_numpy())
    model = SegmentModel(pipeline, FEATURES, list(range(5)), {i: f"segment {i}" for i in range(5)})
    uri = tracking.setup(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=tracking.ensure_experiment("bench-score"))
    example = train.head(3)
    with mlflow.start_run():
        logged = tracking.log_model(model, example, model.predict(None, example))
    mlflow.register_model(logged.uri, "bench-segmenter")
    return uri


def write_input(path: Path, rows: int) -> float:
    """Seeded customers written to Parquet one batch at a time (bounded memory here too); seconds taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = time.perf_counter()
    writer = None
    for i, start in enumerate(range(0, rows, BATCH)):
        table = pa.Table.from_pandas(customers(min(BATCH, rows - start), seed=100 + i, start=start), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return time.perf_counter() - t


def score(uri: str, source: Path, out: Path, chunk_size: int) -> tuple[float, float, float]:
    """`ecomlab score` in a fresh process: (wall seconds, the seconds it reports (model load and scoring,
    without the interpreter's imports), that process's peak RSS in MB)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "training.cli", "score", "models:/bench-segmenter/1", str(source), "--out", str(out),
               "--chunk-size", str(chunk_size)]
    t = time.perf_counter()
    with tempfile.TemporaryFile() as said_file, tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(command, env=env, cwd=source.parent, stdout=said_file, stderr=err_file)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, high_water_kib(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - t
        said_file.seek(0)
        err_file.seek(0)
        said, err = said_file.read().decode(), err_file.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"ecomlab score failed ({proc.returncode}): {err[-2000:]}")
    reported = re.search(r" in ([0-9.]+) s\s*$", said)
    if reported is None:
        raise SystemExit(f"ecomlab score printed no time: {said!r}")
    return wall, float(reported.group(1)), peak / 1024


def high_water_kib(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, KiB), 0 once it is gone.

    Not `getrusage(RUSAGE_CHILDREN)` nor `os.wait4`: Linux keeps ru_maxrss across fork and exec, so a
    child started by this (large) process would report this process's RSS. VmHWM belongs to the memory
    of the program the child runs, and only grows, so the last reading before exit is its peak."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--out-format", choices=["parquet", "csv"], default="parquet")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        uri = register_segmenter(folder)
        print(f"segmenter registered in {time.perf_counter() - t:.1f} s; chunk size {args.chunk_size:,}; "
              f"OPENBLAS_NUM_THREADS=1 in the scorer; {os.cpu_count()} cores; "
              f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
        small = folder / "in-startup.parquet"
        write_input(small, STARTUP_ROWS)
        startup, startup_said, startup_rss = score(uri, small, folder / f"out-startup.{args.out_format}", args.chunk_size)
        print(f"start-up ({STARTUP_ROWS:,} rows): {startup:.1f} s wall, {startup_said:.1f} s of it loading the model "
              f"and scoring (the rest: imports), peak RSS {startup_rss:,.0f} MB")
        print(f"{'rows':>12} {'input MB':>9} {'wall s':>8} {'rows/s (end to end)':>20} {'rows/s (scoring)':>17} {'peak RSS MB':>12}")
        for rows in args.rows:
            source = folder / f"in-{rows}.parquet"
            gen = write_input(source, rows)
            out = folder / f"out-{rows}.{args.out_format}"
            wall, said, rss = score(uri, source, out, args.chunk_size)
            steady = f"{(rows - STARTUP_ROWS) / (said - startup_said):,.0f}" if said > startup_said else "n/a"
            print(f"{rows:>12,} {source.stat().st_size / 1e6:>9,.0f} {wall:>8.1f} {rows / wall:>20,.0f} {steady:>17} {rss:>12,.0f}"
                  f"   (input written in {gen:.0f} s; output {out.stat().st_size / 1e6:,.0f} MB)")
            source.unlink()
            out.unlink()


if __name__ == "__main__":
    main()
