"""Job configs (`configs/<job>.yaml`): one validated, frozen model per file; a typo fails before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.config_io import ConfigError, Strict, apply_overrides, parse_model, read_yaml
from features.spark.settings import Engine, SparkSettings
from serving.models.registry import known_family


class Tuning(Strict):
    n_trials: int = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds for the whole study")
    n_jobs: int = Field(1, ge=1)
    seed: int = 42
    storage: str | None = Field(
        None, description="Optuna RDB URL (sqlite:///optuna.db, postgresql://user@host/db); in-memory when absent; "
        "required for `ecomlab train --workers N` (N > 1) and `--join`",
    )
    study_name: str | None = None
    heartbeat_interval: int = Field(10, ge=1, description="seconds between a running trial's heartbeats (RDB storage)")
    grace_period: int | None = Field(None, ge=1, description="seconds without a heartbeat before a trial is failed; Optuna's default is 2 x interval")
    max_retry: int = Field(3, ge=0, description="times a trial whose worker stopped beating (killed, lost) is queued again")


class DecisionGate(Strict):
    """`registry.decision`: how sure the registry must be before a new version replaces the champion.

    `paired`: the candidate must beat the champion by a paired test on their per-unit losses on the same
    test data (p < alpha, the difference beyond `min_effect` in the objective's units), and beat the
    baseline: on its score (`baseline: point`, the default; the paired test is still run and recorded)
    or by the same paired test (`baseline: paired`). `none`: the point comparisons alone (a win by
    noise promotes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    test: Literal["paired", "none"] = "paired"
    baseline: Literal["point", "paired"] = Field(
        "point", description="how the candidate must beat the baseline: on its score, or by the paired test too")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the paired tests")
    min_effect: float = Field(0.0, ge=0, description="smallest improvement worth promoting, in the objective's units")


class Registry(Strict):
    model_name: str
    promote: Literal["auto", "never"] = "auto"
    decision: DecisionGate = DecisionGate()


class JobConfig(Strict):
    job: str
    family: str = Field(description="a model family of serving.models.registry.FAMILIES")
    data: str = Field(description="a data source config, relative to this file or the working directory")
    experiment: str
    tracking_uri: str | None = None
    tuning: Tuning = Tuning()
    registry: Registry
    kpi_context: bool = True
    engine: Engine = Field("pandas", description="pandas, or spark: forecasts per series and rule mining on Spark (`--engine` overrides)")
    spark: SparkSettings = SparkSettings()
    model: dict[str, Any] = Field(default_factory=dict)
    source_file: str = ""

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        return known_family(v)

    def data_path(self) -> Path:
        """The data config: relative to the job config's folder first, then to the working directory."""
        p = Path(self.data)
        if p.is_absolute():
            return p
        beside = Path(self.source_file).parent / p
        return beside if beside.exists() else p


def load_job_config(path: str | Path, overrides: list[str] | None = None) -> tuple[JobConfig, BaseModel]:
    """(job config, the family's validated `model:` section), or a ConfigError naming file and key."""
    from training.families import family_for

    path = Path(path)
    data = apply_overrides(read_yaml(path), overrides or [], path)
    data["source_file"] = str(path)
    job = parse_model(JobConfig, data, path)
    family = family_for(job.family)
    try:
        model_cfg = parse_model(family.config_model, job.model, path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"{path}: ", f"{path}: model.")) from None
    if not job.data_path().exists():
        raise ConfigError(f"{path}: data: data config not found: {job.data}")
    return job, model_cfg


def resolved_yaml(job: JobConfig, model_cfg: BaseModel) -> dict[str, Any]:
    """The config as it ran (defaults filled in, overrides applied), for logging."""
    out = job.model_dump(exclude={"source_file"})
    out["model"] = model_cfg.model_dump(mode="json")
    return out
