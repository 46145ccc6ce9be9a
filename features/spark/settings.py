"""`engine:` and `spark:` in data and job configs (plain pydantic; importing this never imports pyspark).

```yaml
engine: spark               # pandas (default) or spark; `--engine spark` on the command line overrides it
spark:
  master: local[2]          # a cluster URL (spark://, yarn, k8s://) or Spark Connect (sc://host:15002)
  driver_memory: 2g
  shuffle_partitions: 8
  conf: {spark.executor.memory: 2g}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from features.config_io import Strict

Engine = Literal["pandas", "spark"]
ENGINES: tuple[str, ...] = ("pandas", "spark")


class SparkSettings(Strict):
    """How the Spark session is built. Only `master` changes between a laptop, a cluster and Spark Connect."""

    master: str = Field("local[2]", description="local[N], spark://host:7077, yarn, k8s://..., or sc://host:port (Spark Connect)")
    app_name: str = "ecomlab"
    driver_memory: str | None = Field(None, description="JVM heap of the driver, e.g. 2g (local mode: of everything)")
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions (Spark's 200 is slow for small data)")
    conf: dict[str, str] = Field(default_factory=dict, description="any other spark.* setting, passed as is")

    @property
    def is_connect(self) -> bool:
        return self.master.startswith("sc://")
