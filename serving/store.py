"""The served models: loaded from the registry by alias, swapped atomically when the alias moves.

A request takes one `Served` snapshot and uses it to the end, so a swap never breaks a request in
flight. A registry that cannot be reached, a version whose artifacts cannot be loaded and a model
that is not a servable model of its family all keep the current version serving, and are reported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

from serving.drift_profile import read_profile  # noqa: E402
from serving.models.registry import NotServable, unwrap  # noqa: E402
from serving.settings import ModelSpec, ServeSettings  # noqa: E402
from serving.tracking_uri import is_unreachable, redact, resolve_tracking_uri, scrub  # noqa: E402

log = logging.getLogger("ecomlab.serving")

__all__ = ["ModelStore", "ModelUnavailable", "Served", "redact"]


@dataclass(frozen=True)
class Served:
    """One loaded version; `model` is the servable python model (it implements its family's Protocol)."""

    family: str
    name: str
    alias: str
    version: str
    run_id: str
    model: Any
    metrics: dict[str, float]
    loaded_at: float
    profile: dict[str, Any] | None = None  # the reference profile of its training inputs (drift); None before profiles


@dataclass
class Status:
    served: dict[str, Served] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)  # family -> (version, why it is not servable)
    last_check: float = 0.0
    registry_error: str | None = None


class VersionNotLoaded(RuntimeError):
    """A registered version could not be loaded; the message names the version and the cause."""


class ModelUnavailable(RuntimeError):
    """No model of a family is loaded; the message says why."""


class ModelStore:
    def __init__(self, settings: ServeSettings, on_load: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_load = on_load  # called after a reload round that swapped a model in
        self.uri = resolve_tracking_uri(settings.tracking_uri)
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
                why = "registry unreachable" if why == registry_error else why
                reasons.append(f"{spec.family} ({spec.name}@{spec.alias}): {why}")
        if not self.settings.models:
            reasons.append("no models configured (configs/serve.yaml: models)")
        if reasons and registry_error:
            reasons.insert(0, registry_error)
        return (not reasons, reasons)

    def describe(self) -> list[dict[str, Any]]:
        return [self._describe_one(spec) for spec in self.settings.models]

    def _describe_one(self, spec: ModelSpec) -> dict[str, Any]:
        served = self._status.served.get(spec.family)
        return {
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
            before = self._status.served
            for spec in self.settings.models:
                if registry_error is not None:  # one unreachable registry per round: no timeout per model
                    self._status.errors[spec.family] = registry_error
                    continue
                try:
                    self._refresh_one(client, spec)
                except Exception as exc:  # whatever stops a version loading, the served one keeps serving
                    registry_error = self._failed(spec, exc) or registry_error
            if self._status.registry_error and registry_error is None:
                log.warning("registry reachable again at %s", redact(self.uri))
            self._status.registry_error = registry_error
            self._status.last_check = time.time()
        if self.on_load is not None and self._status.served is not before:
            self.on_load()

    def _failed(self, spec: ModelSpec, exc: Exception) -> str | None:
        """Record why `spec` did not (re)load; the registry error when the registry is unreachable."""
        reason = scrub(f"{type(exc).__name__}: {_first_line(exc)[:300]}", self.uri)
        registry_error = None
        if is_unreachable(exc):
            reason = registry_error = f"registry unreachable at {redact(self.uri)}: {reason}"
        if self._status.errors.get(spec.family) != reason:  # logged when it starts or changes, not every round
            log.warning("model %s@%s not (re)loaded: %s", spec.name, spec.alias, reason)
        self._status.errors[spec.family] = reason
        return registry_error

    def _refresh_one(self, client: Any, spec: ModelSpec) -> None:
        """Load the version `spec`'s alias points to, unless it is the one served or one already rejected.

        The version is resolved first and loaded by number, so the version reported is the one loaded
        even when the alias moves between the two calls.
        """
        import mlflow

        mv = client.get_model_version_by_alias(spec.name, spec.alias)
        version = str(mv.version)
        current = self._status.served.get(spec.family)
        if current is not None and current.version == version:
            self._status.errors.pop(spec.family, None)
            return
        rejected = self._status.rejected.get(spec.family)
        if rejected is not None and rejected[0] == version:  # not servable: loading it again changes nothing
            raise NotServable(rejected[1])
        try:
            loaded = mlflow.pyfunc.load_model(f"models:/{spec.name}/{version}")
        except Exception as exc:  # named with its version, so /models says which version failed
            raise VersionNotLoaded(f"version {version}: {type(exc).__name__}: {_first_line(exc)}") from exc
        try:
            model = unwrap(loaded, spec.family)
        except NotServable as exc:
            self._status.rejected[spec.family] = (version, f"version {version}: {exc}")
            raise NotServable(self._status.rejected[spec.family][1]) from None
        metrics = _run_metrics(client, mv.run_id)
        served = Served(spec.family, spec.name, spec.alias, version, mv.run_id or "", model, metrics, time.time(),
                        read_profile(loaded))
        new = dict(self._status.served)
        new[spec.family] = served
        self._status.served = new  # one reference assignment: requests see the old or the new dict
        self._status.errors.pop(spec.family, None)
        self._status.rejected.pop(spec.family, None)
        log.info("serving %s version %s as %s", spec.name, version, spec.family)

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
            except Exception:  # the reload thread must outlive any one round; the traceback is logged
                log.exception("reload failed")


def _run_metrics(client: Any, run_id: str | None) -> dict[str, float]:
    """The `best_*` metrics of the run that logged the version (what /models shows), or none."""
    if not run_id:
        return {}
    return {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("best_")}


def _first_line(exc: Exception) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else ""


