// adapterhub playground: sends the form's texts to POST /v1/predict (one adapter or a
// [language, task] stack, once per adapter to compare) or POST /embed (adapters without a head)
// and shows labels, score bars, per-word tags, similarities and latency. Text from the server
// or the user is only ever set as textContent.
"use strict";
(() => {
  const form = document.getElementById("playground");
  if (!form) return;
  const data = JSON.parse(document.getElementById("pg-data").textContent);
  const $ = (id) => document.getElementById(id);
  const result = $("pg-result");
  const submit = form.querySelector("[data-testid=playground-submit]");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child);
    return node;
  }

  // What the page knows of an id: by exact id, by task/lang@namespace, or by task/lang.
  function info(id) {
    const short = id.split(":")[0];
    return data.adapters.find((a) => a.id === id)
      || data.adapters.find((a) => a.base === short)
      || data.adapters.find((a) => a.base.split("@")[0] === short.split("@")[0]);
  }

  function specs() {
    const found = [];
    const main = $("pg-adapter").value.trim();
    const language = $("pg-language").value;
    if (main) found.push(language ? [language, main] : [main]);
    for (const part of $("pg-compare").value.split(",")) {
      const spec = part.split("+").map((s) => s.trim()).filter(Boolean);
      if (spec.length) found.push(spec);
    }
    return found;
  }

  function texts() {
    return $("pg-input").value.split("\n").map((t) => t.trim()).filter(Boolean);
  }

  function request(spec, inputs) {
    if (spec.length > 1) {
      return { kind: "predict", url: "/v1/predict", headers: {}, body: { stack: spec, inputs } };
    }
    const known = info(spec[0]);
    if (known && !known.has_head) {
      return { kind: "embed", url: "/embed", headers: { "X-Adapter-Id": spec[0] }, body: { inputs } };
    }
    return { kind: "predict", url: "/v1/predict", headers: {}, body: { adapter: spec[0], inputs } };
  }

  const quote = (text) => "'" + text.replace(/'/g, "'\\''") + "'";

  function curl(req) {
    let line = `curl -s ${location.origin}${req.url} -H 'Content-Type: application/json'`;
    // the server wants --read-token: the command says where it goes, never the token itself
    if (data.read_token) line += ` -H "Authorization: Bearer $ADAPTERHUB_READ_TOKEN"`;
    for (const [key, value] of Object.entries(req.headers)) line += ` -H ${quote(`${key}: ${value}`)}`;
    return `${line} -d ${quote(JSON.stringify(req.body))}`;
  }

  function updateCurl() {
    const inputs = texts();
    const lines = specs().map((spec) => curl(request(spec, inputs.length ? inputs : ["..."])));
    $("pg-curl").textContent = lines.join("\n\n") || "Choose an adapter.";
  }

  const percent = (score) => `${(score * 100).toFixed(1)}%`;

  function sequence(prediction, text) {
    const item = el("li", { class: "prediction" }, el("p", { class: "text" }, text));
    const answer = el("p", { class: "answer" }, "Label: ",
      el("span", { class: "label" }, prediction.label),
      ` (${percent(prediction.scores[prediction.label])})`);
    if (prediction.truncated) answer.append(" · cut at the adapter's max length");
    item.append(answer);
    const ranked = Object.entries(prediction.scores).sort((a, b) => b[1] - a[1]);
    for (const [label, score] of ranked) {
      const fill = el("span", { class: "fill" });
      fill.style.width = percent(score);
      item.append(el("div", { class: "score" },
        el("span", { class: "name" }, label),
        el("span", { class: "track", "aria-hidden": "true" }, fill),
        el("span", { class: "pct" }, percent(score))));
    }
    return item;
  }

  function tokens(prediction, text) {
    const list = el("ul", { class: "tokens", "aria-label": "label of each word" });
    for (const token of prediction.tokens) {
      const best = token.scores ? token.scores[token.label] : undefined;
      const title = best === undefined ? token.label : `${token.label} ${percent(best)}`;
      list.append(el("li", { class: "token", title },
        el("span", { class: "word" }, token.word), el("span", { class: "tag" }, token.label)));
    }
    return el("li", { class: "prediction" }, el("p", { class: "text" }, text), list);
  }

  function similarity(vectors, inputs) {
    const dot = (a, b) => a.reduce((sum, value, i) => sum + value * b[i], 0);
    const values = vectors.map((a) => vectors.map((b) => dot(a, b)));
    const low = Math.min(...values.flat());
    const table = el("table", { class: "similarity" },
      el("caption", {}, "Cosine similarity of the texts' embeddings (darker is closer)"));
    const head = el("tr", {}, el("th", { scope: "col" }, "text"));
    inputs.forEach((_, i) => head.append(el("th", { scope: "col" }, String(i + 1))));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    values.forEach((row, i) => {
      const line = el("tr", {}, el("th", { scope: "row" }, `${i + 1}. ${inputs[i]}`));
      for (const value of row) {
        const step = low >= 1 ? 7 : Math.min(7, Math.max(0, Math.floor(((value - low) / (1 - low)) * 8)));
        line.append(el("td", { class: `num shade-${step}` }, value.toFixed(3)));
      }
      body.append(line);
    });
    table.append(body);
    return el("div", { class: "scroll" }, table);
  }

  async function run(spec, inputs, block) {
    const req = request(spec, inputs);
    const started = performance.now();
    let response;
    let body;
    try {
      response = await fetch(req.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...req.headers },
        body: JSON.stringify(req.body),
      });
      body = await response.json().catch(() => ({ error: response.statusText, error_type: "http" }));
    } catch (error) {
      block.append(el("p", { class: "error", role: "alert" }, `the server did not answer (${error})`));
      return;
    }
    const elapsed = performance.now() - started;
    if (!response.ok) {
      block.append(el("p", { class: "error", role: "alert" },
        `${response.status} ${body.error_type}: ${body.error}`));
      return;
    }
    const what = req.kind === "embed" ? `${spec[0]} · embeddings` : `${body.adapters.join(" + ")} · ${body.task_type}`;
    block.querySelector("h3").textContent = what;
    block.append(el("p", { class: "latency" },
      `round trip ${elapsed.toFixed(0)} ms for ${inputs.length} text${inputs.length === 1 ? "" : "s"}`));
    if (req.kind === "embed") {
      block.append(similarity(body, inputs));
      return;
    }
    const list = el("ol", { class: "predictions" });
    body.predictions.forEach((prediction, i) => {
      list.append("tokens" in prediction ? tokens(prediction, inputs[i]) : sequence(prediction, inputs[i]));
    });
    block.append(list);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const inputs = texts();
    const wanted = specs();
    result.replaceChildren();
    if (!wanted.length || !inputs.length) {
      result.append(el("p", { class: "error", role: "alert" },
        !wanted.length ? "choose an adapter" : "type at least one text"));
      return;
    }
    updateCurl();
    submit.disabled = true;
    result.setAttribute("aria-busy", "true");
    try {
      await Promise.all(wanted.map((spec) => {
        const block = el("article", { class: "result" }, el("h3", {}, spec.join(" + ")));
        result.append(block);
        return run(spec, inputs, block);
      }));
    } finally {
      submit.disabled = false;
      result.removeAttribute("aria-busy");
    }
  });

  $("pg-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("input", updateCurl);
  form.addEventListener("change", updateCurl);
  updateCurl();
})();
