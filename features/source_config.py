"""Data source configs (`configs/data/*.yaml`): where the rows are and how they map onto `OrderLines`.

No data set's columns are known to Python: every mapping, date format and return rule lives in YAML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from features.config_io import Strict, parse_model, read_yaml
from features.spark.settings import Engine, SparkSettings
from features.synthetic.options import SyntheticOptions

Format = Literal["csv", "whitespace", "parquet", "excel", "synthetic", "basket_csv", "basket_dat", "customer_summary"]
#: a customer summary's time unit in the config -> the unit code features.btyd uses
TIME_UNITS = {"weeks": "W", "days": "D"}


class ColumnMap(Strict):
    """Contract column -> source column. `amount` is a line total used when there is no unit price."""

    order_id: str | None = None
    order_date: str | None = None
    customer_id: str | None = None
    product_id: str | None = None
    product_name: str | None = None
    category: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    amount: str | None = None
    discount: str | None = None
    channel: str | None = None
    returned: str | None = None


class Returns(Strict):
    """How a return/cancellation line is recognised (any rule that matches marks it)."""

    order_id_prefix: str | None = None
    negative_quantity: bool = True
    flag_column: str | None = None  # a source column whose truthy values mark a return


class SummaryColumns(Strict):
    """Summary column -> source column, for `format: customer_summary` (holdout columns optional)."""

    customer_id: str = "customer_id"
    frequency: str = "frequency"
    recency: str = "recency"
    T: str = "T"
    monetary: str = "monetary"
    frequency_holdout: str | None = None
    duration_holdout: str | None = None
    monetary_holdout: str | None = None


class ReadOptions(Strict):
    sep: str | None = None
    encoding: str = "utf-8"
    sheet: str | int | None = 0
    header: bool = True
    names: list[str] | None = None  # column names for files without a header row


class SideTable(Strict):
    path: str
    format: Literal["csv", "parquet"] = "parquet"


class DataSourceConfig(Strict):
    name: str
    description: str = ""
    format: Format
    path: str | None = None  # a file, a glob of several files, or (synthetic) a generated folder
    read: ReadOptions = ReadOptions()
    columns: ColumnMap = ColumnMap()
    constants: dict[str, str | int | float] = Field(default_factory=dict)
    extra_columns: dict[str, str] = Field(default_factory=dict)  # kept beside the contract, e.g. country
    compose: dict[str, list[str]] = Field(default_factory=dict)  # contract column from joined source columns
    date_format: str | None = None  # strptime format, e.g. "%m/%d/%y %H:%M"; without it every ISO 8601 form parses
    #: the one timezone of order_date: times with an offset are converted to it, times without one are
    #: taken as written in it. None: naive UTC (offsets converted to UTC, the rest kept as written).
    timezone: str | None = None
    returns: Returns = Returns()
    drop_duplicates: bool = True
    synthetic: SyntheticOptions = SyntheticOptions()  # the generator's options (format: synthetic, no path)
    customers: SideTable | None = None
    inventory: SideTable | None = None
    #: format customer_summary: the per-customer table's columns (default: named as in features.btyd) and unit
    summary_columns: SummaryColumns | None = None
    time_unit: Literal["weeks", "days"] | None = None
    engine: Engine = "pandas"  # spark: load and compute KPIs on Spark (`--engine` overrides it)
    spark: SparkSettings = SparkSettings()
    source_file: str = ""  # filled by load_source_config: the YAML this came from

    @field_validator("constants")
    @classmethod
    def _known_constants(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = set(ColumnMap.model_fields) - {"amount", "returned"}
        bad = sorted(set(value) - allowed)
        if bad:
            raise ValueError(f"unknown contract column(s) {bad}; constants may set {sorted(allowed)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {value!r}; use an IANA name such as UTC or Europe/London") from None
        return value

    @field_validator("compose")
    @classmethod
    def _known_composed(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        allowed = {"order_id", "customer_id", "product_id"}
        bad = sorted(set(value) - allowed)
        if bad:
            raise ValueError(f"compose may build {sorted(allowed)}, not {bad}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> "DataSourceConfig":
        if self.format == "customer_summary":
            if not self.path or self.time_unit is None:
                raise ValueError("format 'customer_summary' needs a path and a time_unit (weeks or days)")
            return self
        if self.summary_columns is not None or self.time_unit is not None:
            raise ValueError("summary_columns and time_unit belong to format 'customer_summary' only")
        if self.format in ("synthetic", "basket_csv", "basket_dat"):
            if self.format != "synthetic" and not self.path:
                raise ValueError(f"format {self.format!r} needs a path")
            return self
        if not self.path:
            raise ValueError("path is required for file formats")
        have = {k for k, v in self.columns.model_dump().items() if v} | set(self.constants) | set(self.compose)
        missing = [c for c in ("order_id", "order_date", "product_id", "quantity") if c not in have]
        if "unit_price" not in have and "amount" not in have:
            missing.append("unit_price (or amount)")
        if missing:
            raise ValueError(f"columns: no mapping or constant for required contract column(s) {missing}")
        return self

    def resolve(self, path: str) -> Path:
        """A path relative to the config file, after expanding ${ECOMLAB_DATA_DIR} and other variables."""
        expanded = os.path.expandvars(path.replace("${ECOMLAB_DATA_DIR}", data_dir(self.source_file)))
        p = Path(expanded).expanduser()
        if not p.is_absolute() and self.source_file:
            p = Path(self.source_file).parent / p
        return p


def data_dir(config_file: str) -> str:
    """`ECOMLAB_DATA_DIR`, or `../shared/data` beside the repository that holds the config."""
    env = os.environ.get("ECOMLAB_DATA_DIR")
    if env:
        return env
    start = Path(config_file).resolve().parent if config_file else Path.cwd()
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").exists():
            return str(folder.parent / "shared" / "data")
    return str(Path.cwd().parent / "shared" / "data")


def load_source_config(path: str | Path) -> DataSourceConfig:
    path = Path(path)
    data = read_yaml(path)
    data["source_file"] = str(path)
    return parse_model(DataSourceConfig, data, path)
