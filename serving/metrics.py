"""Per-model and per-endpoint Prometheus counters, served on BentoML's /metrics next to its own."""

from __future__ import annotations

import gc
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bentoml.exceptions import InvalidArgument

from serving.store import Served

log = logging.getLogger("ecomlab.serving")


class Metrics:
    """Requests, predicted rows and errors per served model version (family, name, version), and every
    rejected request by endpoint and reason.

    Rejections are counted where every answer passes (the ErrorShape middleware), not in the handlers:
    most rejections (validation, auth, body limit, media type, no model) never reach a handler.
    Made in the service's `__init__`: prometheus_client is imported after BentoML set up its
    multiprocess metrics directory, or the counters would not reach /metrics.
    """

    def __init__(self) -> None:
        import prometheus_client

        from serving import bentoml_fixes

        if bentoml_fixes.enabled():
            bentoml_fixes.cache_metrics_pid()  # the values' fork check without a system call per update
        labels = ["family", "model", "version"]
        self.predictions = prometheus_client.Counter("ecomlab_predictions", "Rows predicted, per served model version", labels)
        self.requests = prometheus_client.Counter("ecomlab_model_requests", "Requests per served model version", labels)
        self.errors = prometheus_client.Counter(
            "ecomlab_prediction_errors", "Requests a served model rejected or failed", [*labels, "kind"]
        )
        self.rejections = prometheus_client.Counter(
            "ecomlab_rejections", "Requests answered with a 4xx or 5xx, per endpoint and reason (the error code)",
            ["endpoint", "reason", "status"],
        )
        self.gc = GcPauses(prometheus_client)
        self.drift = prometheus_client.Gauge(  # each worker's own window: the worst one shows
            "ecomlab_input_drift", "PSI of a served model version's recent inputs against its reference profile, per feature",
            ["model", "version", "feature"], multiprocess_mode="livemax",
        )
        self.on_scrape: list[Callable[[], None]] = []  # refreshed lazily when /metrics is read (drift gauges)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def scrape(self) -> None:
        """Before BentoML renders /metrics: the GC pauses noted since the last request, then the lazy gauges."""
        self.gc.flush()
        for hook in self.on_scrape:
            try:
                hook()
            except Exception:  # a gauge that cannot be refreshed must not fail the scrape
                log.exception("refreshing a gauge before /metrics failed")

    def reject(self, endpoint: str, reason: str, status: int) -> None:
        self.rejections.labels(endpoint, reason, str(status)).inc()

    def _counters(self, served: Served) -> tuple[Any, Any]:
        """(requests, predictions) children of a served version, looked up once: `labels()` costs a few µs."""
        labels = (served.family, served.name, served.version)
        found = self._children.get(labels)
        if found is None:
            found = self._children[labels] = (self.requests.labels(*labels), self.predictions.labels(*labels))
        return found

    def observe(self, served: Served, rows: int) -> Observed:
        """Count one request of `rows` rows; a rejected input and a failure are counted apart (`with` block)."""
        return Observed(self, served, rows)


class Observed:
    """One model request being counted (`Metrics.observe`): a plain context manager, as a generator-based
    one costs ~2% of a small request's CPU."""

    __slots__ = ("metrics", "served", "rows", "predictions")

    def __init__(self, metrics: Metrics, served: Served, rows: int) -> None:
        self.metrics, self.served, self.rows = metrics, served, rows

    def __enter__(self) -> None:
        requests, self.predictions = self.metrics._counters(self.served)
        requests.inc()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        metrics, served = self.metrics, self.served
        try:
            if kind is not None and issubclass(kind, Exception):
                reason = "bad_input" if issubclass(kind, InvalidArgument) else "failure"
                metrics.errors.labels(served.family, served.name, served.version, reason).inc()
        finally:
            metrics.gc.flush()
        if kind is None:
            self.predictions.inc(self.rows)
        return False


class GcPauses:
    """Garbage-collection passes of this worker by generation and length, on /metrics as
    `ecomlab_gc_pause_seconds{generation}`: a full pass (generation 2) stops every request in flight.

    The `gc.callbacks` hook only notes each pass in a bounded deque: it may run inside any allocation,
    also inside prometheus_client's own locked sections, so observing the histogram there could
    deadlock. `flush()` moves the notes into the histogram, after each model request and each scrape.
    """

    BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)

    def __init__(self, prometheus_client: Any, registry: Any = None) -> None:
        self.pauses = prometheus_client.Histogram(
            "ecomlab_gc_pause_seconds", "Garbage-collection passes by generation and length (2: a full pass)",
            ["generation"], buckets=self.BUCKETS, registry=registry or prometheus_client.REGISTRY,
        )
        self._pending: deque[tuple[int, float]] = deque(maxlen=10_000)
        self._started = 0.0
        gc.callbacks.append(self._hook)

    def _hook(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pending.append((info["generation"], time.perf_counter() - self._started))

    def flush(self) -> None:
        pending = self._pending
        while pending:
            generation, seconds = pending.popleft()
            self.pauses.labels(str(generation)).observe(seconds)

    def close(self) -> None:
        """Stop noting passes (the hook stays otherwise for the life of the worker)."""
        if self._hook in gc.callbacks:
            gc.callbacks.remove(self._hook)
