"""Plain helpers shared by tests (fixtures live in conftest.py; tests import from here, never from conftest)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def shared_dataset(name: str) -> Path:
    """Path of a public data set in ../shared/data; skip where it is absent, fail under CI."""
    path = SHARED_DATA / name
    if path.exists():
        return path
    reason = f"public data set {name!r} not found at ../shared/data/{name} (beside the checkout)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI the real-data tests must run")
    pytest.skip(reason)


def fresh_mlflow_db(template: Path, folder: Path) -> str:
    """A copy of the initialised template store in `folder`; its URI."""
    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


#: the shipped job config of each family, and the small changes that keep it quick on tiny data
FAMILY_JOBS = {
    "segmenter": ("segment.yaml", {"evaluation": {"stability_seeds": 1}, "search": {"n_init": [2]}}),
    "forecaster": ("forecast.yaml", {"calibration": {"folds": 3, "step": 4}}),  # 3 calibration origins, not 20
    "recommender": ("recommend.yaml", {}),
    "clv": ("clv.yaml", {"features": {"holdout": 20}}),
}
#: synthetic options a family's tiny shop needs beyond the defaults
FAMILY_DATA = {"clv": {"clv_customers": 1500}}


def tiny_job(family: str, folder: Path, n_customers: int = 300, weeks: int = 80) -> Path:
    """A job config of `family` on a small seeded synthetic shop, written to `folder`."""
    import yaml

    options = {"n_customers": n_customers, "weeks": weeks, "seed": 7, **FAMILY_DATA.get(family, {})}
    data = {"name": "tiny-synthetic", "format": "synthetic", "synthetic": options}
    (folder / "data.yaml").write_text(yaml.safe_dump(data))
    file, model = FAMILY_JOBS[family]
    job = yaml.safe_load((REPO / "configs" / file).read_text())
    job.update(data="data.yaml", experiment=f"tiny-{family}", kpi_context=False)
    job["tuning"]["n_trials"] = 2
    for section, values in model.items():
        job.setdefault("model", {}).setdefault(section, {}).update(values)
    path = folder / f"{family}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


CONTRACT_COLUMNS = ("order_id", "order_date", "customer_id", "product_id", "quantity", "unit_price")


def write_csv_source(folder: Path, body: str, name: str, **config) -> Path:
    """`lines.csv` (the contract's column names, then `body`) and a data config `<name>.yaml` reading it."""
    import yaml

    (folder / "lines.csv").write_text(",".join(CONTRACT_COLUMNS) + "\n" + body)
    cfg = {"name": name, "format": "csv", "path": "lines.csv", "columns": {c: c for c in CONTRACT_COLUMNS}, **config}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
