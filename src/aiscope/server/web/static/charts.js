// Small SVG charts for the dashboard: a time-series line chart and a horizontal bar chart.
// Every label is set with textContent (never parsed as HTML): series names are user data.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
    "#db2777", "#4b5563", "#65a30d", "#ea580c"];

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(x, y, value, attrs, parent) {
    const node = svg("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = value;
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    return span > 2 * 86400 ? (d.getMonth() + 1) + "/" + d.getDate() + " " + hm : hm;
  }

  function legend(items) {
    const box = document.createElement("div");
    box.className = "legend";
    items.forEach((label, i) => {
      const item = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = PALETTE[i % PALETTE.length];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(label));
      box.appendChild(item);
    });
    return box;
  }

  function empty(container, message) {
    const p = document.createElement("div");
    p.className = "empty";
    p.textContent = message || "no data in this range";
    container.appendChild(p);
  }

  // series: [{label, values: [number|null]}] over timestamps (Unix seconds).
  function lineChart(container, timestamps, series, format) {
    const fmt = format || ((v) => String(Math.round(v * 1000) / 1000));
    const W = 520, H = 200, L = 56, R = 10, T = 10, B = 24;
    const all = [];
    series.forEach((s) => s.values.forEach((v) => { if (v !== null && v !== undefined) all.push(v); }));
    if (!series.length || !all.length) { empty(container); return null; }
    const yMax = 4 * niceMax(Math.max.apply(null, all) / 4); // four round ticks
    // tick labels: the caller's format unless it would print equal labels for unequal ticks
    const ticks = [0, 1, 2, 3, 4].map((i) => fmt((yMax * i) / 4));
    const axis = new Set(ticks).size === 5 ? fmt : (v) => String(Number(v.toPrecision(3)));
    const t0 = timestamps[0], t1 = timestamps[timestamps.length - 1];
    const span = Math.max(t1 - t0, 1);
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const y = (v) => T + (1 - v / yMax) * (H - T - B);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart line-chart", role: "img" });
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, root);
      text(L - 4, y(v) + 3, axis(v), { "text-anchor": "end" }, root);
    }
    for (let i = 0; i < 5; i++) {
      const t = t0 + (span * i) / 4;
      text(x(t), H - 6, timeLabel(t, span), { "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, root);
    }
    series.forEach((s, si) => {
      const color = PALETTE[si % PALETTE.length];
      const kept = [];
      let d = "", pen = "M";
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = "M"; return; }
        d += `${pen}${x(timestamps[i]).toFixed(1)},${y(v).toFixed(1)} `;
        pen = "L";
        kept.push([timestamps[i], v]);
      });
      const path = svg("path", { d: d.trim(), fill: "none", stroke: color, "stroke-width": 1.6,
        class: "series", "data-points": kept.length }, root);
      path.dataset.series = s.label;
      for (const [t, v] of kept) {
        const dot = svg("circle", { cx: x(t), cy: y(v), r: 2.2, fill: color, class: "point" }, root);
        const tip = svg("title", {}, dot);
        tip.textContent = `${s.label}: ${fmt(v)} at ${new Date(t * 1000).toLocaleString()}`;
      }
    });
    container.appendChild(root);
    container.appendChild(legend(series.map((s) => s.label)));
    return root;
  }

  // items: [{label, value}] drawn as horizontal bars, largest first.
  function barChart(container, items, format) {
    const fmt = format || ((v) => String(v));
    const rows = items.filter((it) => it.value !== null && it.value !== undefined);
    if (!rows.length) { empty(container); return null; }
    const W = 520, rowH = 20, L = 150, R = 90;
    const H = rows.length * rowH + 6;
    const max = Math.max.apply(null, rows.map((r) => r.value)) || 1;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart bar-chart", role: "img" });
    rows.forEach((r, i) => {
      const yy = 3 + i * rowH;
      const label = text(L - 6, yy + 13, r.label.length > 24 ? r.label.slice(0, 23) + "…" : r.label,
        { "text-anchor": "end" }, root);
      const full = svg("title", {}, label);
      full.textContent = r.label;
      const w = Math.max((r.value / max) * (W - L - R), r.value > 0 ? 1 : 0);
      svg("rect", { x: L, y: yy + 2, width: w.toFixed(1), height: rowH - 6,
        fill: PALETTE[i % PALETTE.length], class: "bar" }, root);
      text(L + w + 4, yy + 13, fmt(r.value), {}, root);
    });
    container.appendChild(root);
    return root;
  }

  window.AiCharts = { lineChart: lineChart, barChart: barChart, palette: PALETTE };
})();
