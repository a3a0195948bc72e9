// real3d serve: the pages' script. Every text a run or the user supplied goes through textContent (never
// innerHTML), so a prompt such as <script>…</script> is shown, not run.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

const post = (path, body) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });

function element(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  return node;
}

function number(value) {
  if (typeof value !== "number") return value === null || value === undefined ? "–" : String(value);
  return Math.abs(value) >= 100 || Number.isInteger(value) ? String(Math.round(value * 10) / 10) : value.toPrecision(3);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 90 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

function fillTable(table, rows) {
  table.replaceChildren(...rows.map(([key, value]) => {
    const row = element("tr");
    row.append(element("th", key), element("td", number(value)));
    return row;
  }));
}

const runUrl = (name) => `/run/${encodeURIComponent(name)}`;
const fileUrl = (name, file) => `/files/${encodeURIComponent(name)}/${file.split("/").map(encodeURIComponent).join("/")}`;

// ------------------------------------------------------------------------------------------- index page

async function indexPage() {
  const { presets, budgets } = await api("/api/presets");
  $("preset").replaceChildren(...presets.map((p) => element("option", p, { value: p })));
  $("preset").value = presets.includes("real3d") ? "real3d" : presets[0];
  $("budget").append(...budgets.map((b) => element("option", b, { value: b })));

  $("start").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("error").textContent = "";
    $("start-button").disabled = true;
    try {
      const { runs } = await post("/api/runs", {
        prompt: $("prompt").value, preset: $("preset").value, budget: $("budget").value,
        seeds: $("seeds").value, overrides: $("overrides").value,
      });
      if (runs.length === 1) window.location.href = runUrl(runs[0]);
      else refreshIndex();
    } catch (error) {
      $("error").textContent = error.message;
    } finally {
      $("start-button").disabled = false;
    }
  });
  refreshIndex();
  setInterval(refreshIndex, 1500);
}

async function refreshIndex() {
  const [{ queue }, { runs }] = await Promise.all([api("/api/queue"), api("/api/gallery")]);
  $("queue").replaceChildren(...(queue.length ? queue.map((job) => {
    const item = element("li");
    item.append(element("a", job.name, { href: runUrl(job.name) }), ` — ${job.state}`);
    return item;
  }) : [element("li", "nothing queued")]));
  $("gallery").replaceChildren(...runs.map((run) => {
    const card = element("a", null, { href: runUrl(run.name), class: "card", "data-run": run.name });
    card.append(run.thumbnail ? element("img", null, { src: `/thumb/${encodeURIComponent(run.name)}`, alt: "" })
                              : element("div", "(no views yet)", { class: "meta" }));
    card.append(element("div", run.prompt));
    const score = typeof run.judge_score === "number" ? `, judge ${run.judge_score.toFixed(2)}` : "";
    card.append(element("div", `seed ${run.seed ?? "–"} · ${run.state}${score}`, { class: "meta" }));
    return card;
  }));
}

// --------------------------------------------------------------------------------------------- run page

async function runPage() {
  const name = decodeURIComponent(window.location.pathname.split("/").pop());
  let shown = null;
  const act = (what) => async () => {
    $("run-error").textContent = "";
    try {
      await post(`/api/runs/${encodeURIComponent(name)}/${what}`);
    } catch (error) {
      $("run-error").textContent = error.message;
    }
    refresh();
  };
  $("cancel").addEventListener("click", act("cancel"));
  $("resume").addEventListener("click", act("resume"));
  $("viewer").addEventListener("load", () => { $("viewer").dataset.loaded = "1"; });

  async function refresh() {
    let run;
    try {
      run = await api(`/api/runs/${encodeURIComponent(name)}`);
    } catch (error) {
      $("run-error").textContent = error.message;
      return;
    }
    document.title = `real3d: ${run.prompt}`;
    $("title").textContent = run.prompt || name;
    $("state").textContent = run.state;
    document.body.dataset.state = run.state;
    $("steps").textContent = run.total ? `step ${run.step} / ${run.total}` : "";
    $("eta").textContent = run.eta_s !== null ? `· about ${duration(run.eta_s)} left` : "";
    $("bar").value = run.total ? run.step / run.total : 0;
    $("cancel").disabled = !["queued", "running"].includes(run.state);
    $("resume").disabled = !run.resumable;
    if (run.error) $("run-error").textContent = run.error;
    fillTable($("losses"), Object.entries(run.losses));
    if (run.snapshot && $("snapshot").dataset.file !== run.snapshot) {
      $("snapshot").dataset.file = run.snapshot;
      $("snapshot").src = fileUrl(name, run.snapshot);
    }
    if (run.state === "done" && shown !== "done") {
      shown = "done";
      showResult(name, run);
    }
  }
  await refresh();
  setInterval(() => { if (shown !== "done") refresh(); }, 1000);
}

function showResult(name, run) {
  $("result").hidden = false;
  if (run.files.includes("model.glb")) {
    $("viewer").src = fileUrl(name, "model.glb");
    $("download-glb").href = fileUrl(name, "model.glb");
  }
  if (run.files.includes("turntable.mp4")) $("turntable").src = fileUrl(name, "turntable.mp4");
  $("download-zip").href = `/download/${encodeURIComponent(name)}-obj.zip`;
  const rows = [];
  for (const [key, value] of Object.entries(run.metrics)) {
    if (value !== null && typeof value === "object") {
      for (const [part, ms] of Object.entries(value)) rows.push([`${key}: ${part}`, ms]);
    } else if (key !== "prompt") {
      rows.push([key, value]);
    }
  }
  fillTable($("metrics"), rows);
}

// one page for both views: /run/NAME shows a run, / the form, queue and gallery
const page = window.location.pathname.startsWith("/run/") ? "run" : "index";
$(`${page}-page`).hidden = false;
if (page === "index") indexPage();
else runPage();
