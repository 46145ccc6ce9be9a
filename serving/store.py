"""The served models: loaded from the registry by alias, swapped atomically when the alias moves.

A request takes one `Served` snapshot and uses it to the end, so a swap never breaks a request in
flight. A registry that cannot be reached keeps the current models serving and is reported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

from serving.settings import ModelSpec, ServeSettings  # noqa: E402

log = logging.getLogger("ecomlab.serving")


@dataclass(frozen=True)
class Served:
    family: str
    name: str
    alias: str
    version: str
    run_id: str
    model: Any
    metrics: dict[str, float]
    loaded_at: float


@dataclass
class Status:
    served: dict[str, Served] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    last_check: float = 0.0
    registry_error: str | None = None


class ModelUnavailable(RuntimeError):
    """No model of a family is loaded; the message says why."""


class ModelStore:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.tracking_uri or _default_uri()
        self._status = Status()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- reading (request path: no locks, one snapshot) ----

    def get(self, family: str) -> Served:
        served = self._status.served.get(family)
        if served is None:
            reason = self._status.errors.get(family) or f"no {family} model is configured in the service settings"
            raise ModelUnavailable(reason)
        return served

    def ready(self) -> tuple[bool, list[str]]:
        reasons = []
        registry_error = self._status.registry_error
        for spec in self.settings.models:
            if spec.family not in self._status.served:
                why = self._status.errors.get(spec.family, "not loaded yet")
                reasons.append(f"{spec.family} ({spec.name}@{spec.alias}): {'registry unreachable' if why == registry_error else why}")
        if not self.settings.models:
            reasons.append("no models configured (configs/serve.yaml: models)")
        if reasons and registry_error:
            reasons.insert(0, registry_error)
        return (not reasons, reasons)

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for spec in self.settings.models:
            served = self._status.served.get(spec.family)
            out.append(
                {
                    "family": spec.family,
                    "name": spec.name,
                    "alias": spec.alias,
                    "version": served.version if served else None,
                    "run_id": served.run_id if served else None,
                    "metrics": served.metrics if served else {},
                    "loaded_at": served.loaded_at if served else None,
                    "status": "serving" if served else "unavailable",
                    "error": self._status.errors.get(spec.family),
                }
            )
        return out

    @property
    def registry_error(self) -> str | None:
        return self._status.registry_error

    # ---- loading ----

    def refresh(self) -> None:
        """Load every configured model whose alias points to a version other than the one served."""
        import mlflow  # imported here: `bentoml serve` imports this module in its CLI process too
        from mlflow.tracking import MlflowClient

        with self._lock:
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            client = MlflowClient(self.uri, self.uri)
            registry_error = None
            for spec in self.settings.models:
                if registry_error is not None:  # one unreachable registry per round: no timeout per model
                    self._status.errors[spec.family] = registry_error
                    continue
                try:
                    self._refresh_one(client, spec)
                except Exception as exc:
                    reason = _scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}", self.uri)
                    if _is_unreachable(exc):
                        reason = registry_error = f"registry unreachable at {redact(self.uri)}: {reason}"
                    if self._status.errors.get(spec.family) != reason:  # logged when it starts or changes, not every round
                        log.warning("model %s@%s not (re)loaded: %s", spec.name, spec.alias, reason)
                    self._status.errors[spec.family] = reason
            if self._status.registry_error and registry_error is None:
                log.warning("registry reachable again at %s", redact(self.uri))
            self._status.registry_error = registry_error
            self._status.last_check = time.time()

    def _refresh_one(self, client: Any, spec: ModelSpec) -> None:
        import mlflow

        mv = client.get_model_version_by_alias(spec.name, spec.alias)
        current = self._status.served.get(spec.family)
        if current is not None and current.version == str(mv.version):
            self._status.errors.pop(spec.family, None)
            return
        model = mlflow.pyfunc.load_model(f"models:/{spec.name}/{mv.version}")
        metrics = {}
        if mv.run_id:
            metrics = {k: v for k, v in client.get_run(mv.run_id).data.metrics.items() if k.startswith("best_")}
        served = Served(spec.family, spec.name, spec.alias, str(mv.version), mv.run_id or "", model, metrics, time.time())
        new = dict(self._status.served)
        new[spec.family] = served
        self._status.served = new  # one reference assignment: requests see the old or the new dict
        self._status.errors.pop(spec.family, None)
        log.info("serving %s version %s as %s", spec.name, mv.version, spec.family)

    def start_reloading(self) -> None:
        if self.settings.reload_interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="ecomlab-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                self.refresh()
            except Exception:  # never let the reload thread die
                log.exception("reload failed")


def _default_uri() -> str:
    from pathlib import Path

    return f"sqlite:///{(Path.cwd() / 'mlflow.db').resolve()}"


def _credentials(uri: str) -> str:
    """The user-info part of a URI (`user:password` in scheme://user:password@host), or ''."""
    return uri.split("://", 1)[1].split("@", 1)[0] if "@" in uri and "://" in uri else ""


def redact(uri: str) -> str:
    """A tracking URI without credentials."""
    secret = _credentials(uri)
    return uri.replace(f"://{secret}@", "://***@", 1) if secret else uri


def _scrub(text: str, uri: str) -> str:
    """An error message without the credentials of the tracking URI (it is shown on /readyz and /models)."""
    secret = _credentials(uri)
    return text.replace(secret, "***") if secret else text


def _is_unreachable(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("connection", "unreachable", "timed out", "max retries", "unable to open database", "operationalerror"))
