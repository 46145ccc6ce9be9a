"""Benchmark: the BentoML service against `mlflow models serve` on the same registered segmenter.

Starts both servers on loopback against an MLflow store made by `ecomlab quickstart`, then drives
/segment on both (one customer row per request), /forecast, /recommend and /clv on BentoML, and a variant
with BentoML adaptive batching on /segment, at each concurrency level. Each level is bounded by a
request count AND a time limit; every server is stopped at the end. Prints per target and level:
requests, errors, throughput, p50/p95/p99 latency, and the client's own CPU share (client and
server share the machine's cores, so a heavy client would understate the server).

    uv run python bench/serve.py --store DIR [--requests 2000] [--duration 20] [--levels 1,10,100]

DIR holds mlflow.db (and mlartifacts/) from `ecomlab quickstart` run in DIR.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.service_harness import free_port, wait_until_up  # noqa: E402  (the tests start servers the same way)

QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}
os.environ.update(QUIET)

CUSTOMER = {"customer_id": "c1", "recency": 12.0, "frequency": 9.0, "monetary": 850.0, "quantity": 40.0,
            "tenure": 400.0, "aov": 94.4, "return_rate": 0.02}
CLV_CUSTOMER = {"customer_id": "c1", "frequency": 4.0, "recency": 30.0, "T": 40.0, "monetary": 25.0}
BATCHED_SERVICE = "BatchedSegmentService"


# ---- servers ----


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """Stop the server and every process it spawned (its own process group)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def launch(name: str, argv: list[str], env: dict[str, str], work: Path, ready_path: str, port: int) -> Server:
    log = work / f"{name}.log"
    process = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **QUIET, **env}, stdout=log.open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    wait_until_up(name, process, server.url + ready_path, 180, log, server.stop)
    return server


def serve_config(work: Path, workers: int) -> Path:
    """Service settings for the bench: the quickstart champions, hot reload off."""
    models = [{"family": f, "name": f"ecomlab-{f}", "alias": "champion"} for f in ("segmenter", "forecaster", "recommender", "clv")]
    cfg = {"host": "127.0.0.1", "port": 3000, "models": models, "reload_interval_s": 0, "workers": workers}
    path = work / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_bentoml(work: Path, uri: str, config: Path, target: str, name: str, extra_env: dict[str, str]) -> Server:
    port = free_port()
    env = {"MLFLOW_TRACKING_URI": uri, "ECOMLAB_SERVE_CONFIG": str(config), "BENTOML_HOME": str(work / "bentoml"),
           **extra_env}
    argv = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    return launch(name, argv, env, work, "/readyz", port)


def start_mlflow(work: Path, uri: str, workers: int) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/ecomlab-segmenter@champion",
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # it execs `uvicorn`
    return launch("mlflow", argv, {"MLFLOW_TRACKING_URI": uri, "PATH": path}, work, "/ping", port)


# ---- the adaptive-batching variant (imported by `bentoml serve bench.serve:BatchedSegmentService`) ----


def _batched_service() -> Any:
    """/segment as a batchable API: concurrent requests' rows are merged into one model call."""
    import bentoml

    from serving.schemas import SegmentRequest, SegmentResult
    from serving.settings import load_settings
    from serving.store import ModelStore

    settings = load_settings()
    max_batch = int(os.environ.get("ECOMLAB_BENCH_MAX_BATCH", "100"))
    max_latency = int(os.environ.get("ECOMLAB_BENCH_MAX_LATENCY_MS", "20"))

    @bentoml.service(name="ecomlab-batched", workers=settings.workers, traffic={"timeout": 60})
    class BatchedSegmentService:
        def __init__(self) -> None:
            self.store = ModelStore(settings)
            self.store.refresh()

        @bentoml.api(route="/segment", input_spec=SegmentRequest, batchable=True,
                     max_batch_size=max_batch, max_latency_ms=max_latency)
        def segment(self, customers: list) -> list:
            model = self.store.get("segmenter").model
            x = np.array([[getattr(c, f) for f in model.features] for c in customers], dtype=np.float64)
            ids = model.assign(x).tolist()  # the same array path as the service's /segment
            return [SegmentResult(customer_id=c.customer_id, segment_id=i, segment_name=model.names[i]).model_dump()
                    for c, i in zip(customers, ids, strict=True)]

    return BatchedSegmentService


_SERVICES: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """Build the variant service only when BentoML asks for it, so running this script stays light."""
    if name != BATCHED_SERVICE:
        raise AttributeError(name)
    if name not in _SERVICES:
        _SERVICES[name] = _batched_service()
    return _SERVICES[name]


# ---- load generation ----


@dataclass
class Target:
    name: str
    url: str
    body: dict


@dataclass
class Level:
    target: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    stopped_by: str = "count"

    @property
    def sent(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


async def drive(target: Target, clients: int, requests: int, duration: float, timeout: float) -> Level:
    """`clients` concurrent keep-alive connections, each posting until the count or the time is used up.

    aiohttp (a BentoML dependency) with the body serialised once: the client shares the cores with the
    server, and httpx spent 2-3x the CPU per request here (up to 80% of a core at 100 clients).
    """
    import aiohttp

    level = Level(target.name, clients)
    issued = 0
    body = json.dumps(target.body).encode()
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        start = time.perf_counter()
        deadline = start + duration

        async def client() -> None:
            nonlocal issued
            while issued < requests:
                if time.perf_counter() >= deadline:
                    level.stopped_by = "time"
                    return
                issued += 1
                t = time.perf_counter()
                try:
                    async with http.post(target.url, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    level.errors[type(exc).__name__] += 1
                    continue
                if status == 200:
                    level.latencies.append(time.perf_counter() - t)
                else:
                    level.errors[f"HTTP {status}"] += 1

        cpu = time.process_time()
        tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
        done, pending = await asyncio.wait(tasks, timeout=duration + timeout + 5)
        for task in pending:
            task.cancel()
            level.errors["unfinished at the time limit"] += 1
        level.wall_s = time.perf_counter() - start
        level.client_cpu_s = time.process_time() - cpu
    return level


def warm_up(target: Target, n: int = 20) -> None:
    with httpx.Client(timeout=30) as http:
        for _ in range(n):
            resp = http.post(target.url, json=target.body)
            if resp.status_code != 200:
                raise RuntimeError(f"{target.name}: warm-up request failed with {resp.status_code}: {resp.text[:500]}")


# ---- payloads ----


def payloads(uri: str) -> tuple[dict, dict]:
    """A known series and a basket holding a rule's antecedent, read from the registered champions."""
    import mlflow

    from serving.models.registry import unwrap

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    forecaster = unwrap(mlflow.pyfunc.load_model("models:/ecomlab-forecaster@champion"), "forecaster")
    rec = unwrap(mlflow.pyfunc.load_model("models:/ecomlab-recommender@champion"), "recommender").recommender
    first = rec.antecedents[0].indices[0] if rec.antecedents.shape[0] else 0
    forecast = {"queries": [{"series_id": str(forecaster.series_ids[0]), "horizon": 8, "levels": [80, 95]}]}
    recommend = {"baskets": [{"items": [str(rec.items[first])]}], "k": 5}
    return forecast, recommend


# ---- report ----


def row(level: Level) -> str:
    errors = sum(level.errors.values())
    cpu = 100 * level.client_cpu_s / level.wall_s if level.wall_s else 0.0
    return (f"{level.target:<22} {level.clients:>7} {level.sent:>8} {errors:>6} {level.throughput:>9.1f} "
            f"{level.pct(50):>9.1f} {level.pct(95):>9.1f} {level.pct(99):>9.1f} {cpu:>9.0f}%  {level.stopped_by}")


HEADER = (f"{'target':<22} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9} "
          f"{'p99 ms':>9} {'client CPU':>10}  stopped by")


def summary(results: dict[tuple[str, int], Level], levels: list[int]) -> None:
    print("\nBentoML / MLflow throughput on /segment")
    for n in levels:
        b, m = results.get(("bentoml /segment", n)), results.get(("mlflow /invocations", n))
        if b and m and m.throughput:
            print(f"  {n:>3} clients: {b.throughput:.1f} / {m.throughput:.1f} = {b.throughput / m.throughput:.2f}x")
    batched = [n for n in levels if ("bentoml batched /segment", n) in results]
    if batched:
        print("\nAdaptive batching on /segment (batched / plain BentoML throughput, p99)")
        for n in batched:
            b, p = results[("bentoml batched /segment", n)], results[("bentoml /segment", n)]
            ratio = b.throughput / p.throughput if p.throughput else float("nan")
            print(f"  {n:>3} clients: {ratio:.2f}x throughput, p99 {b.pct(99):.1f} ms vs {p.pct(99):.1f} ms")
    print("\nTargets (bentoml /segment)")
    for n, p99_limit in ((10, 50.0), (100, 1000.0)):
        b, m = results.get(("bentoml /segment", n)), results.get(("mlflow /invocations", n))
        if not b:
            continue
        if m and m.throughput:
            ratio = b.throughput / m.throughput
            print(f"  {n:>3} clients: >= 3x mlflow: {'met' if ratio >= 3 else 'NOT met'} ({ratio:.2f}x)")
        p99 = b.pct(99)
        print(f"  {n:>3} clients: p99 < {p99_limit:.0f} ms: {'met' if p99 < p99_limit else 'NOT met'} ({p99:.1f} ms)")
    service = [lv for (name, _), lv in results.items() if name.startswith("bentoml /")]
    bento_errors = sum(sum(lv.errors.values()) for lv in service)
    print(f"  errors on the service's endpoints: {bento_errors} of {sum(lv.sent for lv in service)} requests "
          f"({'met' if bento_errors == 0 else 'NOT met'})")
    for (name, n), lv in results.items():
        if lv.errors:
            print(f"  {name} @ {n}: {dict(lv.errors)}")


def run(args: argparse.Namespace, work: Path) -> None:
    store = Path(args.store).resolve()
    if not (store / "mlflow.db").exists():
        raise SystemExit(f"--store {store}: no mlflow.db there (run `ecomlab quickstart` in that folder first)")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    levels = [int(x) for x in args.levels.split(",")]
    forecast_body, recommend_body = payloads(uri)
    config = serve_config(work, args.workers)
    segment_body = {"customers": [CUSTOMER]}
    results: dict[tuple[str, int], Level] = {}
    print(f"store {store}; {args.requests} requests or {args.duration:.0f} s per level, whichever comes first; "
          f"{args.workers} server worker(s); {os.cpu_count()} cores shared by client and servers\n")

    def measure(targets: list[Target]) -> None:
        for target in targets:
            warm_up(target)
            for n in levels:
                level = asyncio.run(drive(target, n, args.requests, args.duration, args.timeout))
                results[(target.name, n)] = level
                print(row(level), flush=True)

    print(HEADER)
    servers: list[Server] = []
    try:
        bento = start_bentoml(work, uri, config, "serving.service:EcomlabService", "bentoml", {})
        servers.append(bento)
        mlf = start_mlflow(work, uri, args.workers)
        servers.append(mlf)
        measure([
            Target("mlflow /invocations", mlf.url + "/invocations", {"dataframe_records": [CUSTOMER]}),
            Target("bentoml /segment", bento.url + "/segment", segment_body),
            Target("bentoml /forecast", bento.url + "/forecast", forecast_body),
            Target("bentoml /recommend", bento.url + "/recommend", recommend_body),
            Target("bentoml /clv", bento.url + "/clv", {"customers": [CLV_CUSTOMER]}),
        ])
        for server in servers:
            server.stop()
        if args.batching:
            env = {"ECOMLAB_BENCH_MAX_BATCH": str(args.max_batch), "ECOMLAB_BENCH_MAX_LATENCY_MS": str(args.max_latency_ms)}
            batched = start_bentoml(work, uri, config, f"bench.serve:{BATCHED_SERVICE}", "bentoml-batched", env)
            servers.append(batched)
            measure([Target("bentoml batched /segment", batched.url + "/segment", segment_body)])
    finally:
        for server in servers:
            server.stop()
    summary(results, levels)
    if args.batching:
        print(f"\n(batched variant: max_batch_size={args.max_batch}, max_latency_ms={args.max_latency_ms}; "
              "returns the list of segment results without the model/version envelope)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="folder holding mlflow.db from `ecomlab quickstart`")
    parser.add_argument("--requests", type=int, default=2000, help="requests per target and level (upper bound)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per target and level (upper bound)")
    parser.add_argument("--levels", default="1,10,100", help="concurrent clients, comma separated")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (both servers)")
    parser.add_argument("--no-batching", dest="batching", action="store_false", help="skip the adaptive-batching variant")
    parser.add_argument("--max-batch", type=int, default=100)
    parser.add_argument("--max-latency-ms", type=int, default=1000, help="BentoML sheds requests (503) it expects to miss this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecomlab-bench-serve-") as tmp:
        try:
            run(args, Path(tmp))
        except RuntimeError as exc:
            raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
