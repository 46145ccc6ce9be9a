"""What the dashboard shows beside the service's own endpoints: the configured source's KPIs (computed
once, on first request) and each served model's loading time, registry decision and MLflow links."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from features.jsonsafe import json_safe
from serving.settings import DashboardSettings
from serving.store import ModelStore

log = logging.getLogger("ecomlab.serving")
HEADLINE = ("orders", "customers", "net_revenue", "average_order_value", "churn_rate", "return_rate")


class KpiCache:
    """The KPI source's figures, computed at most once per worker: the source does not change while serving."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.source = settings.kpi_source
        self._lock = threading.Lock()
        self._answer: dict[str, Any] | None = None

    def answer(self) -> dict[str, Any]:
        if self.source is None:
            return {"status": "not configured", "source": None,
                    "message": "No KPI data source is configured: set dashboard.kpi_source in the service settings (configs/serve.yaml)."}
        with self._lock:
            if self._answer is None:
                self._answer = self._compute(self.source)
            return self._answer

    @staticmethod
    def _compute(source: str) -> dict[str, Any]:
        """The page's KPI figures; a source that cannot be read is one line on the page (its traceback in the log)."""
        from features.kpis import headline, kpi_report
        from features.sources import load

        try:
            loaded = load(Path(source))
            report = json_safe(kpi_report(loaded.lines, customers=loaded.customers, inventory=loaded.inventory))
        except Exception as exc:  # the page says why; the service keeps serving its models
            log.exception("dashboard: KPIs of %s could not be computed", source)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return {"status": "error", "source": source, "message": f"KPIs of {source} could not be computed: {first}"}
        figures = headline(report)
        return {
            "status": "ok", "source": loaded.name or source, "message": None,
            "accounting": loaded.accounting.as_dict(),
            "headline": {k: figures[k] for k in HEADLINE if k in figures},
            "revenue": _part(report, "revenue_by_period", "by_period"),
            "cohorts": _part(report, "cohort_retention", "matrix"),
            "rfm": _part(report, "rfm", "segments"),
            "returns": _part(report, "returns", "by_category"),
        }


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
