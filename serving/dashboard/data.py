"""What the dashboard shows beside the service's own endpoints: the KPIs of the configured source (computed
once, on first request) or of the last file uploaded to POST /kpis/upload, and each served model's
loading time, registry decision and MLflow links.

The last upload's figures are kept as one small JSON file in the service's dashboard folder
(`ECOMLAB_DASHBOARD_DIR`, made once by the process that starts the workers, so every worker of one
service shares it): whichever worker takes the upload, every worker's page shows it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from features.jsonsafe import json_safe
from serving.settings import DashboardSettings
from serving.store import ModelStore

log = logging.getLogger("ecomlab.serving")
HEADLINE = ("orders", "customers", "net_revenue", "average_order_value", "churn_rate", "return_rate")
DIR_ENV = "ECOMLAB_DASHBOARD_DIR"
UPLOAD_FILE = "last-upload.json"
NOTHING = ("No KPI data source is configured and no file has been uploaded: set dashboard.kpi_source in the "
           "service settings (configs/serve.yaml), or upload a CSV of order lines to POST /kpis/upload.")


def dashboard_dir() -> Path:
    """This service's dashboard folder: `ECOMLAB_DASHBOARD_DIR`, else a new temporary folder, exported so the
    worker processes started after this one (BentoML's) find the same."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        folder = os.environ[DIR_ENV] = tempfile.mkdtemp(prefix="ecomlab-dashboard-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def page_figures(loaded: Any, report: dict[str, Any], source: str) -> dict[str, Any]:
    """The KPI part of the page for a loaded source and its KPI report."""
    from features.kpis import headline

    report = json_safe(report)
    figures = headline(report)
    return {
        "status": "ok", "source": source, "message": None,
        "accounting": loaded.accounting.as_dict(),
        "headline": {k: figures[k] for k in HEADLINE if k in figures},
        "revenue": _part(report, "revenue_by_period", "by_period"),
        "cohorts": _part(report, "cohort_retention", "matrix"),
        "rfm": _part(report, "rfm", "segments"),
        "returns": _part(report, "returns", "by_category"),
    }


class UploadShelf:
    """The page figures of the last uploaded file, shared by the service's workers through one JSON file."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or dashboard_dir()) / UPLOAD_FILE
        self._seen: tuple[float, dict[str, Any]] | None = None

    def keep(self, loaded: Any, report: dict[str, Any], filename: str) -> None:
        """Note an upload's figures (written whole, then renamed: a reader never sees half a file)."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        figures = {**page_figures(loaded, report, f"uploaded file {filename}"), "uploaded_at": stamp}
        tmp = self.path.with_name(f".{UPLOAD_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(figures), encoding="utf-8")
        os.replace(tmp, self.path)

    def latest(self) -> dict[str, Any] | None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        if self._seen is None or self._seen[0] != mtime:
            self._seen = (mtime, json.loads(self.path.read_text(encoding="utf-8")))
        return self._seen[1]


class KpiCache:
    """The KPIs the page shows: the configured source's, computed at most once per worker (the source does
    not change while serving), or the last upload's. `answer(choice)`: "configured", "upload", or None for
    the configured source when there is one, else the last upload."""

    def __init__(self, settings: DashboardSettings, uploads: UploadShelf | None = None) -> None:
        self.source = settings.kpi_source
        self.uploads = uploads or UploadShelf()
        self._lock = threading.Lock()
        self._answer: dict[str, Any] | None = None

    def answer(self, choice: str | None = None) -> dict[str, Any]:
        upload = self.uploads.latest()
        choices = {"configured": self.source, "upload": upload["source"] if upload else None}
        if choice not in ("configured", "upload"):
            choice = "configured" if self.source is not None or upload is None else "upload"
        if choice == "upload" and upload is not None:
            return {**upload, "showing": "upload", "choices": choices}
        if self.source is None:
            message = NOTHING if upload is None else "No KPI data source is configured: pick the last uploaded file."
            return {"status": "not configured", "source": None, "message": message, "showing": choice, "choices": choices}
        with self._lock:
            if self._answer is None:
                self._answer = self._compute(self.source)
        return {**self._answer, "showing": "configured", "choices": choices}

    @staticmethod
    def _compute(source: str) -> dict[str, Any]:
        """The page's KPI figures; a source that cannot be read is one line on the page (its traceback in the log)."""
        from features.kpis import kpi_report
        from features.sources import load

        try:
            loaded = load(Path(source))
            report = kpi_report(loaded.lines, customers=loaded.customers, inventory=loaded.inventory)
        except Exception as exc:  # the page says why; the service keeps serving its models
            log.exception("dashboard: KPIs of %s could not be computed", source)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return {"status": "error", "source": source, "message": f"KPIs of {source} could not be computed: {first}"}
        return page_figures(loaded, report, loaded.name or source)


def _part(report: dict[str, Any], kpi: str, key: str) -> dict[str, Any]:
    """One chart's rows, or the reason the KPI is unavailable for this source."""
    entry = report.get(kpi) or {}
    if entry.get("status") == "unavailable":
        return {"rows": [], "reason": entry.get("reason")}
    return {"rows": entry.get(key) or [], "reason": None}


class ModelFacts:
    """Each configured model as the page shows it: the store's view plus the registry's decision and links.

    A version's decision tag and its run's experiment never change, so each is read once per version.
    """

    def __init__(self, settings: DashboardSettings) -> None:
        self.ui = settings.mlflow_ui_url
        self._known: dict[tuple[str, str], dict[str, Any]] = {}

    def answer(self, store: ModelStore) -> dict[str, Any]:
        rows = []
        for m in store.describe():
            loaded = m.get("loaded_at")
            row = {**m, "loaded_at": datetime.fromtimestamp(loaded, timezone.utc).isoformat(timespec="seconds") if loaded is not None else None}
            if m["version"] is not None:
                row.update(self._version(store, m["name"], m["version"], m["run_id"]))
            rows.append(row)
        return {"models": json_safe(rows), "mlflow_ui_url": self.ui}

    def _version(self, store: ModelStore, name: str, version: str, run_id: str | None) -> dict[str, Any]:
        key = (name, version)
        if key not in self._known:
            facts = self._lookup(store, name, version, run_id)
            if facts is None:  # asked again at the next refresh of the page
                return {"decision": None, "run_url": None, "version_url": None}
            self._known[key] = facts
        return self._known[key]

    def _lookup(self, store: ModelStore, name: str, version: str, run_id: str | None) -> dict[str, Any] | None:
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
            decision = client.get_model_version(name, version).tags.get("ecomlab.decision", "")
            experiment = client.get_run(run_id).info.experiment_id if run_id and self.ui else None
        except Exception as exc:  # the registry is away: the table still shows what the store knows
            log.warning("dashboard: registry facts of %s/%s unavailable: %s", name, version, exc)
            return None
        return {
            "decision": decision or None,
            "run_url": f"{self.ui}/#/experiments/{experiment}/runs/{run_id}" if experiment else None,
            "version_url": f"{self.ui}/#/models/{name}/versions/{version}" if self.ui else None,
        }
