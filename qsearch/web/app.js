// The qsearch page: search as you type, ask then post, cluster a list, remove questions. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 250;
let threshold = null;      // the slider's value; null until /health answers
let latest = 0;            // number of the newest search sent: older answers are dropped
let timer = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// POST or GET JSON; an API error ({"error": ...}) or a network failure becomes an Error with a readable message.
async function api(path, body, headers = {}) {
  const init = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers },
  };
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new Error("The server cannot be reached. Is qsearch serve still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { /* not JSON: reported below */ }
  if (!response.ok) {
    throw new Error((data && data.error) || `The server answered ${response.status}.`);
  }
  return data;
}

function renderMatches(list, matches) {
  list.replaceChildren();
  $("results-note").hidden = matches.length === 0;
  for (const m of matches) {
    const dup = m.score > threshold;
    const li = document.createElement("li");
    li.className = dup ? "match duplicate" : "match";
    const text = document.createElement("span");
    text.className = "match-text";
    text.textContent = m.text;
    const meta = document.createElement("span");
    meta.className = "match-meta";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, m.score)) * 100}%`;
    bar.append(fill);
    const score = document.createElement("span");
    score.textContent = `score ${m.score.toFixed(3)} · #${m.id}`;
    meta.append(bar, score);
    if (dup) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "duplicate";
      meta.append(badge);
    }
    li.append(text, meta);
    list.append(li);
  }
}

let lastMatches = [];

function showReadAs(readAs) {
  const words = Object.entries(readAs || {});
  $("read-as").hidden = words.length === 0;
  $("read-as").textContent = words.length ? `Read ${words.map(([word, meant]) => `“${word}” as “${meant}”`).join(", ")}.` : "";
}

async function search() {
  const query = $("ask").value.trim();
  const mine = ++latest;
  if (!query) {
    lastMatches = [];
    showReadAs({});
    renderMatches($("results"), []);
    return [];
  }
  try {
    const data = await api("/search", { query, k: Number($("k").value), threshold });
    if (mine !== latest) return null;
    showError("");
    lastMatches = data.matches;
    showReadAs(data.read_as);
    renderMatches($("results"), lastMatches);
    return lastMatches;
  } catch (e) {
    if (mine === latest) showError(e.message);
    return null;
  }
}

function searchSoon() {
  clearTimeout(timer);
  $("confirm").hidden = true;
  timer = setTimeout(search, DEBOUNCE_MS);
}

async function ask(event) {
  event.preventDefault();
  clearTimeout(timer);
  $("posted").hidden = true;
  if (!$("ask").value.trim()) {
    showError("Type a question first.");
    $("ask").focus();
    return;
  }
  const matches = await search();
  if (matches === null) return;
  const likely = matches.filter((m) => m.score > threshold);
  $("confirm-title").textContent = likely.length
    ? "Is your question one of these?"
    : "No likely duplicates found. The closest questions are below.";
  $("confirm").hidden = false;
  $("confirm-title").focus();
}

async function post() {
  const question = $("ask").value.trim();
  const key = $("api-key").value;
  const headers = key ? { "x-api-key": key } : {};
  $("post-button").disabled = true;
  try {
    const data = await api("/add", { questions: [question], k: 1, threshold }, headers);
    const result = data.results[0];
    showError("");
    $("confirm").hidden = true;
    $("posted").textContent = result.added
      ? `Posted as question #${result.id}.`
      : `This exact question is already here as #${result.id}; it was not added again.`;
    $("posted").hidden = false;
  } catch (e) {
    showError(e.message);
  } finally {
    $("post-button").disabled = false;
  }
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadLink(rows) {
  const columns = ["question", "cluster", "cluster_size", "index_id", "index_text", "index_score"];
  const lines = [columns.join(",")].concat(rows.map((r) => columns.map((c) => csvCell(r[c])).join(",")));
  const link = $("download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
  link.hidden = false;
}

function renderClusters(data) {
  const list = $("clusters");
  list.replaceChildren();
  data.clusters.forEach((cluster, n) => {
    const li = document.createElement("li");
    const title = document.createElement("strong");
    title.textContent = `Cluster ${n + 1}: ${cluster.length} questions`;
    const inner = document.createElement("ul");
    for (const q of cluster) {
      const item = document.createElement("li");
      item.textContent = `${q.question} (line ${q.row + 1})`;
      inner.append(item);
    }
    li.append(title, inner);
    list.append(li);
  });
  const known = data.rows.filter((r) => r.index_id !== null).length;
  const n = data.clusters.length;
  $("dedup-summary").textContent =
    `${data.questions} questions: ${n} ${n === 1 ? "cluster" : "clusters"} of duplicates; ` +
    `${known} already in the index (threshold ${data.threshold.toFixed(3)}).`;
  downloadLink(data.rows);
  $("dedup-summary").scrollIntoView({ block: "start" });
}

async function findClusters(event) {
  event.preventDefault();
  const file = $("upload").files[0];
  let body;
  if (file) {
    body = { file: await file.text(), name: file.name };
  } else {
    const questions = $("paste").value.split(/\r?\n/).map((q) => q.trim()).filter((q) => q);
    if (!questions.length) {
      showError("Paste some questions or choose a file first.");
      return;
    }
    body = { questions };
  }
  $("dedup-button").disabled = true;
  $("dedup-summary").textContent = "Working…";
  try {
    renderClusters(await api("/dedup", body));
    showError("");
  } catch (e) {
    $("dedup-summary").textContent = "";
    showError(e.message);
  } finally {
    $("dedup-button").disabled = false;
  }
}

// Lines of "#123" or "123" are ids, any other line a question's exact text.
function removals(text) {
  const ids = [], questions = [];
  for (const line of text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l)) {
    const id = line.match(/^#?(\d+)$/);
    if (id) ids.push(Number(id[1])); else questions.push(line);
  }
  return { ids, questions };
}

function showStatus(health) {
  $("status").textContent = `${health.questions.toLocaleString()} questions known · model ${health.model}`;
}

async function remove(event) {
  event.preventDefault();
  const body = removals($("remove-list").value);
  if (!body.ids.length && !body.questions.length) {
    showError("Give a question's number or its exact text first.");
    $("remove-list").focus();
    return;
  }
  const key = $("remove-key").value;
  $("remove-button").disabled = true;
  try {
    const data = await api("/remove", body, key ? { "x-api-key": key } : {});
    showError("");
    const name = (r) => (r.question === null ? `#${r.id}` : `“${r.question}”`);
    const done = data.results.filter((r) => r.removed).map((r) => `#${r.id}`);
    const missing = data.results.filter((r) => !r.removed).map(name);
    $("removed").textContent = (done.length ? `Removed ${done.join(", ")}.` : "Nothing removed.") +
      (missing.length ? ` Not in the index: ${missing.join(", ")}.` : "");
    $("remove-list").value = "";
    showStatus(await api("/health"));
    if ($("ask").value.trim()) await search();
  } catch (e) {
    showError(e.message);
  } finally {
    $("remove-button").disabled = false;
  }
}

async function start() {
  try {
    const health = await api("/health");
    threshold = health.threshold;
    $("threshold").value = threshold;
    $("threshold-value").textContent = threshold.toFixed(3);
    $("key-control").hidden = !health.needs_key;
    $("post-button").hidden = !health.writable;
    $("remove-section").hidden = !health.writable;
    $("remove-key-control").hidden = !health.needs_key;
    $("max-dedup").textContent = health.max_dedup;
    showStatus(health);
  } catch (e) {
    $("status").textContent = "";
    showError(e.message);
  }
  $("ask").addEventListener("input", searchSoon);
  $("ask").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("k").addEventListener("change", searchSoon);
  $("threshold").addEventListener("input", () => {
    threshold = Number($("threshold").value);
    $("threshold-value").textContent = threshold.toFixed(3);
    renderMatches($("results"), lastMatches);
  });
  $("ask-form").addEventListener("submit", ask);
  $("post-button").addEventListener("click", post);
  $("dedup-form").addEventListener("submit", findClusters);
  $("remove-form").addEventListener("submit", remove);
}

start();
