"""Benchmark: the BentoML service against its floor (a raw ASGI app), `mlflow models serve`, and itself
without the request-path work-arounds (serving/bentoml_fixes.py), on the same registered models.

Starts every server on loopback against an MLflow store made by `ecomlab quickstart`, then drives at each
concurrency level (one row per request): /segment on the service, on the service with
ECOMLAB_BENTOML_FIXES=off ("before": BentoML's own request path, today's code before the fixes), on the
raw ASGI floor (bench/_raw_asgi.py: uvicorn + uvloop + httptools, no framework, same answers, checked)
and on `mlflow models serve`; /forecast, /recommend and /clv on the service; and a variant with
BentoML adaptive batching on /segment. Each level is bounded by a request count AND a time limit;
every server is stopped at the end. Prints per target and level: requests, errors, throughput,
p50/p99 latency, the server's CPU per request (process CPU time of the server and its workers over
the level / requests), the client's CPU share (client and servers share the machine's cores), and
the full GC passes the service made during the level with the bucket bound of the longest. A service
with input-drift tracking off ("no drift", `drift.enabled: false`) gives drift tracking's cost.

    uv run python bench/serve.py --store DIR [--requests 4000] [--duration 20] [--levels 1,10,100]
        [--targets segment,nodrift,before,raw,mlflow,forecast,recommend,clv] [--workers 1] [--no-batching]

DIR holds mlflow.db (and mlartifacts/) from `ecomlab quickstart` run in DIR.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench._serve_load import HEADER, Level, Target, measure, row, warm_up  # noqa: E402
from tests.service_harness import free_port, wait_until_up  # noqa: E402  (the tests start servers the same way)

QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}
os.environ.update(QUIET)

CUSTOMER = {"customer_id": "c1", "recency": 12.0, "frequency": 9.0, "monetary": 850.0, "quantity": 40.0,
            "tenure": 400.0, "aov": 94.4, "return_rate": 0.02}
CLV_CUSTOMER = {"customer_id": "c1", "frequency": 4.0, "recency": 30.0, "T": 40.0, "monetary": 25.0}
BATCHED_SERVICE = "BatchedSegmentService"
ALL_TARGETS = "segment,nodrift,before,raw,mlflow,forecast,recommend,clv"


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


def serve_config(work: Path, workers: int, drift: bool = True) -> Path:
    """Service settings for the bench: the quickstart champions, hot reload off, drift tracking on or off."""
    models = [{"family": f, "name": f"ecomlab-{f}", "alias": "champion"} for f in ("segmenter", "forecaster", "recommender", "clv")]
    cfg = {"host": "127.0.0.1", "port": 3000, "models": models, "reload_interval_s": 0, "workers": workers,
           "drift": {"enabled": drift}}
    path = work / ("serve.yaml" if drift else "serve-nodrift.yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_bentoml(work: Path, uri: str, config: Path, target: str, name: str, extra_env: dict[str, str]) -> Server:
    port = free_port()
    env = {"MLFLOW_TRACKING_URI": uri, "ECOMLAB_SERVE_CONFIG": str(config), "BENTOML_HOME": str(work / "bentoml"),
           **extra_env}
    argv = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    return launch(name, argv, env, work, "/readyz", port)


def start_raw(work: Path, uri: str, config: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench._raw_asgi:app", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port)]
    return launch("raw-asgi", argv, {"MLFLOW_TRACKING_URI": uri, "ECOMLAB_SERVE_CONFIG": str(config)}, work, "/readyz", port)


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


def summary(results: dict[tuple[str, int], Level], levels: list[int]) -> None:
    def ratio(a: str, b: str, n: int) -> str:
        x, y = results.get((a, n)), results.get((b, n))
        return f"{x.throughput / y.throughput:.2f}x" if x and y and y.throughput else "-"

    seg = "bentoml /segment"
    print("\n/segment throughput ratios (service / other)")
    print(f"  {'clients':>7} {'/ raw ASGI floor':>17} {'/ before fixes':>15} {'/ no drift':>11} {'/ mlflow':>9}")
    for n in levels:
        print(f"  {n:>7} {ratio(seg, 'raw ASGI /segment', n):>17} {ratio(seg, 'before /segment', n):>15} "
              f"{ratio(seg, 'no drift /segment', n):>11} {ratio(seg, 'mlflow /invocations', n):>9}")
    batched = [n for n in levels if ("bentoml batched /segment", n) in results]
    if batched:
        print("\nAdaptive batching on /segment (batched / plain BentoML throughput, p99)")
        for n in batched:
            b, p = results[("bentoml batched /segment", n)], results[(seg, n)]
            print(f"  {n:>3} clients: {ratio('bentoml batched /segment', seg, n)} throughput, p99 {b.pct(99):.1f} ms vs {p.pct(99):.1f} ms")
    print("\nTargets (service /segment; issue: the service under load)")
    checks = []
    for n, limit in ((10, 10.0), (100, 100.0)):
        if (seg, n) in results:
            p99 = results[(seg, n)].pct(99)
            checks.append((f"p99 at {n} clients <= {limit:g} ms", p99 <= limit, f"{p99:.1f} ms"))
    if (seg, 100) in results:
        after, before = results[(seg, 100)], results.get(("before /segment", 100))
        gain = after.throughput / before.throughput if before and before.throughput else float("nan")
        checks.append(("throughput at 100 clients >= 1.5x before", gain >= 1.5,
                       f"{after.throughput:,.0f} vs {before.throughput:,.0f} req/s = {gain:.2f}x" if before else "no before run"))
        checks.append(("throughput at 100 clients >= 1,900 req/s", after.throughput >= 1900, f"{after.throughput:,.0f} req/s"))
        gc = after.full_gc
        if gc is not None:
            checks.append(("no full GC pass > 20 ms at 100 clients", gc[0] == 0 or gc[1] <= 20,
                           f"{gc[0]} full passes, longest <= {gc[1]:g} ms"))
    for n in levels:
        on, off = results.get((seg, n)), results.get(("no drift /segment", n))
        if on and off and off.throughput:
            checks.append((f"throughput with drift tracking >= 90% of without, {n} clients", on.throughput >= 0.9 * off.throughput,
                           f"{on.throughput:,.0f} vs {off.throughput:,.0f} req/s = {on.throughput / off.throughput:.0%}"))
    cpu = [results[(seg, n)].cpu_ms_per_request for n in levels if (seg, n) in results]
    if cpu:
        checks.append(("server CPU per request <= 0.35 ms", max(cpu) <= 0.35, " / ".join(f"{c:.3f}" for c in cpu) + " ms"))
    service = [lv for (name, _), lv in results.items() if name.startswith("bentoml ")]
    errors = sum(sum(lv.errors.values()) for lv in service)
    checks.append(("zero errors on the service", errors == 0, f"{errors} of {sum(lv.sent for lv in service)}"))
    for what, ok, figure in checks:
        print(f"  {what}: {'met' if ok else 'NOT met'} ({figure})")
    for (name, n), lv in results.items():
        if lv.errors:
            print(f"  {name} @ {n}: {dict(lv.errors)}")


def same_answers(answers: dict[str, dict]) -> None:
    """The /segment answers of the service, the before variant and the raw floor must be equal."""
    seg = [(k, v) for k, v in answers.items()
           if k in ("bentoml /segment", "no drift /segment", "before /segment", "raw ASGI /segment")]
    if len(seg) > 1:
        first = seg[0][1]
        for name, answer in seg[1:]:
            if answer != first:
                raise RuntimeError(f"{name} answers {answer} where {seg[0][0]} answers {first}")
        print(f"same /segment answers from {', '.join(k for k, _ in seg)}")


def run(args: argparse.Namespace, work: Path) -> None:
    store = Path(args.store).resolve()
    if not (store / "mlflow.db").exists():
        raise SystemExit(f"--store {store}: no mlflow.db there (run `ecomlab quickstart` in that folder first)")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    levels = [int(x) for x in args.levels.split(",")]
    wanted = set(args.targets.split(","))
    forecast_body, recommend_body = payloads(uri)
    config = serve_config(work, args.workers)
    segment_body = {"customers": [CUSTOMER]}
    results: dict[tuple[str, int], Level] = {}
    answers: dict[str, dict] = {}
    print(f"store {store}; {args.requests} requests or {args.duration:.0f} s per level, whichever comes first; "
          f"{args.workers} server worker(s); {os.cpu_count()} cores shared by client and servers; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}\n")

    def run_targets(server: Server, targets: list[Target]) -> None:
        try:
            for target in targets:
                answers[target.name] = warm_up(target)
                for n in levels:
                    results[(target.name, n)] = level = measure(target, n, args.requests, args.duration, args.timeout)
                    print(row(level), flush=True)
        finally:
            server.stop()

    def service(name: str, env: dict[str, str], prefix: str, settings: Path = config) -> tuple[Server, Any]:
        server = start_bentoml(work, uri, settings, "serving.service:EcomlabService", name, env)
        pid, metrics = server.process.pid, server.url + "/metrics"

        def target(route: str, body: dict) -> Target:
            return Target(f"{prefix} {route}", server.url + route, body, pid, metrics)

        return server, target

    print(HEADER)
    if wanted & {"segment", "forecast", "recommend", "clv"}:
        server, target = service("bentoml", {}, "bentoml")
        bodies = {"segment": segment_body, "forecast": forecast_body, "recommend": recommend_body,
                  "clv": {"customers": [CLV_CUSTOMER]}}
        run_targets(server, [target(f"/{k}", v) for k, v in bodies.items() if k in wanted])
    if "nodrift" in wanted:
        server, target = service("bentoml-nodrift", {}, "no drift", serve_config(work, args.workers, drift=False))
        run_targets(server, [target("/segment", segment_body)])
    if "before" in wanted:
        server, target = service("bentoml-before", {"ECOMLAB_BENTOML_FIXES": "off"}, "before")
        run_targets(server, [target("/segment", segment_body)])
    if "raw" in wanted:
        server = start_raw(work, uri, config)
        run_targets(server, [Target("raw ASGI /segment", server.url + "/segment", segment_body, server.process.pid)])
    if "mlflow" in wanted:
        server = start_mlflow(work, uri, args.workers)
        run_targets(server, [Target("mlflow /invocations", server.url + "/invocations",
                                    {"dataframe_records": [CUSTOMER]}, server.process.pid)])
    if args.batching:
        env = {"ECOMLAB_BENCH_MAX_BATCH": str(args.max_batch), "ECOMLAB_BENCH_MAX_LATENCY_MS": str(args.max_latency_ms)}
        server = start_bentoml(work, uri, config, f"bench.serve:{BATCHED_SERVICE}", "bentoml-batched", env)
        run_targets(server, [Target("bentoml batched /segment", server.url + "/segment", segment_body, server.process.pid)])
    same_answers(answers)
    summary(results, levels)
    if args.batching:
        print(f"\n(batched variant: max_batch_size={args.max_batch}, max_latency_ms={args.max_latency_ms}; "
              "returns the list of segment results without the model/version envelope)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="folder holding mlflow.db from `ecomlab quickstart`")
    parser.add_argument("--targets", default=ALL_TARGETS, help=f"comma separated, of {ALL_TARGETS}")
    parser.add_argument("--requests", type=int, default=4000, help="requests per target and level (upper bound)")
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
