"""Plain helpers shared by tests (fixtures live in conftest.py; tests import from here, never from conftest)."""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
import traceback
from collections.abc import Callable
from contextlib import closing
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


def build_once(folder: Path, build: Callable[[Path], None], timeout_s: float = 900) -> Path:
    """`build(folder)` in exactly one of the processes calling this with the same `folder` (the xdist workers
    of one pytest run); the others wait for it. A failed build is recorded beside `folder` and raised in
    every caller (no retry: a deterministic failure would cost the build again per worker); a build whose
    process died half way (no mark either way) is started again. Callers only read `folder` once built.

    The lock is fcntl's: the kernel drops it when its holder dies, so a dead builder leaves no stale lock."""
    built, failed = folder.with_name(f"{folder.name}.built"), folder.with_name(f"{folder.name}.failed")
    with open(folder.with_name(f"{folder.name}.lock"), "a") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{folder.name}: another worker has been building it for over {timeout_s:.0f} s") from None
                time.sleep(0.2)
        try:
            if failed.exists():
                raise RuntimeError(f"building {folder.name} failed in another worker:\n{failed.read_text()}")
            if not built.exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                try:
                    build(folder)
                except BaseException:  # pytest.fail and KeyboardInterrupt too: the waiting workers must not hang or rebuild
                    failed.write_text(traceback.format_exc())
                    raise
                built.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def copy_mlflow_folder(source: Path, target: Path) -> str:
    """A private, writable copy of `source` (an MLflow SQLite store `mlflow.db` and its local artifacts) in `target`;
    its URI. MLflow records absolute artifact locations in the store (experiments, runs, model versions, logged
    models, ...) and in each logged model's MLmodel file: every text cell and text file naming `source` is rewritten
    to name `target`, and one still naming it fails the copy, so the copy never reads or writes the original."""
    assert not (target.is_relative_to(source) or source.is_relative_to(target)), (source, target)
    renames = {source.as_uri(): target.as_uri(), str(source): str(target)}  # a file URI may be %-encoded
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("mlflow.db*"), dirs_exist_ok=True)
    left = _rewrite_files(target, renames)
    with closing(sqlite3.connect(f"file:{source / 'mlflow.db'}?mode=ro", uri=True)) as src, \
            closing(sqlite3.connect(target / "mlflow.db")) as dst:
        src.backup(dst)  # a consistent snapshot, whatever journal MLflow left
        left += _rewrite_cells(dst, renames)
        dst.commit()
    if left:
        raise AssertionError(f"the copy {target} still names the original {source} in: {', '.join(left)}")
    return f"sqlite:///{target / 'mlflow.db'}"


def _rewrite_files(folder: Path, renames: dict[str, str]) -> list[str]:
    """Apply `renames` to the text files under `folder`; the files still naming an old path (binary ones)."""
    left = []
    for path in (p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if not any(old.encode() in data for old in renames):
            continue
        try:
            text = data.decode()
        except UnicodeDecodeError:
            left.append(str(path.relative_to(folder)))
            continue
        for old, new in renames.items():
            text = text.replace(old, new)
        path.write_text(text)
    return left


def _rewrite_cells(db: sqlite3.Connection, renames: dict[str, str]) -> list[str]:
    """Apply `renames` to every text cell of every table; the "table.column"s still naming an old path (blobs)."""
    left = []
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        for column in [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]:
            cell = f'"{column}"'
            for old, new in renames.items():
                db.execute(f"UPDATE \"{table}\" SET {cell} = replace({cell}, ?, ?) WHERE typeof({cell}) = 'text' "
                           f"AND instr({cell}, ?) > 0", (old, new, old))
            if any(db.execute(f'SELECT 1 FROM "{table}" WHERE instr(CAST({cell} AS TEXT), ?) > 0 LIMIT 1', (old,)).fetchone()
                   for old in renames):
                left.append(f"{table}.{column}")
    return left


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
