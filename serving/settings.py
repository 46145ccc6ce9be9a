"""Service settings (`configs/serve.yaml`), validated like the job configs."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from features.config_io import Strict, parse_model, read_yaml
from serving.models.registry import known_family

DEFAULT_CONFIG = Path("configs/serve.yaml")


class ModelSpec(Strict):
    family: str = Field(description="a model family of serving.models.registry.FAMILIES")
    name: str = Field(description="registered model name")
    alias: str = "champion"

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        return known_family(v)


class Limits(Strict):
    max_batch: int = Field(1000, ge=1, description="rows per /segment, /forecast or /recommend request")
    max_horizon: int = Field(104, ge=1, description="periods per forecast")
    max_k: int = Field(50, ge=1, description="recommendations per basket")
    max_basket_items: int = Field(500, ge=1)
    max_kpi_rows: int = Field(200_000, ge=1, description="order lines per /kpis request")
    max_body_bytes: int = Field(50 * 1024 * 1024, ge=1024)


class DriftSettings(Strict):
    """Input drift per served model version: a sampled, bounded window per version against its reference profile."""

    enabled: bool = Field(True, description="false: record nothing on the request path (GET /drift says so)")
    window: int = Field(2000, ge=10, le=1_000_000, description="recent input rows kept per feature and served version")
    sample_rate: float = Field(1.0, gt=0, le=1, description="share of model requests whose rows are recorded")
    min_window: int = Field(1000, ge=1, description="rows a feature needs before it gets a status other than insufficient (at 500 a 21-bin categorical feature false-alarms ~1% of windows)")
    warn_psi: float = Field(0.1, gt=0, description="PSI from which a feature warns (Evidently's 0.1)")
    alert_psi: float = Field(0.25, gt=0, description="PSI from which a feature alerts (Evidently's 0.25)")

    @model_validator(mode="after")
    def _ordered(self) -> DriftSettings:
        if self.alert_psi < self.warn_psi:
            raise ValueError(f"alert_psi ({self.alert_psi}) must be at least warn_psi ({self.warn_psi})")
        if self.min_window > self.window:
            raise ValueError(f"min_window ({self.min_window}) must not exceed window ({self.window})")
        return self


class DashboardSettings(Strict):
    """The page at / (serving/dashboard): whose KPIs it shows and where its MLflow links point."""

    kpi_source: str | None = Field(None, description="data config (configs/data/*.yaml) whose KPIs the page shows, relative to the working directory; null: the page says none is configured")
    mlflow_ui_url: str | None = Field(None, description="MLflow UI base URL (http://host:5000): the model table links to each version's run")

    @field_validator("mlflow_ui_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"mlflow_ui_url must start with http:// or https://, not {v!r}")
        return v.rstrip("/") if v else v


class ServeSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    tracking_uri: str | None = None
    models: list[ModelSpec] = Field(default_factory=list)
    reload_interval_s: float = Field(30.0, ge=0, description="0 turns hot-reload off")
    limits: Limits = Limits()
    api_token_env: str = Field("ECOMLAB_API_TOKEN", description="environment variable that holds the API token")
    metrics_open: bool = Field(False, description="serve /metrics without the API token (for a Prometheus scraper)")
    workers: int = Field(1, ge=1)
    timeout_s: float = Field(60.0, gt=0, description="seconds a request may wait for its answer to start, then 504")
    access_log: bool = Field(True, description="BentoML's access log line per request (about 5% of a small request's CPU)")
    drift: DriftSettings = DriftSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @field_validator("models")
    @classmethod
    def _one_per_family(cls, v: list[ModelSpec]) -> list[ModelSpec]:
        families = [m.family for m in v]
        twice = sorted({f for f in families if families.count(f) > 1})
        if twice:
            raise ValueError(f"one model per family: {', '.join(twice)} configured more than once")
        return v


def load_settings(path: str | Path | None = None) -> ServeSettings:
    """Settings from `path`, `ECOMLAB_SERVE_CONFIG`, or configs/serve.yaml; defaults when none exists."""
    chosen = Path(path or os.environ.get("ECOMLAB_SERVE_CONFIG") or DEFAULT_CONFIG)
    if not chosen.exists():
        if path is not None or os.environ.get("ECOMLAB_SERVE_CONFIG"):
            read_yaml(chosen)  # raises ConfigError: config file not found
        return ServeSettings()
    return parse_model(ServeSettings, read_yaml(chosen), chosen)
