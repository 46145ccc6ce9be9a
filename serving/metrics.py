"""Per-model and per-endpoint Prometheus counters, served on BentoML's /metrics next to its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bentoml.exceptions import InvalidArgument

from serving.store import Served


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

    def reject(self, endpoint: str, reason: str, status: int) -> None:
        self.rejections.labels(endpoint, reason, str(status)).inc()

    @contextmanager
    def observe(self, served: Served, rows: int) -> Iterator[None]:
        """Count one request of `rows` rows; a rejected input and a failure are counted apart."""
        labels = (served.family, served.name, served.version)
        self.requests.labels(*labels).inc()
        try:
            yield
        except InvalidArgument:
            self.errors.labels(*labels, "bad_input").inc()
            raise
        except Exception:
            self.errors.labels(*labels, "failure").inc()
            raise
        self.predictions.labels(*labels).inc(rows)
