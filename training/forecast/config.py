"""The forecaster job's `model:` section: series, regressors, backtest windows, search bounds, fit limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from features.config_io import Strict
from features.series import DEFAULT_HORIZON, SEASON_LENGTH, ExogOptions, SeriesOptions
from serving.models.series_model import check_levels

SWITCH_MARGIN = 0.2  # see selection.best_per_series
METHODS = ("sarimax", "ets", "theta")  # the model types a study may try


class BacktestOptions(Strict):
    """Rolling-origin windows: `folds` test windows at the end of the data, `selection_folds` before them."""

    folds: int = Field(3, ge=1, description="test windows: baseline, candidate and champion are scored on them")
    selection_folds: int | None = Field(
        None, ge=1, description="windows before the first test origin that trials and selection use; default `folds`",
    )
    horizon: int | None = Field(None, ge=1, description="periods per fold; default D 14, W 4, M 3")
    step: int | None = Field(None, ge=1, description="periods between origins; default the horizon")


class CalibrationOptions(Strict):
    """Windows whose backtest errors calibrate the conformal intervals (`training.forecast.calibration`)."""

    folds: int = Field(20, ge=1, description="rolling origins at the end of the data the model is fitted on")
    step: int = Field(1, ge=1, description="periods between calibration origins (1: every period, the most errors)")
    shrink: float = Field(
        30.0, ge=0, description="a series' own quantile weighs n / (n + shrink) against the pooled one (n: its errors at that step)",
    )


class SearchSpace(Strict):
    p_max: int = Field(2, ge=0, le=5)
    d_max: int = Field(1, ge=0, le=2)
    q_max: int = Field(2, ge=0, le=5)
    P_max: int = Field(1, ge=0, le=2)
    D_max: int = Field(1, ge=0, le=1)
    Q_max: int = Field(1, ge=0, le=2)
    fourier_max: int = Field(3, ge=0, le=10, description="sin/cos pairs for the season")
    trends: list[Literal["n", "c", "t", "ct"]] = Field(default_factory=lambda: ["n", "c", "t"], min_length=1)


class ForecastConfig(Strict):
    series: SeriesOptions = SeriesOptions()
    exog: ExogOptions = ExogOptions()
    backtest: BacktestOptions = BacktestOptions()
    season_length: int | None = Field(None, ge=1, description="default from freq: D 7, W 52, M 12")
    levels: list[int] = Field(default_factory=lambda: [80, 95], min_length=1)
    intervals: Literal["conformal", "model"] = Field(
        "conformal", description="conformal: calibrated on backtest errors (training.forecast.calibration); model: the model's own",
    )
    calibration: CalibrationOptions = CalibrationOptions()
    max_workers: int = Field(2, ge=1)
    search: SearchSpace = SearchSpace()
    methods: list[Literal["sarimax", "ets", "theta"]] = Field(
        default_factory=lambda: list(METHODS), min_length=1, description="model types the study tries (all by default)",
    )
    combine_max: int = Field(
        3, ge=0, le=5, description="combinations of a series' 2..combine_max best trials are candidates too; 0 or 1: none",
    )
    min_train: int = Field(16, ge=4, description="shortest history a SARIMAX is fitted on")
    seasonal_arma_max: int = Field(24, ge=1, description="longer seasons use Fourier terms, not seasonal ARMA")
    maxiter: int = Field(50, ge=5, description="optimiser iterations per SARIMAX fit")
    selection_margin: float = Field(
        SWITCH_MARGIN, ge=0, lt=1, description="a series leaves the study's best config only for a gain this large",
    )

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        return check_levels(v)

    @model_validator(mode="after")
    def _weekend_needs_days(self) -> ForecastConfig:
        if "weekend" in self.exog.calendar and self.series.freq != "D":
            raise ValueError("exog.calendar 'weekend' needs series.freq: D")
        return self

    @property
    def season(self) -> int:
        return self.season_length or SEASON_LENGTH[self.series.freq]

    @property
    def horizon(self) -> int:
        return self.backtest.horizon or DEFAULT_HORIZON[self.series.freq]

    @property
    def step(self) -> int:
        return self.backtest.step or self.horizon

    @property
    def selection_folds(self) -> int:
        return self.backtest.selection_folds or self.backtest.folds
