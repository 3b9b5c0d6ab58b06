// formocr review: one screen per field that needs review; keyboard first. Every value shown goes through
// textContent (never innerHTML), so whatever a document or a clerk typed is shown as text.
"use strict";

const token = document.querySelector('meta[name="formocr-token"]').content;
const $ = (id) => document.getElementById(id);
let items = [];
let mode = "pending";   // "pending": fields never answered; "skipped": the skipped ones, once more
let passed = new Set(); // skipped again in this round
let current = null;
let shownAt = 0;
let candidates = [];
let pick = 0;

async function api(path, body) {
  const opts = { headers: { "X-Formocr-Token": token } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try { r = await fetch(path, opts); } catch (e) {
    return { ok: false, status: 0, data: { error: "not saved: the review server does not answer (restart it, then reload)" } };
  }
  let data = null;
  try { data = await r.json(); } catch (e) { data = { error: r.statusText }; }
  return { ok: r.ok, status: r.status, data };
}

function queue() {
  if (mode === "pending") return items.filter((i) => !i.answer);
  return items.filter((i) => i.answer && i.answer.action === "skipped" && !passed.has(i.index));
}

function text(id, value) { $(id).textContent = value == null ? "" : String(value); }

function show(item) {
  current = item;
  const answered = items.filter((i) => i.answer && i.answer.action !== "skipped").length;
  const docs = [...new Set(items.map((i) => i.source))];
  const mine = items.filter((i) => i.source === item.source);
  text("progress", `field ${answered + 1} of ${items.length} · document ${docs.indexOf(item.source) + 1} of ` +
       `${docs.length} (field ${mine.indexOf(item) + 1} of ${mine.length} in it)` +
       (mode === "skipped" ? " · skipped fields" : ""));
  text("source", item.source); text("page", item.page); text("name", item.field); text("type", item.type);
  text("reading", item.value != null ? item.value : (item.raw || "(nothing)"));
  text("confidence", `confidence ${item.confidence.toFixed(3)}`);
  const why = $("why"); why.replaceChildren();
  for (const w of item.why) { const li = document.createElement("li"); li.textContent = w; why.append(li); }
  $("crop").hidden = !item.crop; $("nocrop").hidden = item.crop;
  if (item.crop) $("crop").src = `/api/crop/${item.index}?token=${encodeURIComponent(token)}`;
  const start = item.answer && item.answer.value != null ? item.answer.value : (item.value != null ? item.value : item.raw);
  candidates = [...new Set([start || "", ...item.alternatives])];
  pick = 0;
  const alts = $("alternatives"); alts.replaceChildren();
  candidates.forEach((c, k) => { const s = document.createElement("span"); s.textContent = c || "∅"; s.dataset.k = k; alts.append(s); });
  const rows = $("chars").tBodies[0]; rows.replaceChildren();
  for (let r = 0; r < 3; r++) {
    const tr = document.createElement("tr");
    for (const ch of item.chars) {
      const td = document.createElement("td");
      const t = ch.top[r];
      const pct = t && t[1] < 0.01 ? "<1" : t ? (t[1] * 100).toFixed(0) : "";
      td.textContent = t ? (r === 0 ? t[0] : `${t[0]} ${pct}%`) : "";
      tr.append(td);
    }
    rows.append(tr);
  }
  text("error", "");
  $("summary").hidden = true; $("field").hidden = false;
  const input = $("value");
  input.value = candidates[0];
  mark();
  input.focus(); input.select();
  shownAt = performance.now();
}

function mark() {
  for (const s of $("alternatives").children) s.classList.toggle("on", Number(s.dataset.k) === pick);
}

function summary() {
  current = null;
  $("field").hidden = true; $("summary").hidden = false;
  text("progress", `all ${items.length} fields answered`);
  const body = $("totals").tBodies[0]; body.replaceChildren();
  const docs = [...new Set(items.map((i) => i.source))];
  for (const d of docs) {
    const mine = items.filter((i) => i.source === d);
    const n = (a) => mine.filter((i) => i.answer && i.answer.action === a).length;
    const tr = document.createElement("tr");
    for (const v of [d, n("keyed"), n("illegible"), n("skipped"), mine.filter((i) => !i.answer).length]) {
      const td = document.createElement("td"); td.textContent = String(v); tr.append(td);
    }
    body.append(tr);
  }
  $("again").hidden = !items.some((i) => i.answer && i.answer.action === "skipped");
}

function next() {
  let q = queue();
  if (!q.length && mode === "skipped") { mode = "pending"; q = queue(); }
  if (q.length) show(q[0]); else summary();
}

let busy = false; // one answer in flight at a time: a held-down Enter must not answer the next field too

async function answer(action) {
  if (!current || busy) return;
  busy = true;
  const item = current;
  const body = { index: item.index, action, value: action === "keyed" ? $("value").value : null,
                 seconds: (performance.now() - shownAt) / 1000, seen: item.answer || null };
  try {
    const r = await api("/api/answer", body);
    if (!r.ok) {
      text("error", r.data && r.data.error ? r.data.error : "not saved");
      if (r.status === 409) item.answer = r.data.answer;
      return;
    }
    item.answer = r.data.answer;
    if (action === "skipped" && mode === "skipped") passed.add(item.index);
    next();
  } finally {
    busy = false;
  }
}

document.addEventListener("keydown", (e) => {
  if (!current) {
    if ((e.key === "r" || e.key === "R") && !$("again").hidden) { mode = "skipped"; passed = new Set(); next(); }
    return;
  }
  if (e.isComposing || e.repeat) return; // an input method's Enter confirms its text; a held key answers once
  if (e.key === "Enter") { e.preventDefault(); answer(e.shiftKey ? "illegible" : "keyed"); }
  else if (e.key === "Escape") { e.preventDefault(); answer("skipped"); }
  else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    pick = (pick + (e.key === "ArrowDown" ? 1 : candidates.length - 1)) % candidates.length;
    $("value").value = candidates[pick]; mark(); $("value").select();
  }
});
$("form") && $("form").addEventListener("submit", (e) => e.preventDefault());
$("crop").addEventListener("error", () => { $("crop").hidden = true; $("nocrop").hidden = false;
  text("nocrop", "The field's picture could not be cut from its document."); });

(async () => {
  const r = await api("/api/state");
  if (!r.ok) { document.body.textContent = r.data && r.data.error ? r.data.error : "cannot load the review"; return; }
  items = r.data.items;
  text("results", r.data.results);
  next();
})();
