// The aiscope dashboard: overview (five rows), calls, trace, feedback and alerts views over
// the server's query API. Every string from the API is inserted with textContent or
// createTextNode, never as HTML: model names, tags and span names are user data.
"use strict";
(function () {
  const C = window.AiCharts;
  const KEY = "aiscope.key";
  const view = document.getElementById("view");
  const statusLine = document.getElementById("status");
  let generation = 0; // a newer render makes an older one's late answers drop out

  // ---- DOM helpers -------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k === "data") Object.assign(node.dataset, v);
      else if (k === "onclick") node.addEventListener("click", v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function panel(title, id) {
    const body = el("div", { class: "panel-body" });
    const box = el("div", { class: "panel", id: id }, el("h3", {}, title), body);
    return [box, body];
  }

  function table(headers, rows, opts) {
    const o = opts || {};
    if (!rows.length) return el("div", { class: "empty" }, o.empty || "nothing in this range");
    const head = el("tr", {}, ...headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label)));
    const body = el("tbody", {});
    rows.forEach((r) => {
      const tr = el("tr", { class: o.onRow ? "clickable" : null, data: o.rowData ? o.rowData(r) : null });
      headers.forEach((h) => {
        const v = h.get(r);
        tr.appendChild(el("td", { class: (h.num ? "num " : "") + (h.cls ? h.cls(r) : ""), "data-col": h.key },
          v instanceof Node ? v : v === null || v === undefined ? "" : String(v)));
      });
      if (o.onRow) tr.addEventListener("click", () => o.onRow(r, tr));
      body.appendChild(tr);
    });
    return el("table", { id: o.id }, el("thead", {}, head), body);
  }

  // ---- formatting --------------------------------------------------------------------
  const usd = (v) => (v === null || v === undefined ? "—" : "$" + Number(v).toFixed(6));
  const int = (v) => (v === null || v === undefined ? "—" : String(Math.round(v)));
  const ms = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(1) + " ms");
  const num = (v, d) => (v === null || v === undefined ? "—" : Number(v).toFixed(d === undefined ? 3 : d));
  const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
  const when = (t) => new Date(t * 1000).toLocaleString();

  // ---- state: time range and key -----------------------------------------------------
  const rangeSel = document.getElementById("range");
  const custom = document.getElementById("custom-range");
  const startIn = document.getElementById("range-start");
  const endIn = document.getElementById("range-end");

  function timeRange() {
    if (rangeSel.value === "custom") {
      const s = Date.parse(startIn.value) / 1000, e = Date.parse(endIn.value) / 1000;
      if (isFinite(s) && isFinite(e) && e > s) return { start: s, end: e };
      setStatus("custom range: give a start before the end", true);
    }
    const span = Number(rangeSel.value === "custom" ? 3600 : rangeSel.value);
    const end = Math.ceil(Date.now() / 60000) * 60; // a whole minute, so buckets line up
    return { start: end - span, end: end };
  }

  function setStatus(message, isError) {
    statusLine.textContent = message || "";
    statusLine.className = isError ? "error" : "";
  }

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, params, optional) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v === null || v === undefined || v === "") continue;
      for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(one));
    }
    const headers = { accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.authorization = "Bearer " + key;
    const r = await fetch(url, { headers: headers });
    if (optional && r.status === 404) return null; // endpoint not there: show "none"
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : r.statusText;
      throw new ApiError(r.status, detail);
    }
    return body;
  }

  function failed(err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      setStatus(`${err.status}: ${err.message} — enter the project's secret key above`, true);
    } else {
      setStatus(String(err.message || err), true);
    }
  }

  // ---- overview: the five rows ---------------------------------------------------------
  function seriesOf(ts, withQuantile) {
    return ts.series.map((s) => ({ label: withQuantile && s.quantile ? `${s.key} ${s.quantile}` : s.key, values: s.values }));
  }

  function row(title, id) {
    const panels = el("div", { class: "panels" });
    const section = el("section", { class: "row", id: id }, el("h2", {}, title), panels);
    view.appendChild(section);
    return { section: section, panels: panels };
  }

  function add(rowObj, title, id, wide) {
    const [box, body] = panel(title, id);
    if (wide) box.classList.add("wide");
    rowObj.panels.appendChild(box);
    return body;
  }

  async function overview(gen) {
    const r = timeRange();
    const ts = (metric, group_by, extra) => api("/api/timeseries", Object.assign({ metric: metric, group_by: group_by, start: r.start, end: r.end }, extra || {}));
    const [byModel, byFeature, byTeam, latency, costTs, latAll, latModel, tokType, tokModel, callsTs, errTs, callsAll, ttft, fb, alerts, budgets] = await Promise.all([
      api("/api/cost", { group_by: "model", start: r.start, end: r.end }),
      api("/api/cost", { group_by: "feature", start: r.start, end: r.end }),
      api("/api/cost", { group_by: "team", start: r.start, end: r.end }),
      api("/api/latency", { start: r.start, end: r.end }),
      ts("cost", "model"),
      ts("latency", "none"),
      ts("latency", "model", { q: 0.95 }),
      ts("tokens", "type"),
      ts("tokens", "model"),
      ts("calls", "model"),
      ts("errors", "none"),
      ts("calls", "none"),
      ts("ttft", "model", { q: 0.95 }),
      api("/api/feedback", { start: r.start, end: r.end, limit: 1 }),
      api("/api/alerts", {}, true),
      api("/api/budgets", {}, true),
    ]);
    if (gen !== generation) return;
    view.replaceChildren();

    // 1. cost overview
    const cost = row("Cost overview", "row-cost");
    const total = byModel.rows.reduce((a, x) => a + x.cost_usd, 0);
    const calls = byModel.rows.reduce((a, x) => a + x.calls, 0);
    const unpriced = byModel.rows.reduce((a, x) => a + x.unpriced_calls, 0);
    const tiles = el("div", { class: "tiles" },
      tile("Total spend", usd(total), "total-spend"),
      tile("Calls", int(calls), "total-calls"),
      tile("Cost per request", calls ? usd(total / calls) : "—", "cost-per-request"),
      tile("Calls without a price", int(unpriced), "unpriced"));
    cost.section.insertBefore(tiles, cost.panels);
    add(cost, "Spend by model", null, true).appendChild(table([
      { label: "Model", key: "model", get: (x) => x.model },
      { label: "Calls", key: "calls", num: true, get: (x) => int(x.calls) },
      { label: "Errors", key: "errors", num: true, get: (x) => int(x.errors) },
      { label: "Input tokens", key: "input_tokens", num: true, get: (x) => int(x.input_tokens) },
      { label: "Output tokens", key: "output_tokens", num: true, get: (x) => int(x.output_tokens) },
      { label: "Cost", key: "cost", num: true, get: (x) => usd(x.cost_usd) },
    ], byModel.rows, { id: "cost-by-model", rowData: (x) => ({ model: x.model }) }));
    C.lineChart(add(cost, "Spend over time by model (USD per bucket)", "chart-cost"), costTs.timestamps, seriesOf(costTs), (v) => "$" + v.toPrecision(3));
    C.barChart(add(cost, "Spend by feature"), byFeature.rows.map((x) => ({ label: x.feature || "(none)", value: x.cost_usd })), usd);
    C.barChart(add(cost, "Spend by team"), byTeam.rows.map((x) => ({ label: x.team || "(none)", value: x.cost_usd })), usd);
    const budgetBody = add(cost, "Budgets", "budgets");
    if (!budgets || !budgets.budgets || !budgets.budgets.length) budgetBody.appendChild(el("div", { class: "empty" }, "no budgets"));
    else budgetBody.appendChild(budgetTable(budgets.budgets));

    // 2. latency
    const lat = row("Latency", "row-latency");
    C.lineChart(add(lat, "Latency p50 / p95 / p99, all models (ms)", "chart-latency"), latAll.timestamps,
      latAll.series.map((s) => ({ label: s.quantile, values: s.values })), (v) => v.toFixed(0));
    C.lineChart(add(lat, "p95 latency by model (ms)"), latModel.timestamps, seriesOf(latModel), (v) => v.toFixed(0));
    add(lat, "Percentiles by model over the range", null, true).appendChild(table([
      { label: "Model", key: "model", get: (x) => x.model },
      { label: "Calls", key: "count", num: true, get: (x) => int(x.count) },
      { label: "p50", key: "p50", num: true, get: (x) => ms(x.quantiles.p50) },
      { label: "p95", key: "p95", num: true, get: (x) => ms(x.quantiles.p95) },
      { label: "p99", key: "p99", num: true, get: (x) => ms(x.quantiles.p99) },
    ], latency.rows, { id: "latency-by-model" }));

    // 3. tokens
    const tok = row("Token usage", "row-tokens");
    C.lineChart(add(tok, "Tokens by type", "chart-tokens"), tokType.timestamps, seriesOf(tokType), (v) => v.toFixed(0));
    C.lineChart(add(tok, "Tokens (input + output) by model"), tokModel.timestamps, seriesOf(tokModel), (v) => v.toFixed(0));
    add(tok, "Tokens per request by model", null, true).appendChild(table([
      { label: "Model", key: "model", get: (x) => x.model },
      { label: "Tokens / request", key: "per_request", num: true, get: (x) => num((x.input_tokens + x.output_tokens) / x.calls, 1) },
      { label: "Input / output", key: "ratio", num: true, get: (x) => (x.output_tokens ? num(x.input_tokens / x.output_tokens, 2) : "—") },
      { label: "Cached share of input", key: "cached", num: true, get: (x) => (x.input_tokens ? pct(x.cache_read_tokens / x.input_tokens) : "—") },
    ], byModel.rows.filter((x) => x.calls > 0)));

    // 4. quality
    const q = row("Quality", "row-quality");
    C.lineChart(add(q, "Average score over time, by name", "chart-quality"), fb.timestamps,
      fb.series.map((s) => ({ label: s.key, values: s.values })), (v) => v.toFixed(2));
    C.barChart(add(q, "Average score by model"), fb.by_model.map((x) => ({ label: `${x.name} · ${x.model}`, value: x.avg_score })), (v) => num(v, 3));
    C.barChart(add(q, "Average score by feature"), fb.by_feature.map((x) => ({ label: `${x.name} · ${x.feature || "(none)"}`, value: x.avg_score })), (v) => num(v, 3));
    add(q, "Scores by name").appendChild(table([
      { label: "Name", key: "name", get: (x) => x.name },
      { label: "Count", key: "count", num: true, get: (x) => int(x.count) },
      { label: "Average", key: "avg", num: true, get: (x) => num(x.avg_score) },
      { label: "Min", key: "min", num: true, get: (x) => num(x.min_score) },
      { label: "Max", key: "max", num: true, get: (x) => num(x.max_score) },
    ], fb.by_name, { empty: "no feedback in this range" }));

    // 5. operational health
    const op = row("Operational health", "row-health");
    const perMin = callsTs.step / 60;
    C.lineChart(add(op, "Requests per minute by model", "chart-requests"), callsTs.timestamps,
      callsTs.series.map((s) => ({ label: s.key, values: s.values.map((v) => v / perMin) })), (v) => v.toFixed(2));
    const allCalls = callsAll.series.length ? callsAll.series[0].values : [];
    const allErrors = errTs.series.length ? errTs.series[0].values : [];
    C.lineChart(add(op, "Error rate", "chart-errors"), errTs.timestamps,
      allCalls.length ? [{ label: "errors / calls", values: allCalls.map((n, i) => (n ? (allErrors[i] || 0) / n : null)) }] : [], pct);
    C.lineChart(add(op, "Time to first token p95 by model (ms, streamed calls)"), ttft.timestamps, seriesOf(ttft), (v) => v.toFixed(0));
    const alertBody = add(op, "Active alerts", "active-alerts");
    alertBody.appendChild(alerts && alerts.alerts && alerts.alerts.length ? alertTable(alerts.alerts) : el("div", { class: "empty" }, "no alerts"));
  }

  function tile(label, value, id) {
    return el("div", { class: "tile", id: id }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
  }

  function alertTable(alerts) {
    return table([
      { label: "Alert", key: "name", get: (a) => a.name },
      { label: "Severity", key: "severity", get: (a) => a.severity },
      { label: "State", key: "state", get: (a) => a.state, cls: (a) => "state-" + (a.state === "firing" ? "firing" : "pending") },
      { label: "Since", key: "since", get: (a) => (a.since ? when(a.since) : "—") },
      { label: "Value", key: "value", num: true, get: (a) => num(a.value) },
      { label: "Summary", key: "summary", get: (a) => a.summary },
    ], alerts, { id: "alerts-table" });
  }

  function budgetTable(budgets) {
    return table([
      { label: "Budget", key: "name", get: (b) => b.name },
      { label: "Period", key: "period", get: (b) => b.period },
      { label: "Mode", key: "mode", get: (b) => b.mode },
      { label: "Limit", key: "limit", num: true, get: (b) => usd(b.limit_usd) },
      { label: "Spent", key: "spent", num: true, get: (b) => usd(b.spent_usd) },
      { label: "Remaining", key: "remaining", num: true, get: (b) => usd(b.remaining_usd) },
      { label: "Reserved now", key: "reserved", num: true, get: (b) => (b.reserved_usd == null ? "—" : usd(b.reserved_usd)) },
      { label: "Used", key: "used", num: true, get: (b) => (b.limit_usd ? pct(b.spent_usd / b.limit_usd) : "—") },
    ], budgets, { id: "budgets-table" });
  }

  // ---- calls -------------------------------------------------------------------------
  const FILTERS = ["model", "provider", "feature", "team", "status"];
  const callsState = { filters: {}, cursors: [null] };

  async function callsView(gen) {
    const r = timeRange();
    const form = el("form", { class: "filters", id: "call-filters" });
    for (const f of FILTERS) {
      let input;
      if (f === "status") {
        input = el("select", { name: f }, el("option", { value: "" }, "any"), el("option", { value: "ok" }, "ok"), el("option", { value: "error" }, "error"));
      } else {
        input = el("input", { name: f, type: "text", size: 14 });
      }
      input.value = callsState.filters[f] || "";
      form.appendChild(el("label", {}, f, input));
    }
    form.appendChild(el("button", { type: "submit" }, "Filter"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      callsState.filters = {};
      for (const f of FILTERS) if (data.get(f)) callsState.filters[f] = String(data.get(f));
      callsState.cursors = [null];
      render();
    });
    const page = callsState.cursors.length - 1;
    const cursor = callsState.cursors[page];
    const body = await api("/api/calls", Object.assign({ start: r.start, end: r.end, limit: 50, cursor: cursor }, callsState.filters));
    if (gen !== generation) return;
    view.replaceChildren(form);
    view.appendChild(table([
      { label: "Time", key: "time", get: (c) => when(c.start_ts) },
      { label: "Model", key: "model", get: (c) => c.model },
      { label: "Provider", key: "provider", get: (c) => c.provider },
      { label: "Operation", key: "operation", get: (c) => c.operation },
      { label: "Feature", key: "feature", get: (c) => c.feature },
      { label: "Team", key: "team", get: (c) => c.team },
      { label: "Status", key: "status", get: (c) => (c.error_type ? `${c.status} (${c.error_type})` : c.status), cls: (c) => "status-" + (c.status === "error" ? "error" : "ok") },
      { label: "Latency", key: "latency", num: true, get: (c) => ms(c.latency_ms) },
      { label: "TTFT", key: "ttft", num: true, get: (c) => ms(c.ttft_ms) },
      { label: "In", key: "input", num: true, get: (c) => int(c.input_tokens) },
      { label: "Out", key: "output", num: true, get: (c) => int(c.output_tokens) },
      { label: "Cost", key: "cost", num: true, get: (c) => usd(c.cost_usd) },
    ], body.items, {
      id: "calls-table",
      empty: "no calls match",
      rowData: (c) => ({ traceId: c.trace_id || "", spanId: c.span_id || "" }),
      onRow: (c) => { if (c.trace_id) location.hash = "#/trace/" + encodeURIComponent(c.trace_id) + "/" + encodeURIComponent(c.span_id || ""); },
    }));
    const pager = el("div", { class: "pager" });
    const newer = el("button", { type: "button", id: "newer" }, "← Newer");
    newer.disabled = page === 0;
    newer.addEventListener("click", () => { callsState.cursors.pop(); render(); });
    const older = el("button", { type: "button", id: "older" }, "Older →");
    older.disabled = !body.next_cursor;
    older.addEventListener("click", () => { callsState.cursors.push(body.next_cursor); render(); });
    pager.append(newer, el("span", {}, `page ${page + 1}`), older);
    view.appendChild(pager);
  }

  // ---- trace -------------------------------------------------------------------------
  async function traceView(gen, traceId, spanId) {
    const body = await api("/api/traces/" + encodeURIComponent(traceId));
    if (gen !== generation) return;
    const flat = [];
    const walk = (node, depth) => { flat.push([node, depth]); node.children.forEach((c) => walk(c, depth + 1)); };
    body.roots.forEach((n) => walk(n, 0));
    const t0 = Math.min(...flat.map(([n]) => n.start_ts));
    const t1 = Math.max(...flat.map(([n]) => n.end_ts));
    const span = Math.max(t1 - t0, 1e-6);
    const details = el("div", { class: "panel", id: "span-details" });
    const tbody = el("tbody", {});
    const show = (node, tr) => {
      tbody.querySelectorAll("tr.selected").forEach((x) => x.classList.remove("selected"));
      tr.classList.add("selected");
      details.replaceChildren(el("h3", {}, node.name), attrList(node));
    };
    let first = null;
    for (const [node, depth] of flat) {
      const bar = el("div", { class: "bar" + (node.status === "error" ? " error" : "") });
      bar.style.left = (((node.start_ts - t0) / span) * 100).toFixed(2) + "%";
      bar.style.width = (((node.end_ts - node.start_ts) / span) * 100).toFixed(2) + "%";
      const name = el("td", { class: "span-name", "data-depth": depth }, node.name);
      name.style.paddingLeft = 6 + depth * 18 + "px";
      const c = node.call;
      const tr = el("tr", { class: "clickable span-row", data: { spanId: node.span_id, depth: String(depth) } },
        name,
        el("td", {}, c ? `${c.provider} / ${c.model}` : node.service_name || ""),
        el("td", { class: "num" }, ms((node.end_ts - node.start_ts) * 1000)),
        el("td", { class: "num" }, c ? `${int(c.input_tokens)} / ${int(c.output_tokens)}` : ""),
        el("td", { class: "num" }, c ? usd(c.cost_usd) : ""),
        el("td", { class: "bar-cell" }, bar));
      tr.addEventListener("click", () => show(node, tr));
      tbody.appendChild(tr);
      if (first === null || node.span_id === spanId) first = [node, tr];
    }
    view.replaceChildren(
      el("h2", {}, "Trace ", el("code", { id: "trace-id" }, body.trace_id)),
      el("p", {}, `${flat.length} spans, ${ms(span * 1000)}`),
      el("table", { class: "waterfall", id: "trace-tree" },
        el("thead", {}, el("tr", {}, el("th", {}, "Span"), el("th", {}, "Model / service"), el("th", { class: "num" }, "Duration"),
          el("th", { class: "num" }, "Tokens in / out"), el("th", { class: "num" }, "Cost"), el("th", {}, "Timeline"))),
        tbody),
      details);
    if (first) show(first[0], first[1]);
  }

  function attrList(node) {
    const dl = el("dl", { class: "attrs" });
    const put = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))); };
    put("span id", node.span_id);
    put("status", node.status);
    put("start", when(node.start_ts));
    const fields = node.call || node.attributes || {};
    for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) put(k, v);
    return dl;
  }

  // ---- feedback and alerts -------------------------------------------------------------
  async function feedbackView(gen) {
    const r = timeRange();
    const body = await api("/api/feedback", { start: r.start, end: r.end, limit: 200 });
    if (gen !== generation) return;
    view.replaceChildren(
      el("h2", {}, "Scores by name"),
      table([
        { label: "Name", key: "name", get: (x) => x.name },
        { label: "Count", key: "count", num: true, get: (x) => int(x.count) },
        { label: "Average", key: "avg", num: true, get: (x) => num(x.avg_score) },
      ], body.by_name, { empty: "no feedback in this range" }),
      el("h2", {}, "Latest feedback"),
      table([
        { label: "Time", key: "time", get: (x) => when(x.created_ts) },
        { label: "Name", key: "name", get: (x) => x.name },
        { label: "Score", key: "score", num: true, get: (x) => num(x.score) },
        { label: "Comment", key: "comment", get: (x) => x.comment },
        { label: "Trace", key: "trace", get: (x) => (x.trace_id ? el("a", { href: "#/trace/" + encodeURIComponent(x.trace_id) + "/" + encodeURIComponent(x.span_id || "") }, x.trace_id.slice(0, 12)) : x.request_id) },
      ], body.items, { id: "feedback-table", empty: "no feedback in this range" }));
  }

  async function alertsView(gen) {
    const [alerts, budgets] = await Promise.all([api("/api/alerts", {}, true), api("/api/budgets", {}, true)]);
    if (gen !== generation) return;
    view.replaceChildren(
      el("h2", {}, "Alerts"),
      alerts && alerts.alerts && alerts.alerts.length ? alertTable(alerts.alerts) : el("div", { class: "empty", id: "no-alerts" }, "no alerts"),
      el("h2", {}, "Budgets"),
      budgets && budgets.budgets && budgets.budgets.length ? budgetTable(budgets.budgets) : el("div", { class: "empty", id: "no-budgets" }, "no budgets"));
  }

  // ---- routing -----------------------------------------------------------------------
  async function render() {
    const gen = ++generation;
    const parts = (location.hash.replace(/^#\/?/, "") || "overview").split("/").map(decodeURIComponent);
    const name = parts[0];
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
    setStatus("loading…");
    document.body.dataset.state = "loading";
    try {
      if (name === "calls") await callsView(gen);
      else if (name === "trace" && parts[1]) await traceView(gen, parts[1], parts[2] || "");
      else if (name === "feedback") await feedbackView(gen);
      else if (name === "alerts") await alertsView(gen);
      else await overview(gen);
      if (gen === generation) setStatus("");
    } catch (err) {
      if (gen === generation) { view.replaceChildren(); failed(err); }
    } finally {
      if (gen === generation) {
        document.body.dataset.rendered = String(gen); // tests wait for a new render
        document.body.dataset.state = "ready";
      }
    }
  }

  rangeSel.addEventListener("change", () => {
    custom.hidden = rangeSel.value !== "custom";
    if (rangeSel.value === "custom" && !startIn.value) {
      const toLocal = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      endIn.value = toLocal(new Date());
      startIn.value = toLocal(new Date(Date.now() - 3600000));
    }
    callsState.cursors = [null];
    render();
  });
  document.getElementById("range-form").addEventListener("submit", (ev) => { ev.preventDefault(); callsState.cursors = [null]; render(); });
  document.getElementById("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("key");
    if (input.value.trim()) sessionStorage.setItem(KEY, input.value.trim());
    input.value = "";
    render();
  });
  document.getElementById("key-clear").addEventListener("click", () => { sessionStorage.removeItem(KEY); render(); });
  window.addEventListener("hashchange", render);
  render();
})();
