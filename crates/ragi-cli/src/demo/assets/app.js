// The ragi demo page: chat, jobs and the live-connection dashboard, over the JSON API
// documented in docs/guide.md ("The demo's API"). Plain JavaScript, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
};
const wsUrl = (path) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;

// ---------------------------------------------------------------- info
fetch("/api/info").then((r) => r.json()).then((info) => {
  $("info").textContent = `ragi ${info.version} · pid ${info.pid}` +
    (info.worker === null || info.worker === undefined ? "" : ` · worker ${info.worker}`);
}).catch(() => { $("info").textContent = ""; });

// ---------------------------------------------------------------- chat
const chat = { ws: null, es: null, room: null, nick: null, transport: null };
$("chat-nick").value = sessionStorage.getItem("ragi-nick") || "guest-" + Math.random().toString(36).slice(2, 6);

function chatStatus(text) { $("chat-status").textContent = text; }

function chatLine(node) {
  const log = $("chat-log");
  log.append(node);
  log.scrollTop = log.scrollHeight;
}

function showMessage(m) {
  chatLine(el("li", { class: "msg", "data-nick": m.nick }, el("span", { class: "nick" }, m.nick + ":"), m.text));
}

function renderMembers(members) {
  const ul = $("chat-members");
  ul.replaceChildren();
  for (const m of members) setMember(m.nick, m.online, m.left_reason);
}

function setMember(nick, online, reason) {
  const ul = $("chat-members");
  let li = [...ul.children].find((x) => x.dataset.nick === nick);
  if (!li) { li = el("li", { "data-nick": nick }); ul.append(li); }
  li.dataset.online = online ? "true" : "false";
  li.replaceChildren(nick);
  if (!online) li.append(el("span", { class: "reason" }, `gone (${reason || "left"})`));
}

function onPresence(p) {
  setMember(p.nick, p.online, p.reason);
  chatLine(el("li", { class: "sys", "data-presence": p.nick },
    p.online ? `${p.nick} joined` : `${p.nick} left (${p.reason || "left"})`));
}

function onGap(g) {
  // The server lost messages (its channel layer reconnected): refetch what can be refetched.
  chatLine(el("li", { class: "sys" }, `some messages may be missing (${g.reason || "gap"})`));
  refreshMembers();
}

function refreshMembers() {
  if (!chat.room) return;
  fetch(`/api/chat/${encodeURIComponent(chat.room)}/members`).then((r) => r.json()).then(renderMembers).catch(() => {});
}

function chatJoined(transport) {
  chat.transport = transport;
  $("chat-join").disabled = true; $("chat-leave").disabled = false;
  $("chat-input").disabled = false; $("chat-send").disabled = false;
  chatStatus(`In room ${chat.room} as ${chat.nick} over ${transport === "ws" ? "WebSocket" : "SSE + POST"}.`);
  refreshMembers();
}

function chatLeft(why) {
  if (chat.ws) { chat.ws.onclose = null; chat.ws.close(1000); chat.ws = null; }
  if (chat.es) { chat.es.close(); chat.es = null; }
  $("chat-join").disabled = false; $("chat-leave").disabled = true;
  $("chat-input").disabled = true; $("chat-send").disabled = true;
  chatStatus(why);
}

function joinWs() {
  const ws = new WebSocket(wsUrl(`/api/chat/${encodeURIComponent(chat.room)}/ws?nick=${encodeURIComponent(chat.nick)}`));
  chat.ws = ws;
  let opened = false;
  ws.onopen = () => { opened = true; chatJoined("ws"); };
  ws.onmessage = (ev) => {
    let m; try { m = JSON.parse(ev.data); } catch { return; }
    if (m.type === "presence") onPresence(m);
    else if (m.type === "gap") onGap(m);
    else if (m.type === "reconnect") { chatLeft("The server is restarting; rejoining…"); setTimeout(join, 500); }
    else showMessage(m);
  };
  ws.onclose = (ev) => {
    chat.ws = null;
    if (!opened) { chatStatus("WebSocket unavailable; falling back to SSE + POST."); joinSse(); return; }
    chatLeft(`Disconnected (${ev.code}${ev.reason ? " " + ev.reason : ""}).`);
  };
}

function joinSse() {
  const es = new EventSource(`/api/chat/${encodeURIComponent(chat.room)}/events?nick=${encodeURIComponent(chat.nick)}`);
  chat.es = es;
  es.onopen = () => { if (chat.transport !== "sse") chatJoined("sse"); };
  es.onmessage = (ev) => { try { showMessage(JSON.parse(ev.data)); } catch {} };
  es.addEventListener("presence", (ev) => { try { onPresence(JSON.parse(ev.data)); } catch {} });
  es.addEventListener("gap", (ev) => { try { onGap(JSON.parse(ev.data)); } catch { onGap({}); } });
  es.onerror = () => chatStatus("Connection lost; the browser reconnects…");
}

function join() {
  chat.room = $("chat-room").value.trim();
  chat.nick = $("chat-nick").value.trim();
  if (!chat.room || !chat.nick) return;
  sessionStorage.setItem("ragi-nick", chat.nick);
  $("chat-log").replaceChildren();
  chat.transport = null;
  if ($("chat-transport").value === "ws" && "WebSocket" in window) joinWs(); else joinSse();
}

$("chat-join-form").addEventListener("submit", (e) => { e.preventDefault(); join(); });
$("chat-leave").addEventListener("click", () => chatLeft("Left the room."));
$("chat-send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("chat-input").value;
  if (!text) return;
  $("chat-input").value = "";
  const msg = { nick: chat.nick, text };
  if (chat.transport === "ws" && chat.ws) chat.ws.send(JSON.stringify(msg));
  else fetch(`/api/chat/${encodeURIComponent(chat.room)}/messages`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(msg),
  }).then((r) => { if (r.status !== 202) chatStatus(`Send failed: ${r.status}`); });
});

// ---------------------------------------------------------------- jobs
let job = null;

function jobOutput(text, replace = false) {
  const out = $("job-output");
  out.textContent = replace ? text : out.textContent + text;
  out.scrollTop = out.scrollHeight;
}

function stopJob(why) {
  if (!job) return;
  job.es.close(); // the server sees the client leave and cancels the job
  job = null;
  $("job-start").disabled = false; $("job-stop").disabled = true;
  if (why) jobOutput(`\n[${why}]`);
  refreshJobs();
}

$("job-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (job) return;
  const kind = $("job-kind").value, seconds = $("job-seconds").value;
  jobOutput("", true);
  const es = new EventSource(`/api/jobs/run?kind=${encodeURIComponent(kind)}&seconds=${encodeURIComponent(seconds)}`);
  job = { es, id: null };
  $("job-start").disabled = true; $("job-stop").disabled = false;
  es.onmessage = (ev) => {
    let d; try { d = JSON.parse(ev.data); } catch { return; }
    if (job && !job.id) { job.id = d.job; refreshJobs(); }
    if (d.token !== undefined) jobOutput(d.token);
    else jobOutput(`step ${d.n}${d.of ? " of " + d.of : ""}\n`);
  };
  es.addEventListener("done", () => stopJob("completed"));
  es.addEventListener("reconnect", () => stopJob("the server is restarting: start the job again"));
  // An EventSource reconnects by itself; a job must not restart behind the user's back.
  es.onerror = () => stopJob("stream ended");
});
$("job-stop").addEventListener("click", () => stopJob("stopped: the server cancels the job"));

function refreshJobs() {
  fetch("/api/jobs").then((r) => r.json()).then((jobs) => {
    const body = $("jobs-list");
    body.replaceChildren(...jobs.slice(0, 12).map((j) => el("tr", { "data-job-id": j.id },
      el("td", {}, j.id), el("td", {}, j.kind || ""),
      el("td", { class: "status status-" + j.status }, j.status + (j.reason ? ` (${j.reason})` : "")),
      el("td", {}, j.progress === undefined ? "" : String(j.progress)))));
  }).catch(() => {});
}
refreshJobs();
setInterval(refreshJobs, 1000);

// ---------------------------------------------------------------- dashboard
const BUCKET_MS = 5000, BUCKETS = 60;
const palette = ["#d92d20", "#f79009", "#2f6fed", "#12b76a", "#7a5af8", "#ee46bc", "#0ba5ec", "#667085"];
const reasonColor = new Map();
const buckets = []; // {t, counts: Map(reason -> n)}

function colorOf(reason) {
  if (!reasonColor.has(reason)) reasonColor.set(reason, palette[reasonColor.size % palette.length]);
  return reasonColor.get(reason);
}

function countDisconnect(reason, at) {
  const t = Math.floor((at || Date.now()) / BUCKET_MS) * BUCKET_MS;
  let b = buckets[buckets.length - 1];
  if (!b || b.t !== t) { b = { t, counts: new Map() }; buckets.push(b); if (buckets.length > BUCKETS) buckets.shift(); }
  b.counts.set(reason, (b.counts.get(reason) || 0) + 1);
}

function drawChart() {
  const svg = $("disconnect-chart");
  const W = 600, H = 180, pad = 20;
  const now = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
  const max = Math.max(1, ...buckets.map((b) => [...b.counts.values()].reduce((a, n) => a + n, 0)));
  const bw = (W - pad) / BUCKETS;
  const parts = [`<line x1="${pad}" y1="${H - pad}" x2="${W}" y2="${H - pad}" stroke="#e4e7ec"/>`,
    `<text x="2" y="12" font-size="10" fill="#667085">${max}</text>`,
    `<text x="${W - 2}" y="${H - 6}" font-size="10" fill="#667085" text-anchor="end">now</text>`,
    `<text x="${pad}" y="${H - 6}" font-size="10" fill="#667085">−5 min</text>`];
  for (const b of buckets) {
    const i = BUCKETS - 1 - (now - b.t) / BUCKET_MS;
    if (i < 0) continue;
    let y = H - pad;
    for (const [reason, n] of b.counts) {
      const h = (n / max) * (H - 2 * pad);
      y -= h;
      parts.push(`<rect x="${pad + i * bw + 1}" y="${y}" width="${Math.max(1, bw - 2)}" height="${h}" fill="${colorOf(reason)}"><title>${reason}: ${n}</title></rect>`);
    }
  }
  svg.innerHTML = parts.join("");
  $("chart-legend").replaceChildren(...[...reasonColor].map(([r, c]) => {
    const s = el("span", {}, r); s.style.setProperty("--c", c); return s;
  }));
}

function showCounts(live, totals) {
  $("live-http1").textContent = live["http/1.1"] || 0;
  $("live-h2").textContent = live["h2"] || 0;
  $("live-ws").textContent = live["websocket"] || 0;
  $("live-sse").textContent = live["sse"] || 0;
  if (totals) { $("total-accepted").textContent = totals.accepted || 0; $("total-closed").textContent = totals.closed || 0; }
}

function noticeText(n) {
  const who = `#${n.id}${n.stream ? "/" + n.stream : ""} ${n.peer || ""}`;
  const tls = n.tls ? ` ${n.tls.version} ${n.tls.alpn || ""}` : "";
  switch (n.event) {
    case "accepted": return `${who} accepted ${n.protocol}${tls}`;
    case "upgraded": return `${who} upgraded to ${n.protocol}${n.path ? " " + n.path : ""}`;
    case "closed": return `${who} closed (${n.reason || "clean"}) ${n.requests} req, ${n.bytes_in}/${n.bytes_out} B, ${n.duration_ms} ms`;
    case "sse_opened": return `${who} SSE ${n.path || ""} opened`;
    case "sse_closed": return `${who} SSE ${n.path || ""} closed (${n.reason || "clean"})`;
    default: return `${who} ${n.event}`;
  }
}

function addNotice(n, live = true) {
  const ul = $("notices");
  ul.prepend(el("li", { "data-event": n.event, "data-protocol": n.protocol || "", "data-id": String(n.id) }, noticeText(n)));
  while (ul.children.length > 50) ul.lastChild.remove();
  if (live && (n.event === "closed" || n.event === "sse_closed")) countDisconnect(n.reason || "clean", n.at);
}

fetch("/api/connections").then((r) => r.json()).then((snap) => {
  showCounts(snap.live || {}, snap.totals);
  for (const n of (snap.notices || []).slice().reverse()) addNotice(n, false);
  for (const n of snap.notices || []) if (n.event === "closed" || n.event === "sse_closed") countDisconnect(n.reason || "clean", n.at);
  drawChart();
}).catch(() => {});

const dash = new EventSource("/api/connections/events");
dash.addEventListener("notice", (ev) => { try { addNotice(JSON.parse(ev.data)); drawChart(); } catch {} });
dash.addEventListener("counts", (ev) => { try { const c = JSON.parse(ev.data); showCounts(c.live || {}, c.totals); } catch {} });
setInterval(drawChart, BUCKET_MS);
