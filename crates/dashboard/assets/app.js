// The dashboard page: one EventSource for the live home (a snapshot, then changes), fetches for
// history, and POSTs (with the CSRF token) for the keypad and the lights. Plain JS, no framework;
// every text from the home goes into the page with textContent, never as HTML.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const LOGIN = document.querySelector('meta[name="login"]').content === "true";
const SVG = "http://www.w3.org/2000/svg";
const MAX_PIN = 16;

// The sections keyed by device id are Maps: an id is the home's data, and as a plain object's key
// `constructor`, `toString` or `__proto__` would find (or replace) the object's own machinery.
const KEYED = ["devices", "sensors", "lights", "areas"];
let home = { devices: new Map(), sensors: new Map(), lights: new Map(), areas: new Map(), panel: null, siren: null,
             circadian: null, events: [] };
// The area the panel card shows and the keypad commands (null: the whole house).
let area = null;

/// The snapshot as the page keeps it: its keyed sections as Maps.
function fromSnapshot(snapshot) {
  for (const section of KEYED) snapshot[section] = new Map(Object.entries(snapshot[section] || {}));
  return snapshot;
}
// The dashboard's clock minus ours, so delays count down right on a phone whose clock is off.
let clockOffset = 0;
let statusReceived = 0;
let pin = "";
let awaiting = null;
let pastEvents = [];

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};
const ms = (ts) => (ts ? Date.parse(ts) : 0);
const serverNow = () => Date.now() + clockOffset;

function ago(ts) {
  const t = ms(ts);
  if (!t) return "never";
  const s = Math.max(0, Math.round((serverNow() - t) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return new Date(t).toLocaleString();
}

function clock(ts) {
  const t = ms(ts);
  return t ? new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": CSRF },
    body: JSON.stringify(body),
  });
  if (r.status === 401) { location.href = "/login"; }
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.error || ("HTTP " + r.status));
  return answer;
}

// ---- the live stream --------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("snapshot", (e) => {
    home = fromSnapshot(JSON.parse(e.data));
    clockOffset = ms(home.now) - Date.now();
    statusReceived = Date.now();
    setLive(true);
    renderAll();
  });
  source.addEventListener("change", (e) => {
    const change = JSON.parse(e.data);
    apply(change);
  });
  source.onopen = () => setLive(true);
  source.onerror = () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  };
}

function setLive(ok) {
  const chip = $("live");
  chip.textContent = ok ? "live" : "reconnecting…";
  chip.className = "chip " + (ok ? "ok" : "bad");
}

function apply(change) {
  const { section, id, value } = change;
  if (section === "events") {
    home.events.push(value);
    if (home.events.length > 200) home.events.shift();
    if (awaiting) showAnswer(value);
    renderEvents();
    return;
  }
  if (id !== undefined) {
    if (!KEYED.includes(section)) return;
    if (value === null) home[section].delete(id);
    else home[section].set(id, value);
  } else {
    home[section] = KEYED.includes(section) ? new Map(Object.entries(value || {})) : value;
    if (section === "panel") statusReceived = Date.now();
  }
  markDirty(section);
  if (section === "sensors") scheduleChart();
}

// A burst of changes is drawn once per frame, not once per change: under a flood of readings
// the page redraws each section at most at the display's rate and never falls behind the stream.
const renderers = { devices: () => renderDevices(), sensors: () => renderSensors(), lights: () => renderLights(),
                    panel: () => renderPanel(), areas: () => renderPanel(), siren: () => renderSiren(),
                    circadian: () => renderPhase() };
const dirty = new Set();
let frameQueued = false;

function markDirty(section) {
  dirty.add(section);
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    const sections = [...dirty];
    dirty.clear();
    for (const section of sections) renderers[section]?.();
  });
}

function renderAll() {
  renderPhase(); renderPanel(); renderSiren(); renderSensors(); renderLights(); renderDevices(); renderEvents();
}

// ---- panel, keypad, siren ---------------------------------------------------------------------

const STATE_CLASS = { disarmed: "ok", arming: "warn", pending: "warn", triggered: "bad",
  armed_away: "bad", armed_home: "bad", armed_night: "bad" };

/// With several areas: one tab for all, one per area, each with its state.
function renderAreas() {
  const tabs = $("areas");
  tabs.replaceChildren();
  tabs.hidden = home.areas.size === 0;
  if (area !== null && !home.areas.has(area)) area = null;
  if (!home.areas.size) return;
  const tab = (name, label, status) => {
    const b = el("button", "area" + (area === name ? " selected" : ""));
    b.setAttribute("role", "tab");
    b.setAttribute("aria-selected", String(area === name));
    b.dataset.area = name === null ? "" : name;
    b.append(el("span", null, label));
    if (status) b.append(el("small", "state-word " + (STATE_CLASS[status.state] || ""), status.state.replace("_", " ")));
    b.addEventListener("click", () => { area = name; renderPanel(); });
    tabs.append(b);
  };
  tab(null, "All areas", home.panel);
  for (const name of [...home.areas.keys()].sort()) tab(name, name, home.areas.get(name));
}

/// The status the panel card shows: the selected area's, or the house's.
function shownStatus() {
  return area === null ? home.panel : home.areas.get(area) || null;
}

function renderPanel() {
  renderAreas();
  const p = shownStatus();
  const state = $("panel-state");
  const details = $("panel-details");
  details.replaceChildren();
  if (!p) {
    state.textContent = "no panel";
    state.className = "state";
    $("panel-countdown").hidden = true;
    return;
  }
  state.textContent = p.state.replace("_", " ");
  state.className = "state " + (STATE_CLASS[p.state] || "");
  const row = (name, value, cls) => {
    details.append(el("dt", null, name));
    details.append(el("dd", cls, value));
  };
  if (p.mode) row("Mode", p.mode);
  row("Ready to arm", p.ready ? "yes" : "no", p.ready ? null : "bad-text");
  row("Open", p.open_sensors.length ? p.open_sensors.join(", ") : "none", p.open_sensors.length ? "bad-text" : null);
  row("Bypassed", p.bypassed.length ? p.bypassed.join(", ") : "none");
  row("Troubles", p.troubles.length ? p.troubles.join(", ") : "none", p.troubles.length ? "bad-text" : null);
  if (p.warnings && p.warnings.length) row("Warnings", p.warnings.join("; "));
  if (p.last_trigger) row("Last trigger", p.last_trigger + (p.last_trigger_ts ? " at " + clock(p.last_trigger_ts) : ""));
  if (p.changed_by) row("Changed by", p.changed_by);
  tick();
}

function remaining(seconds, ts) {
  // Counted from the status's own time on the dashboard's clock.
  const since = ts ? (serverNow() - ms(ts)) / 1000 : (Date.now() - statusReceived) / 1000;
  return Math.max(0, Math.ceil(seconds - Math.max(0, since)));
}

function tick() {
  const p = shownStatus();
  const out = $("panel-countdown");
  let text = "";
  if (p && p.delay_remaining_s != null) {
    const left = remaining(p.delay_remaining_s, p.ts);
    const what = p.state === "arming" ? "Exit delay" : p.state === "pending" ? "Entry delay: disarm now" :
      p.state === "triggered" ? "Siren time left" : "Time left";
    text = what + ": " + left + " s";
  }
  if (p && p.lockout_remaining_s != null) {
    text += (text ? " · " : "") + "Keypad locked: " + remaining(p.lockout_remaining_s, p.ts) + " s";
  }
  out.textContent = text;
  out.hidden = !text;
}

function renderSiren() {
  const s = home.siren;
  const out = $("siren");
  if (!s) { out.textContent = "no siren"; out.className = "state"; return; }
  out.textContent = s.state === "ON" ? "SOUNDING" : "off";
  out.className = "state " + (s.state === "ON" ? "bad" : "ok");
  out.title = (s.reason || "") + " since " + clock(s.since);
}

function renderPin() {
  $("pin").textContent = "•".repeat(pin.length);
}

function showAnswer(event) {
  clearTimeout(awaiting);
  awaiting = null;
  const good = ["armed", "arming", "disarmed"].includes(event.event);
  const out = $("answer");
  out.textContent = event.event + ": " + event.message;
  out.className = "answer " + (good ? "ok" : "bad");
}

async function command(action) {
  const code = pin;
  pin = "";
  renderPin();
  const out = $("answer");
  out.textContent = "sent, waiting for the panel…";
  out.className = "answer";
  clearTimeout(awaiting);
  awaiting = setTimeout(() => {
    awaiting = null;
    out.textContent = "no answer from the panel";
    out.className = "answer bad";
  }, 15000);
  try {
    await post("/api/panel", area === null ? { action, code } : { action, code, area });
  } catch (err) {
    clearTimeout(awaiting);
    awaiting = null;
    out.textContent = "not sent: " + err.message;
    out.className = "answer bad";
  }
}

// ---- sensors, lights, devices -----------------------------------------------------------------

function renderSensors() {
  const list = $("sensors");
  list.replaceChildren();
  const ids = [...home.sensors.keys()].sort();
  if (!ids.length) list.append(el("li", "note", "no sensors yet"));
  for (const id of ids) {
    const s = home.sensors.get(id);
    const li = el("li");
    li.dataset.sensor = id;
    li.append(el("span", "name", id), el("span", "badge", s.kind));
    const active = s.state === "OPEN" || s.state === "MOTION";
    li.append(el("span", "badge state-word " + (active ? "active" : "off"), s.state.replace("_", " ")));
    li.append(el("small", "note-muted", ago(s.received)));
    list.append(li);
  }
}

const lightRows = new Map();

function lightRow(id) {
  if (lightRows.has(id)) return lightRows.get(id);
  const li = el("li");
  li.dataset.light = id;
  const name = el("span", "name", id);
  const badge = el("span", "badge");
  const toggle = el("button", "small toggle");
  const controls = el("div", "light-controls");
  const bright = el("input");
  Object.assign(bright, { type: "range", min: 0, max: 100, step: 5, className: "brightness" });
  bright.setAttribute("aria-label", "brightness of " + id);
  const brightValue = el("span");
  const temp = el("input");
  Object.assign(temp, { type: "range", min: 2000, max: 6500, step: 100, className: "color-temp" });
  temp.setAttribute("aria-label", "colour temperature of " + id);
  const tempValue = el("span");
  controls.append(el("span", null, "Brightness"), bright, brightValue, el("span", null, "Colour"), temp, tempValue);
  li.append(name, badge, toggle, controls);
  const send = async (body) => {
    try { await post("/api/lights/" + encodeURIComponent(id), body); }
    catch (err) { badge.textContent = "not sent: " + err.message; badge.className = "badge bad"; }
  };
  toggle.addEventListener("click", () => {
    const on = home.lights.get(id)?.state === "ON";
    send({ state: on ? "OFF" : "ON" });
  });
  bright.addEventListener("input", () => { brightValue.textContent = bright.value + " %"; });
  bright.addEventListener("change", () => send({ state: "ON", brightness: Number(bright.value) }));
  temp.addEventListener("input", () => { tempValue.textContent = temp.value + " K"; });
  temp.addEventListener("change", () => send({ color_temp_k: Number(temp.value) }));
  const row = { li, badge, toggle, bright, brightValue, temp, tempValue };
  lightRows.set(id, row);
  return row;
}

function renderLights() {
  const list = $("lights");
  const ids = [...home.lights.keys()].sort();
  for (const [id, row] of [...lightRows]) {
    if (!home.lights.has(id)) { row.li.remove(); lightRows.delete(id); }
  }
  list.querySelector(".note")?.remove();
  if (!ids.length) list.append(el("li", "note", "no lights yet"));
  for (const id of ids) {
    const l = home.lights.get(id);
    const row = lightRow(id);
    list.append(row.li);
    const on = l.state === "ON";
    row.badge.textContent = (on ? "ON " + l.brightness + " %" : "OFF") + " · " + l.source;
    row.badge.className = "badge " + (on ? "on" : "off");
    row.toggle.textContent = on ? "Turn off" : "Turn on";
    // Leave a slider alone while a finger is on it.
    if (document.activeElement !== row.bright) {
      if (on) row.bright.value = l.brightness;
      row.brightValue.textContent = row.bright.value + " %";
    }
    if (document.activeElement !== row.temp && l.color_temp_k) {
      row.temp.value = l.color_temp_k;
      row.tempValue.textContent = l.color_temp_k + " K";
    }
  }
}

function renderDevices() {
  const body = $("devices").tBodies[0];
  body.replaceChildren();
  for (const id of [...home.devices.keys()].sort()) {
    const d = home.devices.get(id);
    const tr = el("tr");
    tr.dataset.device = id;
    const online = d.availability === "online";
    const status = el("span", "badge " + (online ? "on" : "bad"), d.availability || "unknown");
    const cell = el("td");
    cell.append(status);
    if (d.health && d.health.state === "trouble") {
      cell.append(" ", el("span", "badge bad", "trouble: " + d.health.problems.join("; ")));
    }
    const c = d.condition;
    if (c) {
      if (c.battery != null) cell.append(" ", el("span", "badge" + (c.battery_low ? " bad" : ""), "battery " + c.battery + " %"));
      if (c.tamper) cell.append(" ", el("span", "badge bad", "tamper open"));
      if (c.linkquality != null) cell.append(" ", el("span", "badge", "link " + c.linkquality));
      if (c.last_seen) cell.append(" ", el("small", "note-muted", "radio " + ago(c.last_seen)));
    }
    tr.append(el("td", null, id), el("td", null, d.announce ? d.announce.type.replace(/_/g, " ") : "?"), cell,
      el("td", "seen", ago(d.last_seen)));
    body.append(tr);
  }
}

function renderPhase() {
  const c = home.circadian;
  $("phase").textContent = "sun: " + (c ? c.phase : "?");
}

// ---- events and history -----------------------------------------------------------------------

function eventItem(e, past) {
  const li = el("li", past ? "past" : null);
  li.append(el("time", null, clock(e.ts)), el("span", "kind", e.event));
  if (e.area) li.append(el("span", "badge", e.area));
  li.append(document.createTextNode(e.message));
  if (e.user && !e.message.includes(e.user)) li.append(el("small", "note-muted", " by " + e.user));
  return li;
}

function renderEvents() {
  const list = $("events");
  list.replaceChildren();
  const live = home.events.slice().reverse();
  const seen = new Set(live.map((e) => e.ts + e.event));
  for (const e of live) list.append(eventItem(e, false));
  for (const e of pastEvents) if (!seen.has(e.ts + e.event)) list.append(eventItem(e, true));
  if (!list.children.length) list.append(el("li", "note", "no events yet"));
}

function historyUnavailable(message) {
  const note = $("history-note");
  note.textContent = message.startsWith("history unavailable") ? message : "history unavailable: " + message;
  note.hidden = false;
}

async function loadPastEvents() {
  try {
    const r = await fetch("/api/history?since=7d&kind=panel&limit=200");
    const body = await r.json();
    if (!r.ok) { historyUnavailable(body.error || "HTTP " + r.status); return; }
    $("history-note").hidden = true;
    pastEvents = body.rows
      .map((row) => { try { return JSON.parse(row.payload); } catch { return null; } })
      .filter((p) => p && p.event)
      .reverse()
      .slice(0, 30);
    renderEvents();
  } catch (err) {
    historyUnavailable(String(err));
  }
}

let chartTimer = null;
function scheduleChart() {
  clearTimeout(chartTimer);
  chartTimer = setTimeout(loadChart, 5000);
}

let activity = null;
async function loadChart() {
  const box = $("chart");
  try {
    const r = await fetch("/api/activity?since=24h");
    const body = await r.json();
    if (!r.ok) {
      activity = null;
      box.replaceChildren(el("p", "note", body.error || "history unavailable: HTTP " + r.status));
      return;
    }
    activity = body;
    drawChart();
  } catch (err) {
    box.replaceChildren(el("p", "note", "history unavailable: " + err));
  }
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function drawChart() {
  if (!activity) return;
  const box = $("chart");
  const width = Math.max(280, box.clientWidth || 600);
  const series = [["Openings", "openings", activity.openings], ["Motion", "motion", activity.motion]];
  const n = activity.openings.length;
  const left = 4, slot = (width - left * 2) / n, barHeight = 54, block = barHeight + 34;
  const height = series.length * block + 16;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": "openings and motion per hour" });
  const start = ms(activity.since);
  const every = slot < 22 ? 6 : 3;
  series.forEach(([title, cls, counts], s) => {
    const top = s * block;
    const max = Math.max(1, ...counts);
    const total = counts.reduce((a, b) => a + b, 0);
    chart.append(svg("text", { x: left, y: top + 12, class: "label" }, `${title}: ${total} in 24 h`));
    counts.forEach((count, i) => {
      const h = count ? Math.max(2, (count / max) * barHeight) : 0;
      const x = left + i * slot + slot * 0.15;
      const base = top + 18 + 12 + barHeight;
      chart.append(svg("rect", { x, y: base - h, width: slot * 0.7, height: h, class: cls, rx: 2 }));
      if (count) {
        chart.append(svg("text", { x: x + slot * 0.35, y: base - h - 2, "text-anchor": "middle" }, count));
      }
    });
    chart.append(svg("line", { x1: left, x2: width - left, y1: top + 30 + barHeight, y2: top + 30 + barHeight,
      stroke: "#2c3848" }));
  });
  for (let i = 0; i < n; i += every) {
    const hour = new Date(start + i * activity.bucket_s * 1000).getHours();
    chart.append(svg("text", { x: left + i * slot, y: height - 2, class: "label" }, hour + "h"));
  }
  box.replaceChildren(chart);
}

// ---- start ------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("[data-digit]")) {
    b.addEventListener("click", () => {
      if (pin.length < MAX_PIN) pin += b.dataset.digit;
      renderPin();
    });
  }
  $("clear").addEventListener("click", () => { pin = ""; renderPin(); });
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => command(b.dataset.action));
  }
  if (LOGIN) {
    const out = $("logout");
    out.hidden = false;
    out.addEventListener("click", async () => {
      try { await post("/logout", {}); } finally { location.href = "/login"; }
    });
  }
  setInterval(() => {
    tick();
    for (const tr of document.querySelectorAll("#devices tr[data-device]")) {
      const d = home.devices.get(tr.dataset.device);
      if (d) tr.querySelector(".seen").textContent = ago(d.last_seen);
    }
  }, 1000);
  setInterval(() => { loadChart(); loadPastEvents(); }, 5 * 60 * 1000);
  window.addEventListener("resize", () => drawChart());
  renderAll();
  connect();
  loadPastEvents();
  loadChart();
});
