"""Input drift per served model version: a bounded, sampled window of recent inputs per version,
compared with the reference profile the model was registered with (`features.profile`).

The request path only copies a sample of rows into preallocated ring buffers (raw numbers, or the
category's bin index): memory is fixed by `drift.window` whatever the traffic, and no statistic is
computed there. PSI and p-values are computed when they are read (GET /drift, a /metrics scrape).
A new served version (a new champion) gets a new, empty window. Each worker keeps its own windows.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from features.profile import category_codes, compare, numeric_bins
from serving.settings import DriftSettings
from serving.store import ModelStore, Served

RANK = {"insufficient": 0, "ok": 1, "warn": 2, "alert": 3}
FLUSH_EVERY = 128  # requests queued per window before their rows are copied into the rings
Columns = dict[str, Any]  # feature -> raw values of the recorded rows (numbers, or category labels)


class Ring:
    """The last `size` values of one feature in a preallocated array."""

    def __init__(self, size: int, dtype: Any) -> None:
        self.values = np.zeros(size, dtype=dtype)
        self.pos = 0
        self.filled = 0

    def push(self, new: np.ndarray) -> None:
        size = len(self.values)
        if len(new) >= size:
            self.values[:] = new[-size:]
            self.pos, self.filled = 0, size
            return
        end = self.pos + len(new)
        if end <= size:
            self.values[self.pos:end] = new
        else:
            cut = size - self.pos
            self.values[self.pos:] = new[:cut]
            self.values[: end - size] = new[cut:]
        self.pos = end % size
        self.filled = min(size, self.filled + len(new))

    def view(self) -> np.ndarray:
        return self.values[: self.filled].copy()


class Window:
    """The recent inputs of one served version, one ring per profiled feature."""

    def __init__(self, served: Served, size: int) -> None:
        self.family, self.name, self.version, self.loaded_at = served.family, served.name, served.version, served.loaded_at
        self.profile: dict[str, Any] = served.profile or {"features": {}}
        self.specs: dict[str, dict[str, Any]] = self.profile["features"]
        self.codes = {f: category_codes(s["categories"]) for f, s in self.specs.items() if s["kind"] == "categorical"}
        self.rings = {f: Ring(size, np.float64 if s["kind"] == "numeric" else np.int32) for f, s in self.specs.items()}
        self.pending: list[Columns] = []  # at most FLUSH_EVERY requests' columns, not yet in the rings
        self.lock = threading.Lock()

    def push(self, columns: Columns) -> None:
        """Queue one request's columns; every FLUSH_EVERY requests they go into the rings in one pass per
        feature (a 1-row request's arrays cost more to copy one by one than the request's own model call)."""
        with self.lock:
            self.pending.append(columns)
            if len(self.pending) >= FLUSH_EVERY:
                self._flush()

    def flush(self) -> None:
        """The queued requests' rows into the rings now (reads flush first by themselves)."""
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        """Move the queued columns into the rings (the caller holds the lock)."""
        pending, self.pending = self.pending, []
        for feature, ring in self.rings.items():
            parts = [c[feature] for c in pending if feature in c]
            if not parts:
                continue
            codes = self.codes.get(feature)
            if codes is None:
                new = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in parts])
            else:
                other = len(codes)
                new = np.fromiter((codes.get(str(v), other) for values in parts for v in values), dtype=np.int32)
            ring.push(new)

    def counts(self, feature: str) -> np.ndarray:
        """Bin counts of the feature's window under its profile."""
        spec, ring = self.specs[feature], self.rings[feature]
        with self.lock:
            self._flush()
            values = ring.view()
        bins = len(spec["shares"])
        if spec["kind"] == "numeric":
            values = values[np.isfinite(values)]
            return np.bincount(numeric_bins(np.asarray(spec["edges"]), values), minlength=bins)
        return np.bincount(values, minlength=bins)

    def nbytes(self) -> int:
        return sum(r.values.nbytes for r in self.rings.values())


class FeatureDriftOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feature: str
    kind: str = Field(description="numeric (quantile bins) or categorical (top categories + other)")
    psi: float | None = Field(description="population stability index against the reference; null while insufficient")
    p_value: float | None = Field(description="KS (numeric) or chi-square (categorical) p-value")
    test: str
    window: int = Field(description="rows of this feature in the window")
    status: str = Field(description="ok, warn, alert (PSI thresholds) or insufficient (fewer rows than min_window)")


class ModelDriftOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str
    name: str
    version: str | None
    status: str = Field(description="the worst feature status, or: no reference, unavailable, disabled")
    window: int = Field(description="rows recorded for this version (its largest feature window)")
    features: list[FeatureDriftOut]


class DriftResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool
    warn_psi: float
    alert_psi: float
    min_window: int
    window_size: int
    sample_rate: float
    models: list[ModelDriftOut]


class DriftMonitor:
    """The windows of this worker's served versions, and their statistics on demand."""

    def __init__(self, settings: DriftSettings, gauge: Any = None, seed: int | None = None) -> None:
        self.settings = settings
        self.gauge = gauge  # prometheus Gauge(model, version, feature), or None
        self.windows: dict[str, Window] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._labels: dict[str, list[tuple[str, str, str]]] = {}

    def record(self, served: Served, columns: Callable[[], Columns]) -> None:
        """Note the inputs of one request (sampled); `columns` is only called for a sampled request."""
        s = self.settings
        if not s.enabled or served.profile is None:
            return
        if s.sample_rate < 1.0 and self._rng.random() >= s.sample_rate:
            return
        window = self.window(served)
        if window is not None:
            window.push(columns())

    def window(self, served: Served) -> Window | None:
        """The window of `served`; a new one for a newer version, None for an older one (a request still in
        flight on the version a reload replaced must not reset the new version's window)."""
        current = self.windows.get(served.family)
        if current is not None and current.version == served.version and current.name == served.name:
            return current
        with self._lock:
            current = self.windows.get(served.family)
            if current is not None and current.loaded_at > served.loaded_at:
                return None
            if current is None or current.version != served.version or current.name != served.name:
                current = Window(served, self.settings.window)
                self.windows = {**self.windows, served.family: current}
        return current

    def model_drift(self, store: ModelStore, family: str) -> ModelDriftOut:
        spec = next(m for m in store.settings.models if m.family == family)
        try:
            served = store.get(family)
        except Exception:  # not loaded: reported, not an error of /drift
            return ModelDriftOut(family=family, name=spec.name, version=None, status="unavailable", window=0, features=[])
        if served.profile is None:
            return ModelDriftOut(family=family, name=served.name, version=served.version, status="no reference", window=0, features=[])
        s = self.settings
        features = list(self.feature_drift(served).values())
        status = max((f.status for f in features), key=RANK.__getitem__, default="insufficient")
        if not s.enabled:
            status = "disabled"
        size = max((f.window for f in features), default=0)
        self._set_gauges(served, features)
        return ModelDriftOut(family=family, name=served.name, version=served.version, status=status, window=size, features=features)

    def feature_drift(self, served: Served) -> dict[str, FeatureDriftOut]:
        """Each profiled feature of `served`'s window against its reference (computed now, off the request path)."""
        window, s = self.window(served), self.settings
        if window is None:
            return {}
        return {
            f: FeatureDriftOut(**asdict(compare(f, spec, window.counts(f), s.warn_psi, s.alert_psi, s.min_window)))
            for f, spec in window.specs.items()
        }

    def answer(self, store: ModelStore, family: str | None = None) -> DriftResponse:
        s = self.settings
        families = [m.family for m in store.settings.models if family is None or m.family == family]
        return DriftResponse(
            enabled=s.enabled, warn_psi=s.warn_psi, alert_psi=s.alert_psi, min_window=s.min_window,
            window_size=s.window, sample_rate=s.sample_rate, models=[self.model_drift(store, f) for f in families],
        )

    def refresh(self, store: ModelStore) -> None:
        """Update the gauges (a /metrics scrape); a failure here must not fail the scrape."""
        if self.gauge is not None:
            self.answer(store)

    def _set_gauges(self, served: Served, features: list[FeatureDriftOut]) -> None:
        if self.gauge is None:
            return
        labels = [(served.name, served.version, f.feature) for f in features]
        multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ
        for old in self._labels.get(served.family, []):
            if old in labels:
                continue
            if multiprocess:  # prometheus_client cannot remove a series there: a retired version reads 0, not its last PSI
                self.gauge.labels(*old).set(0.0)
            else:
                self.gauge.remove(*old)
        self._labels[served.family] = labels
        for label, f in zip(labels, features, strict=True):
            if f.psi is not None:
                self.gauge.labels(*label).set(f.psi)
