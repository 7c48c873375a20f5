// The mem8 dashboard: fetches /dashboard/api/... (with the admin key, if one was given, as a
// bearer header) and /metrics, and draws them. Data is only ever put in the page as text.
"use strict";

const KEY = "mem8-dashboard-key";
// seconds between refreshes: ?refresh=N in the page's address, else 5
const REFRESH_MS = 1000 * Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 5);
const HISTORY = 720; // metric samples kept: an hour at one every 5 s
const $ = (id) => document.getElementById(id);

class Refused extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Refused(response.status, message);
  }
  return response;
}

const api = async (path, options) => (await call(`/dashboard/api/${path}`, options)).json();

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

const fixed = (value, digits = 2) => (value == null ? "–" : Number(value).toFixed(digits));
const two = (n) => String(n).padStart(2, "0");
const clock = (seconds) => {
  const t = new Date(seconds * 1000);
  return `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
};
const day = (seconds) => {
  const t = new Date(seconds * 1000);
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} ${clock(seconds)}`;
};
const num = (value) => el("td", { class: "num" }, value);

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// --- access ---------------------------------------------------------------------------------

function askForKey(why) {
  $("board").hidden = true;
  $("access").hidden = false;
  $("access-why").textContent = why;
  $("forget-key").hidden = !sessionStorage.getItem(KEY);
  say("the dashboard needs an admin key");
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  start();
});

$("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  location.reload();
});

// --- personas -------------------------------------------------------------------------------

const TRAITS = ["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"];

function traitBars(traits) {
  const bars = el("span", { class: "traits", title: TRAITS.map((t) => `${t} ${traits[t]}`).join(", ") });
  for (const trait of TRAITS) bars.append(el("i", { style: `height:${Math.round(4 + 18 * traits[trait])}px` }));
  bars.append(el("b", {}, TRAITS.map((t) => fixed(traits[t], 2)).join(" ")));
  return bars;
}

async function showPersonas() {
  const { data } = await api("personas");
  fill($("personas").tBodies[0], data.map((p) => el("tr", { "data-persona": p.id },
    el("td", {}, el("code", {}, p.id)), el("td", {}, p.name), el("td", {}, traitBars(p.traits)),
    el("td", {}, p.model), el("td", {}, p.backend ?? "–"), num(fixed(p.temperature, 2)),
    num(fixed(p.interest_threshold, 2)), el("td", {}, p.below_threshold))));
}

// --- the grid picture -----------------------------------------------------------------------

let gridUrl = null;

async function showGrid() {
  const response = await call("/dashboard/api/grid.png");
  const url = URL.createObjectURL(await response.blob());
  const image = $("grid");
  image.onload = () => { if (gridUrl && gridUrl !== url) URL.revokeObjectURL(gridUrl); gridUrl = url; };
  image.src = url;
  const memories = response.headers.get("x-mem8-memories");
  $("grid-caption").textContent = `${memories} memories marked · drawn ${clock(Date.now() / 1000)}`;
}

// --- recent requests ------------------------------------------------------------------------

function recentChart(chats) {
  const chart = $("recent-chart");
  const [width, height, left, top, bottom] = [640, 170, 26, 8, 16];
  const inner = height - top - bottom;
  chart.replaceChildren();
  const y = (value) => top + inner * (1 - value); // [0, 1] up the chart
  for (const tick of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: left, x2: width - 4, y1: y(tick), y2: y(tick), stroke: "#d9dee7" }));
    const label = svg("text", { x: 2, y: y(tick) + 4, "font-size": 10, fill: "#667085" });
    label.textContent = tick.toFixed(1);
    chart.append(label);
  }
  const oldestFirst = [...chats].reverse();
  const n = oldestFirst.length;
  if (!n) {
    const empty = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", "font-size": 12, fill: "#667085" });
    empty.textContent = "no chats since the server started";
    chart.append(empty);
    return;
  }
  const x = (i) => left + 6 + (n === 1 ? 0 : (i * (width - left - 16)) / (n - 1));
  const lines = {
    valence: (c) => (c.valence + 1) / 2, // [-1, 1] drawn on [0, 1]
    arousal: (c) => c.arousal,
    dominance: (c) => c.dominance,
  };
  const colours = { valence: "#d9534f", arousal: "#e0a100", dominance: "#2f8f83" };
  for (const [name, value] of Object.entries(lines)) {
    const points = oldestFirst.map((c, i) => `${x(i).toFixed(1)},${y(value(c)).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { points, fill: "none", stroke: colours[name], "stroke-width": 1.3, opacity: 0.8 }));
  }
  oldestFirst.forEach((c, i) => {
    const dot = svg("circle", {
      cx: x(i), cy: y(c.interest), r: 3.5, stroke: "#5b3fc4", "stroke-width": 1.5,
      fill: c.remembered ? "#5b3fc4" : "#fff",
    });
    const tip = svg("title");
    tip.textContent = `${c.persona}: interest ${c.interest.toFixed(2)}${c.remembered ? ", remembered" : ""}`;
    dot.append(tip);
    chart.append(dot);
  });
  const axis = svg("text", { x: width - 4, y: height - 3, "text-anchor": "end", "font-size": 10, fill: "#667085" });
  axis.textContent = `last ${n} chats, oldest left`;
  chart.append(axis);
}

async function showRecent() {
  const { data } = await api("recent");
  recentChart(data);
  fill($("recent").tBodies[0], data.map((c) => el("tr", {},
    el("td", { class: "when" }, clock(c.at)), el("td", { class: "tenant", title: c.tenant }, c.tenant), el("td", { class: "persona" }, c.persona),
    el("td", { class: "num interest" }, fixed(c.interest, 3)),
    el("td", { class: c.remembered ? "yes" : "no" }, c.remembered ? "yes" : "no"),
    num(fixed(c.valence)), num(fixed(c.arousal)), num(fixed(c.dominance)))));
}

// --- metrics: /metrics parsed here, rates drawn as sparklines ---------------------------------

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

const total = (samples, name, where = {}) => samples
  .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
  .reduce((sum, s) => sum + s.value, 0);

const highest = (samples, name) => samples.filter((s) => s.name === name)
  .reduce((top, s) => Math.max(top, s.value), 0);

// a histogram's buckets (all its series added up) by upper bound
function buckets(samples, name) {
  const byBound = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const bound = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + s.value);
  }
  return [...byBound.entries()].sort((a, b) => a[0] - b[0]);
}

// the median of what a histogram observed between two scrapes, interpolated within its bucket
function medianBetween(before, after) {
  if (!before) return null;
  const counts = after.map(([bound, count], i) => [bound, count - (before[i]?.[1] ?? 0)]);
  const seen = counts.length ? counts[counts.length - 1][1] : 0;
  if (seen <= 0) return null;
  let lower = 0;
  let below = 0;
  for (const [bound, count] of counts) {
    if (count >= seen / 2) {
      if (bound === Infinity) return lower;
      const share = count === below ? 0 : (seen / 2 - below) / (count - below);
      return lower + (bound - lower) * share;
    }
    lower = bound;
    below = count;
  }
  return null;
}

const SERIES = [
  { id: "requests", name: "requests / s", rate: (m) => total(m, "mem8_requests_total"), digits: 2 },
  { id: "latency", name: "request p50 (s)", median: "mem8_request_seconds", digits: 3 },
  { id: "ttft", name: "first token p50 (s)", median: "mem8_time_to_first_token_seconds", digits: 3 },
  { id: "tokens", name: "tokens / s", rate: (m) => total(m, "mem8_tokens_total"), digits: 1 },
  { id: "imprinted", name: "memories imprinted / s", rate: (m) => total(m, "mem8_memories_total", { event: "imprinted" }), digits: 3 },
  { id: "recalled", name: "memories recalled / s", rate: (m) => total(m, "mem8_memories_total", { event: "recalled" }), digits: 2 },
  { id: "recall", name: "recall p50 (s)", median: "mem8_recall_seconds", digits: 4 },
  { id: "errors", name: "backend errors / s", rate: (m) => total(m, "mem8_backend_errors_total"), digits: 3 },
  { id: "mailbox", name: "deepest mailbox", gauge: (m) => highest(m, "mem8_mailbox_depth"), digits: 0 },
  { id: "journal", name: "journal MiB", gauge: (m) => total(m, "mem8_journal_bytes") / 1048576, digits: 2 },
];

const history = Object.fromEntries(SERIES.map((s) => [s.id, []]));
let lastScrape = null;

function sample(series, now, metrics) {
  if (series.gauge) return series.gauge(metrics);
  if (series.median) return medianBetween(lastScrape?.buckets[series.median], buckets(metrics, series.median));
  if (!lastScrape) return null;
  const change = series.rate(metrics) - series.rate(lastScrape.metrics);
  return change < 0 ? null : change / ((now - lastScrape.at) / 1000); // a restart resets counters
}

function sparkline(values) {
  const [width, height] = [200, 36];
  const line = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const known = values.filter((v) => v != null);
  if (known.length < 1) return line;
  const top = Math.max(...known) || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values.map((v, i) => (v == null ? null : `${(i * step).toFixed(1)},${(height - 2 - (height - 4) * (v / top)).toFixed(1)}`))
    .filter(Boolean).join(" ");
  line.append(svg("polyline", { points }));
  return line;
}

function drawMetrics() {
  $("metrics").replaceChildren(...SERIES.map((series) => {
    const values = history[series.id];
    const latest = [...values].reverse().find((v) => v != null);
    return el("div", { class: "spark", "data-series": series.id },
      el("div", { class: "name" }, series.name),
      el("div", { class: "value" }, latest == null ? "–" : latest.toFixed(series.digits)),
      sparkline(values));
  }));
}

async function showMetrics() {
  const response = await fetch("/metrics", { headers: headers() });
  if (response.status === 404) {
    $("metrics-note").textContent = "metrics not available: this server has no /metrics";
    $("metrics").replaceChildren();
    return false;
  }
  if (!response.ok) {
    $("metrics-note").textContent = `metrics not available: /metrics answered ${response.status}`;
    return true;
  }
  const metrics = parseMetrics(await response.text());
  const now = Date.now();
  for (const series of SERIES) {
    const values = history[series.id];
    values.push(sample(series, now, metrics));
    if (values.length > HISTORY) values.shift();
  }
  const histograms = Object.fromEntries(SERIES.filter((s) => s.median).map((s) => [s.median, buckets(metrics, s.median)]));
  lastScrape = { at: now, metrics, buckets: histograms };
  $("metrics-note").textContent = `every ${REFRESH_MS / 1000} s; rates between scrapes, medians of what was observed between them`;
  drawMetrics();
  return true;
}

// --- memories -------------------------------------------------------------------------------

async function showTenants() {
  const { data } = await api("tenants");
  const select = $("tenant");
  const chosen = select.value;
  select.replaceChildren(...data.map((t) => el("option", { value: t.tenant },
    `${t.tenant} (${t.memories} memories${t.key ? `, ${t.key} key` : ""})`)));
  const busiest = [...data].sort((a, b) => b.memories - a.memories)[0];
  if (data.some((t) => t.tenant === chosen)) select.value = chosen;
  else if (busiest) select.value = busiest.tenant;
  if (!data.length) $("memories-note").textContent = "no tenant has memories or has called yet";
}

const tenantQuery = () => `tenant=${encodeURIComponent($("tenant").value)}`;

function memoryRow(m) {
  const e = m.emotion;
  const forget = el("button", { class: "forget", type: "button", onclick: () => forgetMemory(m) }, "forget");
  return el("tr", { "data-memory": m.id },
    el("td", { class: "when", title: m.id }, day(m.created_at)), el("td", { class: "persona" }, m.persona || "(every persona)"),
    el("td", { class: "text" }, m.text), el("td", {}, m.band),
    num(`${fixed(e.valence)} / ${fixed(e.arousal)} / ${fixed(e.dominance)}`),
    num(fixed(m.importance)), num(m.recalls), num(m.score == null ? "" : fixed(m.score, 3)),
    el("td", {}, forget));
}

async function showMemories(query = $("query").value.trim()) {
  if (!$("tenant").value) { fill($("memories").tBodies[0], []); return; }
  const page = query
    ? await api(`memories/search?${tenantQuery()}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query, limit: 20 }),
    })
    : await api(`memories?${tenantQuery()}&limit=100`);
  fill($("memories").tBodies[0], page.data.map(memoryRow));
  const what = query ? `${page.data.length} found for “${query}”` : `${page.data.length}${page.has_more ? "+" : ""} memories, oldest first`;
  $("memories-note").textContent = `${what} in ${$("tenant").value}`;
}

async function forgetMemory(memory) {
  if (!confirm(`Forget this memory for good?\n\n${memory.text.slice(0, 200)}`)) return;
  try {
    await api(`memories/${encodeURIComponent(memory.id)}?${tenantQuery()}`, { method: "DELETE" });
    $("memories-note").textContent = `forgot ${memory.id}`;
    document.querySelector(`tr[data-memory="${CSS.escape(memory.id)}"]`)?.remove();
    showTenants().catch(report);
  } catch (error) { report(error); }
}

$("memory-form").addEventListener("submit", (event) => { event.preventDefault(); showMemories().catch(report); });
$("list").addEventListener("click", () => { $("query").value = ""; showMemories("").catch(report); });
$("tenant").addEventListener("change", () => showMemories().catch(report));

// --- simulation runs ------------------------------------------------------------------------

async function openRun(event, href) {
  if (!sessionStorage.getItem(KEY)) return; // no key: the link opens as it is
  event.preventDefault(); // a link cannot carry the key: fetch the page with it, open it whole
  const opened = window.open("", "_blank");
  try {
    const page = await (await call(href)).blob();
    if (opened) opened.location.href = URL.createObjectURL(page);
  } catch (error) { opened?.close(); report(error); }
}

async function showSims() {
  const { folder, data } = await api("sims");
  $("sims-folder").textContent = `in ${folder}`;
  fill($("sims").tBodies[0], data.map((r) => {
    const href = `/dashboard/api/sims/${encodeURIComponent(r.run)}/${r.page}`;
    const link = el("a", { href, target: "_blank", rel: "noopener", onclick: (e) => openRun(e, href) }, r.run);
    const verdict = r.expectations ? `${r.expectations.held} held, ${r.expectations.failed} failed` : "–";
    const memories = r.memories ? Object.values(r.memories).reduce((a, b) => a + b, 0) : "–";
    return el("tr", {}, el("td", {}, link, r.kind === "sweep" ? " (sweep)" : ""), el("td", {}, r.name ?? "–"),
      num(r.seed ?? "–"), el("td", {}, r.backend ?? "–"), num(r.lines ?? "–"),
      el("td", { class: r.expectations?.failed ? "error" : "" }, verdict), num(memories), el("td", {}, day(r.modified)));
  }));
  $("sims-note").textContent = data.length ? "" : "no runs yet: `mem8 sim run SCENARIO --out DIR` with DIR in this folder (MEM8_SIM_RUNS)";
}

// --- start and refresh ----------------------------------------------------------------------

function report(error) {
  if (error instanceof Refused && (error.status === 401 || error.status === 403)) {
    stop();
    askForKey(error.message);
    return;
  }
  say(`error: ${error.message}`, true);
}

let timer = null;
let metricsOn = true;

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

async function refresh() {
  if (document.hidden) return; // a tab out of sight costs the server nothing
  const jobs = [showGrid(), showRecent()];
  if (metricsOn) jobs.push(showMetrics().then((on) => { metricsOn = on; }));
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) report(failed.reason);
  else say(`refreshed ${clock(Date.now() / 1000)} · every ${REFRESH_MS / 1000} s`);
}

async function start() {
  stop();
  try {
    await showPersonas(); // the first call says whether the key is good
  } catch (error) {
    report(error);
    return;
  }
  $("access").hidden = true;
  $("board").hidden = false;
  $("forget-key").hidden = !sessionStorage.getItem(KEY);
  await Promise.allSettled([showTenants().then(() => showMemories()), showSims()]).then((results) => {
    const failed = results.find((r) => r.status === "rejected");
    if (failed) report(failed.reason);
  });
  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

start();
