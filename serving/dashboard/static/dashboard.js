// The ecomlab dashboard: draws the service's own answers (/dashboard/api/*, /drift, /metrics, /models/forecaster,
// POST /forecast) with Plotly served from the package. Errors show as the error shape's one-line message, never a trace.
"use strict";

const TOKEN_KEY = "ecomlab.apiToken";
const REFRESH_MS = 10000;
const HORIZON = 12;
const KEY_METRICS = 4; // the run's first best_* metrics in the table; all of them on hover
const PLOT_CONFIG = { responsive: true, displaylogo: false };
const LOCALE = "en-US"; // one number format whatever the browser's language: 5,595 and 0.123

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function show(id, message, isError = true) {
  const el = document.getElementById(id);
  el.textContent = message || "";
  el.hidden = !message;
  el.classList.toggle("error", Boolean(message) && isError);
}

function askToken() {
  const form = document.getElementById("token-form");
  if (form.hidden) {
    form.hidden = false;
    document.getElementById("token").focus();
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  let resp;
  try {
    resp = await fetch(path, { ...options, headers });
  } catch (exc) {
    throw new ApiError("the service cannot be reached", 0);
  }
  const text = await resp.text();
  let body = null;
  try { body = JSON.parse(text); } catch (exc) { body = null; }
  if (resp.status === 401) {
    if (sessionStorage.getItem(TOKEN_KEY) === token) askToken(); // not for a call sent with a token since replaced
    throw new ApiError("the API token is needed: enter it above", 401);
  }
  if (!resp.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `${resp.status} ${resp.statusText}`;
    throw new ApiError(message.split("\n")[0].slice(0, 300), resp.status);
  }
  return body === null ? text : body;
}

function fmt(value, kind) {
  if (value === null || value === undefined) return "–";
  if (kind === "share") return (100 * value).toFixed(1) + " %";
  if (kind === "money") return value.toLocaleString(LOCALE, { maximumFractionDigits: 0 });
  if (typeof value === "number") return value.toLocaleString(LOCALE, { maximumFractionDigits: 3 });
  return String(value);
}

function layout(title, extra = {}) {
  return { title: { text: title, font: { size: 14 } }, margin: { l: 55, r: 20, t: 40, b: 60 }, ...extra };
}

function plot(id, traces, lay) {
  return Plotly.react(id, traces, lay, PLOT_CONFIG);
}

function emptyChart(id, reason) {
  const el = document.getElementById(id);
  Plotly.purge(el);
  el.textContent = `${el.dataset.title || ""}: ${reason}`;
}

// ---- KPIs ----

const HEADLINE = [
  ["orders", "orders", null], ["customers", "customers", null], ["net_revenue", "net revenue", "money"],
  ["average_order_value", "average order value", null], ["churn_rate", "churn rate", "share"], ["return_rate", "return rate", "share"],
];

async function loadKpis() {
  let kpis;
  const picker = document.getElementById("kpi-choice");
  const chosen = picker.dataset.chosen; // set once the user has picked: the configured source or the last upload
  try {
    kpis = await api("/dashboard/api/kpis" + (chosen ? `?source=${encodeURIComponent(chosen)}` : ""));
  } catch (exc) {
    show("kpi-message", exc.message);
    return;
  }
  const choices = kpis.choices || {};
  document.getElementById("kpi-choice-label").hidden = !(choices.configured && choices.upload);
  picker.value = kpis.showing || "configured";
  const when = kpis.uploaded_at ? ` (uploaded ${kpis.uploaded_at})` : "";
  document.getElementById("kpi-source").textContent = kpis.source ? `source: ${kpis.source}${when}` : "";
  if (kpis.status !== "ok") {
    show("kpi-message", kpis.message, kpis.status === "error");
    return;
  }
  show("kpi-message", "");
  document.getElementById("headline").replaceChildren(...HEADLINE.filter(([key]) => key in kpis.headline).map(([key, label, kind]) => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.kpi = key;
    tile.innerHTML = '<div class="value"></div><div class="label"></div>';
    tile.querySelector(".value").textContent = fmt(kpis.headline[key], kind);
    tile.querySelector(".label").textContent = label;
    return tile;
  }));
  drawRevenue(kpis.revenue);
  drawCohorts(kpis.cohorts);
  drawRfm(kpis.rfm);
  drawReturns(kpis.returns);
}

function drawRevenue(part) {
  if (!part.rows.length) return emptyChart("chart-revenue", part.reason || "no periods");
  const x = part.rows.map((r) => r.start);
  plot("chart-revenue", [
    { type: "bar", name: "revenue", x, y: part.rows.map((r) => r.revenue), marker: { color: "#60a5fa" } },
    { type: "scatter", mode: "lines+markers", name: "net revenue", x, y: part.rows.map((r) => r.net_revenue), line: { color: "#1d4ed8" } },
  ], layout("Revenue over time", { legend: { orientation: "h" } }));
}

function drawCohorts(part) {
  if (!part.rows.length) return emptyChart("chart-cohorts", part.reason || "no cohorts");
  const months = Object.keys(part.rows[0]).filter((k) => /^m\d+$/.test(k));
  plot("chart-cohorts", [{
    type: "heatmap", x: months, y: part.rows.map((r) => `${r.cohort} (${r.customers})`),
    z: part.rows.map((r) => months.map((m) => r[m])), colorscale: "Blues", reversescale: true, zmin: 0, zmax: 1,
    hovertemplate: "cohort %{y}<br>%{x}: %{z:.1%}<extra></extra>",
  }], layout("Cohort retention (share of the cohort buying in month n)", { yaxis: { autorange: "reversed" }, margin: { l: 100, r: 20, t: 40, b: 50 } }));
}

function drawRfm(part) {
  if (!part.rows.length) return emptyChart("chart-rfm", part.reason || "no segments");
  const x = part.rows.map((r) => r.segment);
  plot("chart-rfm", [
    { type: "bar", name: "customers", x, y: part.rows.map((r) => r.customers), marker: { color: "#34d399" } },
    { type: "scatter", mode: "markers", name: "revenue share", x, y: part.rows.map((r) => r.revenue_share), yaxis: "y2", marker: { size: 10, color: "#065f46" } },
  ], layout("RFM segments", {
    yaxis: { title: { text: "customers" } }, yaxis2: { overlaying: "y", side: "right", tickformat: ".0%", rangemode: "tozero" },
    legend: { orientation: "h", y: 1.12 }, margin: { l: 55, r: 50, t: 60, b: 110 },
  }));
}

function drawReturns(part) {
  if (!part.rows.length) return emptyChart("chart-returns", part.reason || "no returns by category");
  plot("chart-returns", [{
    type: "bar", x: part.rows.map((r) => r.category), y: part.rows.map((r) => r.return_rate),
    marker: { color: "#f87171" }, hovertemplate: "%{x}: %{y:.1%} of units returned<extra></extra>",
  }], layout("Return rates by category", { yaxis: { tickformat: ".0%" } }));
}

// ---- models, counters and drift ----

function counts(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^ecomlab_(model_requests|prediction_errors)_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    const key = `${labels.model}/${labels.version}`;
    out[key] = out[key] || { requests: 0, errors: 0 };
    out[key][m[1] === "model_requests" ? "requests" : "errors"] += Number(m[3]);
  }
  return out;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function link(td, href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.target = "_blank";
  a.rel = "noopener";
  td.appendChild(a);
}

async function loadModels() {
  let facts, drift, metrics;
  try {
    [facts, drift] = await Promise.all([api("/dashboard/api/models"), api("/drift")]);
  } catch (exc) {
    show("models-message", exc.message);
    return;
  }
  try {
    metrics = counts(await api("/metrics"));
  } catch (exc) {
    metrics = null;
  }
  show("models-message", "");
  const byFamily = Object.fromEntries(drift.models.map((m) => [m.family, m]));
  const body = document.querySelector("#model-table tbody");
  body.replaceChildren(...facts.models.map((m) => modelRow(m, byFamily[m.family], metrics)));
  show("drift-message", drift.enabled ? "" : "Drift tracking is off (drift.enabled: false).", false);
  drawDrift(drift);
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function modelRow(m, drift, metrics) {
  const tr = document.createElement("tr");
  tr.dataset.family = m.family;
  cell(tr, m.family);
  cell(tr, m.name);
  cell(tr, m.version ?? "–", "version");
  cell(tr, m.alias);
  cell(tr, m.error ? `${m.status}: ${m.error.split("\n")[0]}` : m.status, "status");
  const metricText = Object.entries(m.metrics).map(([k, v]) => `${k.replace(/^best_/, "")} ${fmt(v)}`);
  cell(tr, metricText.slice(0, KEY_METRICS).join(", ") || "–", "metrics").title = metricText.join("\n");
  cell(tr, m.decision || "–");
  cell(tr, m.loaded_at ? new Date(m.loaded_at).toLocaleString() : "–");
  const c = metrics && m.version ? metrics[`${m.name}/${m.version}`] || { requests: 0, errors: 0 } : null;
  cell(tr, c ? fmt(c.requests) : "–", "requests");
  cell(tr, c ? fmt(c.errors) : "–", "errors");
  const status = drift ? drift.status : "–";
  cell(tr, status, "drift status-" + status.replace(/\s+/g, "-"));
  const links = cell(tr, "");
  if (m.run_url) link(links, m.run_url, "run");
  if (m.version_url) { if (m.run_url) links.append(" · "); link(links, m.version_url, "version"); }
  if (!links.childNodes.length) links.textContent = "–";
  return tr;
}

const STATUS_COLOURS = { ok: "#22c55e", warn: "#f59e0b", alert: "#ef4444", insufficient: "#9ca3af" };

function drawDrift(drift) {
  const box = document.getElementById("drift-charts");
  for (const m of drift.models) { // every chart's cell first, so each is drawn at its final width
    if (!document.getElementById(`drift-${m.family}`)) {
      const el = document.createElement("div");
      el.id = `drift-${m.family}`;
      el.className = "chart drift-chart";
      box.appendChild(el);
    }
  }
  for (const m of drift.models) {
    const id = `drift-${m.family}`;
    const features = m.features;
    const title = `${m.family} v${m.version ?? "–"} input drift: ${m.status}<br><sub>${m.window} rows in the window; PSI from ${drift.min_window} rows</sub>`;
    const lines = [[drift.warn_psi, "#f59e0b"], [drift.alert_psi, "#ef4444"]].map(([y, color]) => ({
      type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { color, dash: "dash", width: 1.5 },
    }));
    plot(id, [{
      type: "bar", x: features.map((f) => f.feature), y: features.map((f) => f.psi),
      marker: { color: features.map((f) => STATUS_COLOURS[f.status] || "#9ca3af") },
      customdata: features.map((f) => [f.status, f.window, f.p_value === null ? "–" : f.p_value.toPrecision(3), f.test]),
      hovertemplate: "%{x}: PSI %{y:.3f}<br>%{customdata[0]}, %{customdata[1]} rows<br>%{customdata[3]} p %{customdata[2]}<extra></extra>",
    }], layout(title, { shapes: lines, yaxis: { title: { text: "PSI" }, rangemode: "tozero" }, margin: { l: 55, r: 20, t: 60, b: 60 } }));
  }
}

// ---- forecasts ----

async function loadSeries() {
  const select = document.getElementById("series");
  let detail;
  try {
    detail = await api("/models/forecaster");
  } catch (exc) {
    show("forecast-message", exc.status === 404 ? "No forecaster is served." : exc.message);
    return;
  }
  if (!detail.series_ids || !detail.series_ids.length) {
    show("forecast-message", `The forecaster is ${detail.status}${detail.error ? ": " + detail.error.split("\n")[0] : ""}.`);
    return;
  }
  show("forecast-message", "");
  const chosen = select.value;
  select.replaceChildren(...detail.series_ids.map((s) => new Option(s, s)));
  if (detail.series_ids.includes(chosen)) select.value = chosen;
  await drawForecast(select.value);
}

async function drawForecast(series) {
  let answer;
  try {
    answer = await api("/forecast", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ queries: [{ series_id: series, horizon: HORIZON }] }),
    });
  } catch (exc) {
    show("forecast-message", exc.message);
    return;
  }
  show("forecast-message", "");
  const fc = answer.forecasts[0];
  const x = fc.points.map((p) => p.ds);
  const levels = [...new Set(fc.points.flatMap((p) => Object.keys(p.intervals)))].sort((a, b) => Number(b) - Number(a));
  const bands = levels.flatMap((level, i) => {
    const band = (j) => fc.points.map((p) => (p.intervals[level] ? p.intervals[level][j] : null));
    const fill = `rgba(37, 99, 235, ${0.12 + 0.12 * i})`;
    return [
      { type: "scatter", mode: "lines", x, y: band(0), line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
      { type: "scatter", mode: "lines", x, y: band(1), line: { width: 0 }, fill: "tonexty", fillcolor: fill, name: `${level}% interval` },
    ];
  });
  const mean = { type: "scatter", mode: "lines+markers", x, y: fc.points.map((p) => p.yhat), name: "forecast", line: { color: "#1d4ed8" } };
  await plot("chart-forecast", [...bands, mean], layout(`${fc.series_id}: ${fc.model}, v${answer.version}`, { legend: { orientation: "h" } }));
}

// ---- start ----

let refreshes = 0;

function refreshAll() { // body[data-refreshed] counts the finished rounds: a test waits for one, not for a time
  return Promise.all([loadKpis(), loadModels(), loadSeries()]).then(() => {
    refreshes += 1;
    document.body.dataset.refreshed = String(refreshes);
  });
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  document.getElementById("token-form").hidden = true;
  refreshAll();
});
document.getElementById("series").addEventListener("change", (event) => drawForecast(event.target.value));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  show("models-message", "The page failed to update: " + String(event.reason && event.reason.message || event.reason).split("\n")[0]);
});

refreshAll();
setInterval(() => { if (document.getElementById("token-form").hidden) loadModels(); }, REFRESH_MS);
document.getElementById("kpi-choice").addEventListener("change", (event) => {
  event.target.dataset.chosen = event.target.value;
  loadKpis();
}); // not while asking for the token
