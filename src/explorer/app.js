// The explorer page: reads the JSON API and redraws every two seconds. No framework, no
// build step; everything it shows comes from the JSON API (/api/chains, /api/chain,
// /api/block, /api/records, /api/trades, /api/takeovers) and the live events (/api/events).
"use strict";

const SHOWN = 12;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const epochColour = (epoch) => PALETTE[epoch % PALETTE.length];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.onclick = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function bits(urgency) {
  const span = el("span", { class: "bits" });
  for (const bit of urgency || []) span.append(el("span", { class: bit ? "bit1" : "bit0" }, bit ? "1" : "0"));
  return span;
}

// Each lane's most complete copy: the holder with the highest head.
function fullestLanes(chains) {
  const lanes = new Map();
  for (const c of chains) {
    if (c.chain.kind !== "relay") continue;
    const best = lanes.get(c.chain.lane);
    if (!best || c.height > best.height) lanes.set(c.chain.lane, c);
  }
  return [...lanes.values()].sort((a, b) => a.chain.lane - b.chain.lane);
}

async function show(hash) {
  try {
    const found = await getJson(`/api/block/${encodeURIComponent(hash)}`);
    document.getElementById("found").textContent = JSON.stringify(found, null, 2);
  } catch (e) {
    document.getElementById("found").textContent = `error: ${e.message}`;
  }
}

const short = (hex) => (hex || "").slice(0, 10);

function terms(trade) {
  const t = trade.terms || {};
  if (trade.kind === "power") {
    return `${t.wh} Wh, slot ${t.slot}, grid ${t.grid_approvals}/${t.grid_votes} approve`;
  }
  return `data digest ${short(t.digest)}…`;
}

// One trade's steps in protocol order, each a chip: click it for its relay block.
function stepChips(trade) {
  const span = el("span", { class: "steps" });
  for (const step of trade.steps || []) {
    const b = step.block;
    span.append(el("span", {
      class: `step step-${step.step.replace(" ", "-")}${b.on_relay_chain ? "" : " off-relay"}`,
      title: `${step.record.content.author_name} #${step.record.content.seq}, in ${b.chain_name} #${b.height} at ${b.time}${b.on_relay_chain ? "" : " (its consortium's chain only)"}`,
      onclick: () => show(b.hash),
    }, step.step));
  }
  return span;
}

// Trades as lifecycles (/api/trades): one row per trade id, its steps as chips.
async function drawTrades() {
  const out = document.getElementById("trades");
  try {
    const { trades, offers_open: open } = await getJson("/api/trades?limit=40");
    const rows = trades.map((trade) => el("tr", { class: "trade", "data-status": trade.status },
      el("td", { title: trade.trade }, `${trade.kind} ${short(trade.trade)}…`),
      el("td", {}, `${trade.seller_name} → ${trade.buyer_name}`),
      el("td", {}, terms(trade)), el("td", {}, stepChips(trade)),
      el("td", { class: "status" }, trade.status)));
    const table = el("table", {}, el("tr", {}, el("th", {}, "trade"), el("th", {}, "seller → buyer"),
      el("th", {}, "terms"), el("th", {}, "steps (dashed: on a consortium chain only)"), el("th", {}, "state")), ...rows);
    out.replaceChildren(trades.length ? table : el("p", {}, "No trade agreed on the relay chain yet."),
      el("p", { class: "meta" }, `${open} offers not (yet) taken.`));
  } catch (e) {
    out.replaceChildren(el("p", {}, `error: ${e.message}`));
  }
}

async function drawLanes(chains) {
  const lanes = document.getElementById("lanes");
  const columns = [];
  for (const lane of fullestLanes(chains)) {
    const from = Math.max(1, lane.height - SHOWN + 1);
    const url = `/api/chain?name=${encodeURIComponent(lane.chain_name)}&node=${encodeURIComponent(lane.node_name)}&from=${from}&limit=${SHOWN}`;
    const { blocks } = await getJson(url);
    const column = el("div", { class: "lane", "data-lane": lane.chain.lane_name },
      el("h3", {}, `lane ${lane.chain.lane_name}`),
      el("div", { class: "meta" }, `height ${lane.height}, copy of ${lane.node_name}`));
    for (const block of blocks.reverse()) {
      const h = block.header;
      const included = (block.blocks || []).map((b) => b.header.author_name).join(", ");
      column.append(el("div", {
        class: "block", style: `border-color: ${epochColour(h.epoch)}`,
        title: block.hash, onclick: () => show(block.hash),
      }, `#${h.height} epoch ${h.epoch} by ${h.relay_name} `, bits(h.urgency),
        el("br"), `${(block.blocks || []).length} consortium blocks${included ? ": " + included : ""}`));
    }
    columns.push(column);
  }
  lanes.replaceChildren(...columns);
}

// Epochs per lane as bars on one time axis (what `inspect --timeline` draws as Mermaid).
// With live events (/api/takeovers), each take-over is drawn from its election to its
// config block, and each stall as a red mark.
function drawEpochs(elections, lanes, takeovers) {
  const times = elections.map((e) => Date.parse(e.time)).concat(lanes.map((l) => Date.parse(l.head_time)));
  for (const t of takeovers) if (t.elected) times.push(Date.parse(t.elected.at));
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - start);
  const x = (time) => (100 * (Date.parse(time) - start)) / span;
  const rows = lanes.map((lane) => {
    const own = elections.filter((e) => e.consortium_name === lane.lane_name);
    const bar = el("div", { class: "epochs", "data-epochs": lane.lane_name });
    own.forEach((e, i) => {
      const from = Date.parse(e.time);
      const to = i + 1 < own.length ? Date.parse(own[i + 1].time) : Date.parse(lane.head_time);
      bar.append(el("span", {
        class: "epoch",
        style: `left: ${(100 * (from - start)) / span}%; width: ${Math.max(0.5, (100 * (to - from)) / span)}%; background: ${epochColour(e.epoch)}`,
        title: `epoch ${e.epoch} (${e.reason}): ${e.relay_name}, from ${e.time}`,
      }, `${e.epoch}`));
    });
    for (const t of takeovers.filter((t) => t.lane_name === lane.lane_name && t.elected)) {
      const end = t.took_over ? t.took_over.at : lane.head_time;
      bar.append(el("span", {
        class: "takeover",
        style: `left: ${x(t.elected.at)}%; width: ${Math.max(0.3, x(end) - x(t.elected.at))}%`,
        title: `epoch ${t.epoch}: elected ${t.elected.at}, ${t.took_over ? `took over after ${t.took_over_ms} ms` : "not taken over yet"}`,
      }));
      for (const stall of t.stalls) {
        bar.append(el("span", {
          class: "stall", style: `left: ${x(stall.at)}%`,
          title: `epoch ${t.epoch} stalled at ${stall.at}: waiting for ${(stall.waiting_for_names || []).join(", ")}`,
        }));
      }
    }
    return el("div", { class: "epoch-row" }, el("span", { class: "epoch-lane" }, lane.lane_name), bar);
  });
  document.getElementById("epochs").replaceChildren(...rows);
}

// The take-overs seen live: how long each new relay took from its election to its config
// block, and its stalls (SPEC §14).
function drawTakeovers(takeovers) {
  const out = document.getElementById("takeovers");
  if (!takeovers.length) {
    out.replaceChildren();
    return;
  }
  const at = (t) => (t.elected ? Date.parse(t.elected.at) : 0);
  const newest = takeovers.slice().sort((a, b) => at(b) - at(a)).slice(0, 40);
  const rows = newest.map((t) => el("tr", { class: "takeover-row" },
    el("td", {}, t.lane_name), el("td", {}, `${t.epoch}`),
    el("td", {}, t.elected ? `${t.elected.reason}, relay ${t.elected.relay_name}` : ""),
    el("td", {}, t.took_over ? `${t.took_over_ms} ms` : "not yet"),
    el("td", {}, t.activated ? "active" : ""),
    el("td", {}, t.stalls.length
      ? `${t.stalls.length + t.more_stalls} stall(s), waiting for ${(t.stalls[t.stalls.length - 1].waiting_for_names || []).join(", ")}`
      : "")));
  out.replaceChildren(el("table", {}, el("tr", {}, el("th", {}, "lane"), el("th", {}, "epoch"),
    el("th", {}, "election"), el("th", {}, "take-over"), el("th", {}, "supervisor"), el("th", {}, "stalls")),
  ...rows));
}

function drawElections(elections) {
  const byConsortium = new Map();
  for (const e of elections) {
    if (!byConsortium.has(e.consortium_name)) byConsortium.set(e.consortium_name, []);
    byConsortium.get(e.consortium_name).push(e);
  }
  const columns = [];
  for (const [name, list] of byConsortium) {
    const column = el("div", { class: "timeline", "data-consortium": name }, el("h3", {}, name));
    for (const e of list) {
      // The draw: each candidate's failure rate E_k and its chance P_k to be drawn relay.
      // Where the rules fixed the relay, P is each other candidate's chance to be drawn backup.
      const draw = el("span", { class: "draw" }, e.relay_fixed ? "relay fixed; backup drawn:" : "drawn:");
      for (const c of e.candidates || []) {
        const role = c.address === e.relay ? "relay" : c.address === e.backup ? "backup" : "";
        const chance = c.p_k === null ? "fixed" : `P=${(100 * c.p_k).toFixed(0)}%`;
        draw.append(el("span", { class: `candidate ${role}`, title: `${c.failures} failures in ${c.terms} terms` },
          `${c.address_name || short(c.address)} E=${c.e_k.toFixed(2)} ${chance}`));
      }
      column.append(el("div", { class: "election", style: `border-color: ${epochColour(e.epoch)}` },
        `epoch ${e.epoch}: ${e.reason}, relay ${e.relay_name}, backup ${e.backup_name || "none"}`,
        el("br"), draw,
        el("br"), el("small", {}, `${(e.time || "").replace("T", " ").replace("Z", "")} UTC, relay block #${e.height}`)));
    }
    columns.push(column);
  }
  document.getElementById("elections").replaceChildren(...columns);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const listing = await getJson("/api/chains");
    await drawLanes(listing.chains);
    drawElections(listing.elections);
    // Take-overs exist only where the server sees live events; elsewhere the API says 404.
    const takeovers = await getJson("/api/takeovers").then((t) => t.epochs, () => []);
    drawEpochs(listing.elections, listing.lanes || [], takeovers);
    drawTakeovers(takeovers);
    await drawTrades();
    status.textContent = `${listing.chains.length} chains, ${listing.elections.length} elections, ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `error: ${e.message}`;
  }
}

// Live counters, when the server runs beside a federation or simulation (`run --serve`,
// `simulate --serve`): over the last 5 s of the events' own time (virtual time in a
// simulation), records committed at their relay per second and their latency from
// creation, urgent and normal; elections, take-overs and invariants broken since the page
// opened.
const WINDOW_MS = 5000;
const live = { events: 0, elections: 0, takeovers: 0, broken: [], committed: [], latest: 0 };

function percentile(sorted, p) {
  if (!sorted.length) return "–";
  return `${sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]}`;
}

function startLive() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/events");
  source.onerror = () => { if (live.events === 0) source.close(); };
  source.addEventListener("elected", () => { live.elections += 1; });
  source.addEventListener("took_over", () => { live.takeovers += 1; });
  source.addEventListener("broken", (message) => { live.broken.push(JSON.parse(message.data).broken); });
  source.addEventListener("committed", (message) => {
    const event = JSON.parse(message.data);
    if (!event.produced) return;
    const at = Date.parse(event.at);
    live.latest = Math.max(live.latest, at);
    for (const r of event.records || []) live.committed.push([at, at - Date.parse(r.created_at), r.urgent]);
  });
  const count = () => { live.events += 1; };
  for (const kind of ["elected", "committed", "acked", "took_over", "stalled", "recorded", "broken"]) {
    source.addEventListener(kind, count);
  }
  setInterval(drawLive, 1000);
}

function drawLive() {
  if (live.events === 0) return;
  live.committed = live.committed.filter(([at]) => live.latest - at <= WINDOW_MS);
  const latencies = (urgent) => live.committed.filter(([, , u]) => u === urgent).map(([, ms]) => ms).sort((a, b) => a - b);
  const urgent = latencies(true);
  const normal = latencies(false);
  document.getElementById("live").replaceChildren(
    el("span", { class: "counter", "data-counter": "rate" }, `${(live.committed.length / (WINDOW_MS / 1000)).toFixed(0)} records/s`),
    el("span", { class: "counter", "data-counter": "urgent" }, `urgent p50 ${percentile(urgent, 50)} / p99 ${percentile(urgent, 99)} ms`),
    el("span", { class: "counter", "data-counter": "normal" }, `normal p50 ${percentile(normal, 50)} / p99 ${percentile(normal, 99)} ms`),
    el("span", { class: "counter", "data-counter": "elections" }, `${live.elections} elections, ${live.takeovers} take-overs`),
    el("span", { class: live.broken.length ? "counter broken" : "counter", "data-counter": "broken", title: live.broken.join("\n") },
      `invariants broken: ${live.broken.length}`));
}

async function searchRecords() {
  const params = new URLSearchParams();
  for (const [id, key] of [["member", "member"], ["kind", "kind"], ["seq", "seq"], ["rhash", "hash"]]) {
    const value = document.getElementById(id).value.trim();
    if (value) params.set(key, value);
  }
  params.set("limit", "50");
  const out = document.getElementById("proofs");
  try {
    const { records } = await getJson(`/api/records?${params}`);
    const rows = records.map((found) => {
      const c = found.record.content;
      const cb = found.consortium_block;
      const rb = found.relay_block;
      return el("tr", { class: "proof" },
        el("td", {}, `${c.author_name} #${c.seq}`), el("td", {}, c.body.kind),
        el("td", {}, `⊂ consortium block ${cb.author_name} #${cb.height}`),
        el("td", {}, `⊂ relay block ${rb.lane_name} #${rb.height}`),
        el("td", {}, found.verified ? "proof verified" : "PROOF FAILED"));
    });
    out.replaceChildren(records.length
      ? el("table", {}, el("tr", {}, el("th", {}, "record"), el("th", {}, "kind"), el("th", {}, "in"),
        el("th", {}, "in"), el("th", {}, "Merkle paths")), ...rows)
      : el("p", {}, "No record on the relay chain matches."));
  } catch (e) {
    out.replaceChildren(el("p", {}, `error: ${e.message}`));
  }
}

document.getElementById("records").addEventListener("submit", (event) => {
  event.preventDefault();
  searchRecords();
});

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  show(document.getElementById("hash").value.trim());
});
refresh();
setInterval(refresh, 2000);
startLive();
