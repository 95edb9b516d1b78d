// The dashboard: one message, every chosen model's reply side by side, streamed from the same
// OpenAI-compatible API (/v1/chat/completions) any client uses. Per reply: latency to the first
// token, tokens/s and word count; a chart of those over the conversation. The conversation lives
// in this tab (sessionStorage): each model keeps its own side of it. Plain JS, no build step.
"use strict";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const state = JSON.parse(sessionStorage.getItem("mlx-persona") || "null") || { picked: null, turns: [] };
let info = { models: [] };

const $ = (sel) => document.querySelector(sel);
const save = () => sessionStorage.setItem("mlx-persona", JSON.stringify(state));
const words = (text) => text.trim().split(/\s+/).filter(Boolean).length;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("#key").value || sessionStorage.getItem("mlx-persona-key");
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  if (r.status === 401) { $("#key-box").hidden = false; throw new Error("this server needs its API key"); }
  return r;
}

async function loadInfo() {
  info = await (await api("/api/models")).json();
  $("#title").textContent = "mlx-persona · " + info.title;
  document.title = "mlx-persona · " + info.title;
  $("#max").value = info.max_tokens;
  if (!state.picked) state.picked = info.models.slice(0, 2).map((m) => m.id);
  const pick = $("#pick");
  pick.innerHTML = "";
  for (const m of info.models) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" value="${m.id}"> ${m.id}`;
    const box = label.querySelector("input");
    box.checked = state.picked.includes(m.id);
    box.addEventListener("change", () => {
      state.picked = [...pick.querySelectorAll("input:checked")].map((b) => b.value);
      save();
    });
    pick.appendChild(label);
  }
  renderModels();
}

function renderModels() {
  const body = $("#model-table tbody");
  body.innerHTML = "";
  const fmt = (v) => (v === null || v === undefined ? "–" : v);
  for (const m of info.models) {
    const tr = document.createElement("tr");
    tr.dataset.model = m.id;
    const params = m.parameters ? (m.parameters / 1e6).toFixed(2) + " M" : "–";
    for (const v of [m.id, m.origin, params, fmt(m.adapter), m.quantization, m.size_gb,
                     m.loaded ? "yes" : "no", fmt(m.weights_gb), fmt(m.peak_memory_gb)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $("#budget").textContent = `memory budget ${info.budget_gb} GB` +
    (info.evictions.length ? ` · evicted so far: ${info.evictions.join(", ")}` : "");
}

// each model sees its own earlier replies, not the other models'
function history(model, upto) {
  const msgs = [];
  for (const t of state.turns.slice(0, upto)) {
    const r = t.replies[model];
    if (!r || r.error) continue;
    msgs.push({ role: "user", content: t.user }, { role: "assistant", content: r.text });
  }
  return msgs;
}

function renderTurn(turn, index) {
  const div = document.createElement("div");
  div.className = "turn";
  div.dataset.turn = index;
  const you = document.createElement("div");
  you.className = "you";
  you.textContent = "you: " + turn.user;
  const row = document.createElement("div");
  row.className = "row";
  for (const model of Object.keys(turn.replies)) {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.model = model;
    cell.innerHTML = `<h3></h3><div class="reply"></div><div class="stats">
      <span>first token <b class="ttft">…</b> ms</span><span><b class="tps">…</b> tok/s</span>
      <span><b class="words">…</b> words</span></div>`;
    cell.querySelector("h3").textContent = model;
    row.appendChild(cell);
    fillCell(cell, turn.replies[model]);
  }
  div.append(you, row);
  $("#turns").appendChild(div);
  return div;
}

function fillCell(cell, r) {
  cell.querySelector(".reply").textContent = r.error ? "error: " + r.error : r.text;
  cell.classList.toggle("error", !!r.error);
  if (r.done) {
    cell.querySelector(".ttft").textContent = r.ttft_ms === null ? "–" : Math.round(r.ttft_ms);
    cell.querySelector(".tps").textContent = r.tps === null ? "–" : r.tps.toFixed(1);
    cell.querySelector(".words").textContent = words(r.text);
    cell.dataset.done = "1";
  }
}

async function streamReply(model, messages, r, cell) {
  const body = {
    model, messages, stream: true, stream_options: { include_usage: true },
    temperature: parseFloat($("#temp").value) || 0, max_tokens: parseInt($("#max").value, 10) || undefined,
  };
  const start = performance.now();
  let first = null, tokens = 0;
  try {
    const resp = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!resp.ok) {
      if (resp.status === 401) $("#key-box").hidden = false;
      throw new Error((await resp.json()).error.message);
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const obj = JSON.parse(line.slice(6));
        if (obj.error) throw new Error(obj.error.message);
        if (obj.usage) tokens = obj.usage.completion_tokens;
        const piece = obj.choices && obj.choices[0] && obj.choices[0].delta.content;
        if (piece) {
          if (first === null) first = performance.now();
          r.text += piece;
          fillCell(cell, r);
        }
      }
    }
    const end = performance.now();
    r.ttft_ms = first === null ? null : first - start;
    const decode = first === null ? 0 : (end - first) / 1000;
    r.tps = tokens > 1 && decode > 0 ? (tokens - 1) / decode : tokens / ((end - start) / 1000);
    r.tokens = tokens;
  } catch (e) {
    r.error = e.message;
    r.ttft_ms = null;
    r.tps = null;
  }
  r.done = true;
  fillCell(cell, r);
}

async function send(text) {
  const models = state.picked.filter((m) => info.models.some((x) => x.id === m));
  if (!text.trim() || !models.length) { $("#status").textContent = "type a message and pick a model"; return; }
  const turn = { user: text, replies: {} };
  for (const m of models) turn.replies[m] = { text: "", done: false, ttft_ms: null, tps: null };
  const index = state.turns.length;
  state.turns.push(turn);
  const div = renderTurn(turn, index);
  $("#status").textContent = "answering…";
  $("#send").disabled = true;
  await Promise.all(models.map((m) => streamReply(
    m, [...history(m, index), { role: "user", content: text }], turn.replies[m],
    div.querySelector(`.cell[data-model="${m}"]`))));
  $("#send").disabled = false;
  $("#status").textContent = "";
  save();
  drawChart();
  loadInfo().catch(() => {});
}

// three panels, one line per model: first-token latency, tokens/s, words, over the turns
function drawChart() {
  const canvas = $("#chart");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const models = [...new Set(state.turns.flatMap((t) => Object.keys(t.replies)))];
  const panels = [["first token (ms)", (r) => r.ttft_ms], ["tokens/s", (r) => r.tps], ["words", (r) => words(r.text)]];
  const w = canvas.width / panels.length, h = canvas.height, pad = 34;
  let points = 0;
  panels.forEach(([label, get], p) => {
    const x0 = p * w + pad, y0 = h - pad, pw = w - pad * 1.5, ph = h - pad * 2;
    const series = models.map((m) => state.turns.map((t) => (t.replies[m] && t.replies[m].done && !t.replies[m].error ? get(t.replies[m]) : null)));
    const all = series.flat().filter((v) => v !== null && isFinite(v));
    const top = Math.max(1, ...all) * 1.1;
    ctx.strokeStyle = "#99a"; ctx.fillStyle = "#334"; ctx.font = "12px sans-serif";
    ctx.beginPath(); ctx.moveTo(x0, y0 - ph); ctx.lineTo(x0, y0); ctx.lineTo(x0 + pw, y0); ctx.stroke();
    ctx.fillText(label, x0, 14);
    ctx.fillText(String(Math.round(top)), x0 - pad + 2, y0 - ph + 4);
    const n = Math.max(2, state.turns.length);
    series.forEach((vals, i) => {
      ctx.strokeStyle = ctx.fillStyle = COLORS[i % COLORS.length];
      ctx.beginPath();
      let drawn = false;
      vals.forEach((v, k) => {
        if (v === null || !isFinite(v)) return;
        const x = x0 + (pw * k) / (n - 1), y = y0 - (ph * v) / top;
        drawn ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
        drawn = true;
        ctx.fillRect(x - 3, y - 3, 6, 6);
        points += 1;
      });
      ctx.stroke();
      if (p === 0) ctx.fillText(models[i], x0 + 8 + i * 80, y0 + 22);
    });
  });
  canvas.dataset.points = points;
}

function transcript() {
  // the terminal chat's /save format: one {"messages": [...]} line per conversation
  const lines = [];
  for (const m of info.models.map((x) => x.id)) {
    const msgs = history(m, state.turns.length);
    if (!msgs.length) continue;
    const sys = info.models.find((x) => x.id === m).system;
    lines.push(JSON.stringify({ messages: (sys ? [{ role: "system", content: sys }] : []).concat(msgs) }));
  }
  return lines.join("\n") + (lines.length ? "\n" : "");
}

function download() {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([transcript()], { type: "application/jsonl" }));
  a.download = "chat-" + new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19) + ".jsonl";
  a.click();
  URL.revokeObjectURL(a.href);
}

async function showReport() {
  try {
    const r = await api("/api/report");
    if (!r.ok) throw new Error();
    $("#report").srcdoc = await r.text();
    $("#no-report").hidden = true;
  } catch (e) {
    $("#report").hidden = true;
    $("#no-report").hidden = false;
  }
}

function init() {
  for (const b of document.querySelectorAll(".tab")) {
    b.addEventListener("click", () => {
      for (const o of document.querySelectorAll(".tab")) o.classList.toggle("active", o === b);
      for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== "tab-" + b.dataset.tab;
      if (b.dataset.tab === "report") showReport();
      if (b.dataset.tab === "models") loadInfo().catch(() => {});
    });
  }
  $("#send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#message").value;
    $("#message").value = "";
    send(text);
  });
  $("#message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#send-form").requestSubmit(); }
  });
  $("#key").addEventListener("change", () => { sessionStorage.setItem("mlx-persona-key", $("#key").value); loadInfo(); });
  $("#save").addEventListener("click", download);
  $("#reset").addEventListener("click", () => { state.turns = []; save(); $("#turns").innerHTML = ""; drawChart(); });
  state.turns.forEach(renderTurn);
  drawChart();
  loadInfo().catch((e) => { $("#status").textContent = e.message; });
}

init();
