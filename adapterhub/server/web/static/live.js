// adapterhub live view: refreshes the numbers from GET /v1/stats every 2 seconds (pausable).
"use strict";
(() => {
  const status = document.getElementById("live-status");
  const toggle = document.getElementById("live-toggle");
  if (!status) return;
  const PERIOD_MS = 2000;
  let paused = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child);
    return node;
  }

  function bytes(count) {
    if (count === null || count === undefined) return "no limit";
    let value = count;
    let unit = 0;
    while (value >= 1024 && unit < 3) { value /= 1024; unit += 1; }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${["KiB", "MiB", "GiB"][unit - 1]}`;
  }

  const FORMATS = {
    bytes,
    limit: (v) => (v === null ? "no limit" : String(v)),
    mean: (v) => (v === null ? "–" : v.toFixed(1)),
    ms: (v) => (v === null ? "–" : `${v.toFixed(1)} ms`),
  };

  const lookup = (stats, path) => path.split(".").reduce((value, key) => (value == null ? value : value[key]), stats);

  function show(stats) {
    for (const node of document.querySelectorAll("[data-stat]")) {
      const value = lookup(stats, node.dataset.stat);
      const format = FORMATS[node.dataset.format] || String;
      node.textContent = format(value === undefined ? null : value);
    }
    const memory = document.getElementById("live-memory");
    memory.hidden = !stats.pool.memory_budget_bytes;  // no budget: nothing to be a share of
    memory.max = stats.pool.memory_budget_bytes || 1;
    memory.value = stats.pool.allocated_bytes;

    const batches = document.getElementById("live-batches");
    batches.replaceChildren(...stats.batch_size.buckets.map((bucket) => {
      const meter = el("meter", { min: "0", max: String(stats.batch_size.count || 1),
        value: String(bucket.count), "aria-label": `batches up to ${bucket.le} inputs` });
      return el("tr", {}, el("th", { scope: "row" }, bucket.le),
        el("td", { class: "num" }, String(bucket.count)), el("td", {}, meter));
    }));

    const residents = document.getElementById("live-residents");
    const rows = stats.resident.map((r) => el("tr", {},
      el("th", { scope: "row" }, r.id), el("td", {}, r.method), el("td", {}, r.kind),
      el("td", { class: "num" }, bytes(r.bytes)), el("td", { class: "num" }, String(r.requests)),
      el("td", { class: "num" }, `${r.load_ms.toFixed(0)} ms`)));
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", { colspan: "6" },
        "No adapter is resident yet: the first request for one loads it.")));
    }
    residents.replaceChildren(...rows);
  }

  async function refresh() {
    if (!paused) {
      try {
        const response = await fetch("/v1/stats", { headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(`${response.status}`);
        show(await response.json());
        status.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
      } catch (error) {
        status.textContent = `Could not update (${error.message}); retrying.`;
      }
    }
    setTimeout(refresh, PERIOD_MS);
  }

  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(paused));
    toggle.textContent = paused ? "Resume updates" : "Pause updates";
    status.textContent = paused ? "Updates paused." : "Updates resumed.";
  });
  setTimeout(refresh, PERIOD_MS);
})();
