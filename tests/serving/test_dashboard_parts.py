"""Issue 16, the dashboard's parts without a server: its settings, the KPI figures it draws, Plotly's bundle."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from features.config_io import ConfigError
from features.source_config import DataSourceConfig
from serving.dashboard.data import KpiCache, ModelFacts, UploadShelf
from serving.dashboard.routes import plotly_bundle
from serving.settings import DashboardSettings, load_settings
from tests.helpers import fresh_mlflow_db


def settings_file(tmp_path: Path, dashboard: dict) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"dashboard": dashboard}))
    return path


def test_dashboard_settings_name_a_bad_key_and_a_bad_url(tmp_path: Path) -> None:
    loaded = load_settings(settings_file(tmp_path, {"kpi_source": "configs/data/synthetic.yaml", "mlflow_ui_url": "http://h:5000/"}))
    assert loaded.dashboard.kpi_source == "configs/data/synthetic.yaml" and loaded.dashboard.mlflow_ui_url == "http://h:5000"
    with pytest.raises(ConfigError, match="kpi_sorce"):
        load_settings(settings_file(tmp_path, {"kpi_sorce": "x.yaml"}))
    with pytest.raises(ConfigError, match="mlflow_ui_url"):
        load_settings(settings_file(tmp_path, {"mlflow_ui_url": "h:5000"}))
    assert load_settings(settings_file(tmp_path, {})).dashboard == DashboardSettings()


def test_no_kpi_source_is_said_on_the_page(tmp_path: Path) -> None:
    answer = KpiCache(DashboardSettings(), UploadShelf(tmp_path)).answer()
    assert answer["status"] == "not configured" and "No KPI data source is configured" in answer["message"]
    assert "/kpis/upload" in answer["message"] and answer["choices"] == {"configured": None, "upload": None}


def uploaded(shelf: UploadShelf, n_customers: int, name: str) -> None:
    from features.kpis import kpi_report
    from features.sources import load

    data = {"name": name, "format": "synthetic", "synthetic": {"n_customers": n_customers, "weeks": 20, "seed": 5}}
    loaded = load(DataSourceConfig.model_validate(data))
    shelf.keep(loaded, kpi_report(loaded.lines), f"{name}.csv")


def test_the_last_upload_is_shown_without_a_source_and_chosen_beside_one(tmp_path: Path) -> None:
    """No source configured: the last uploaded file's KPIs; a newer upload replaces it; with a source
    configured, the source by default and the upload when picked. Another worker's cache sees the same file."""
    shelf = UploadShelf(tmp_path)
    alone = KpiCache(DashboardSettings(), shelf)
    uploaded(UploadShelf(tmp_path), 40, "first")  # written through another shelf: another worker took the upload
    answer = alone.answer()
    assert answer["status"] == "ok" and answer["showing"] == "upload" and answer["source"] == "uploaded file first.csv"
    assert answer["headline"]["customers"] == 40 and answer["uploaded_at"]
    uploaded(shelf, 30, "second")
    assert alone.answer()["headline"]["customers"] == 30 and alone.answer()["source"] == "uploaded file second.csv"

    source = tmp_path / "data.yaml"
    source.write_text(yaml.safe_dump({"name": "tiny", "format": "synthetic", "synthetic": {"n_customers": 60, "weeks": 20, "seed": 5}}))
    both = KpiCache(DashboardSettings(kpi_source=str(source)), shelf)
    default = both.answer()
    assert default["showing"] == "configured" and default["source"] == "tiny" and default["headline"]["customers"] == 60
    assert default["choices"] == {"configured": str(source), "upload": "uploaded file second.csv"}
    assert both.answer("upload")["headline"]["customers"] == 30 and both.answer("configured")["source"] == "tiny"
    assert both.answer("anything else")["showing"] == "configured"


def test_an_unreadable_kpi_source_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    answer = KpiCache(DashboardSettings(kpi_source=str(tmp_path / "missing.yaml")), UploadShelf(tmp_path)).answer()
    assert answer["status"] == "error" and "missing.yaml" in answer["message"]
    assert "\n" not in answer["message"] and "Traceback" not in answer["message"]


def test_kpis_of_a_synthetic_source_are_computed_once(tmp_path: Path) -> None:
    source = tmp_path / "data.yaml"
    source.write_text(yaml.safe_dump({"name": "tiny", "format": "synthetic", "synthetic": {"n_customers": 60, "weeks": 20, "seed": 5}}))
    cache = KpiCache(DashboardSettings(kpi_source=str(source)), UploadShelf(tmp_path))
    answer = cache.answer()
    assert answer["status"] == "ok" and answer["source"] == "tiny"
    assert answer["headline"]["orders"] > 0 and answer["headline"]["customers"] == 60
    assert {"start", "revenue", "net_revenue"} <= set(answer["revenue"]["rows"][0])
    assert {"cohort", "customers", "m0"} <= set(answer["cohorts"]["rows"][0])
    assert sum(r["customers"] for r in answer["rfm"]["rows"]) == 60
    assert all(0 <= r["return_rate"] <= 1 for r in answer["returns"]["rows"]) and answer["returns"]["rows"]
    source.unlink()  # a second answer must not read the source again
    assert cache.answer() == answer


def test_model_facts_the_registry_cannot_give_keep_the_store_view_and_are_asked_again(
    tmp_path: Path, mlflow_template_db: Path
) -> None:
    row = {"family": "segmenter", "name": "m", "alias": "champion", "version": "3", "run_id": "abc", "metrics": {},
           "loaded_at": 0.0, "status": "serving", "error": None}
    store = SimpleNamespace(describe=lambda: [row], uri=fresh_mlflow_db(mlflow_template_db, tmp_path))  # no version 3 of m
    facts = ModelFacts(DashboardSettings(mlflow_ui_url="http://ui:5000"))
    answer = facts.answer(store)  # type: ignore[arg-type]
    (model,) = answer["models"]
    assert model["version"] == "3" and model["decision"] is None and model["run_url"] is None
    assert model["loaded_at"].startswith("1970-01-01T00:00:00")
    assert facts._known == {}  # not remembered: the next refresh asks the registry again


def test_plotly_bundle_comes_from_the_installed_package() -> None:
    import plotly

    bundle = plotly_bundle()
    assert bundle.is_file() and bundle.stat().st_size > 1_000_000
    assert Path(plotly.__file__).parent in bundle.parents
    assert "plotly.js v" in bundle.read_text(encoding="utf-8", errors="replace")[:200]
