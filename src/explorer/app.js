// The explorer page: reads the JSON API and redraws every two seconds. No framework, no
// build step; everything it shows comes from /api/chains, /api/chain and /api/block.
"use strict";

const SHOWN = 30;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const epochColour = (epoch) => PALETTE[epoch % PALETTE.length];
const TRADE_KINDS = new Set(["power_offer", "power_bid", "trade_agreement", "grid_vote", "grid_receipt",
  "power_settlement", "data_trade", "data_purchase", "data_agreement", "data_dispute"]);

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

// The trade records of the relay blocks shown, newest first.
function tradesOf(block, into) {
  for (const included of block.blocks || []) {
    for (const record of included.records || []) {
      const body = record.content.body;
      if (TRADE_KINDS.has(body.kind)) into.push({ record, body, relay: block });
    }
  }
}

function describe(body) {
  const parts = [];
  for (const key of ["wh", "price_per_kwh", "amount", "slot", "approve", "approved"]) {
    if (key in body) parts.push(`${key} ${body[key]}`);
  }
  for (const key of ["seller_name", "buyer_name", "voter_name"]) {
    if (key in body) parts.push(`${key.replace("_name", "")} ${body[key]}`);
  }
  return parts.join(", ");
}

function drawTrades(trades) {
  const rows = trades.slice(0, 40).map(({ record, body, relay }) => el("tr", { class: "trade" },
    el("td", {}, body.kind), el("td", {}, record.content.author_name || ""),
    el("td", {}, describe(body)), el("td", {}, `${relay.header.lane_name} #${relay.header.height}`)));
  const table = el("table", {}, el("tr", {}, el("th", {}, "record"), el("th", {}, "author"),
    el("th", {}, "terms"), el("th", {}, "relay block")), ...rows);
  document.getElementById("trades").replaceChildren(
    trades.length ? table : el("p", {}, "No trade records in the blocks shown."));
}

async function drawLanes(chains) {
  const lanes = document.getElementById("lanes");
  const columns = [];
  const trades = [];
  for (const lane of fullestLanes(chains)) {
    const from = Math.max(1, lane.height - SHOWN + 1);
    const url = `/api/chain?name=${encodeURIComponent(lane.chain_name)}&node=${encodeURIComponent(lane.node_name)}&from=${from}&limit=${SHOWN}`;
    const { blocks } = await getJson(url);
    const column = el("div", { class: "lane", "data-lane": lane.chain.lane_name },
      el("h3", {}, `lane ${lane.chain.lane_name}`),
      el("div", { class: "meta" }, `height ${lane.height}, copy of ${lane.node_name}`));
    for (const block of blocks.reverse()) {
      tradesOf(block, trades);
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
  trades.sort((a, b) => (b.relay.header.time || "").localeCompare(a.relay.header.time || ""));
  drawTrades(trades);
}

// Epochs per lane as bars on one time axis (what `inspect --timeline` draws as Mermaid).
function drawEpochs(elections, lanes) {
  const times = elections.map((e) => Date.parse(e.time)).concat(lanes.map((l) => Date.parse(l.head_time)));
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - start);
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
    return el("div", { class: "epoch-row" }, el("span", { class: "epoch-lane" }, lane.lane_name), bar);
  });
  document.getElementById("epochs").replaceChildren(...rows);
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
      const candidates = (e.candidates || []).length;
      column.append(el("div", { class: "election", style: `border-color: ${epochColour(e.epoch)}` },
        `epoch ${e.epoch}: ${e.reason}, relay ${e.relay_name}, backup ${e.backup_name || "none"} (${candidates} candidates)`,
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
    drawEpochs(listing.elections, listing.lanes || []);
    status.textContent = `${listing.chains.length} chains, ${listing.elections.length} elections, ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `error: ${e.message}`;
  }
}

// Live counters, when the server runs beside a federation (`run --serve`): records
// committed at their relay per second over the last 5 s, elections, and events seen.
const live = { events: 0, elections: 0, stamps: [] };
function startLive() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/events");
  source.onerror = () => { if (live.events === 0) source.close(); };
  source.addEventListener("elected", () => { live.elections += 1; });
  source.addEventListener("committed", (message) => {
    const event = JSON.parse(message.data);
    if (event.produced) live.stamps.push([Date.now(), (event.records || []).length]);
  });
  source.onmessage = () => {};
  const count = () => { live.events += 1; };
  for (const kind of ["elected", "committed", "acked", "took_over", "stalled", "recorded"]) {
    source.addEventListener(kind, count);
  }
  setInterval(() => {
    const now = Date.now();
    live.stamps = live.stamps.filter(([at]) => now - at <= 5000);
    const records = live.stamps.reduce((sum, [, n]) => sum + n, 0);
    if (live.events === 0) return;
    document.getElementById("live").textContent =
      `live: ${(records / 5).toFixed(0)} records/s on the relay chain, ${live.elections} elections, ${live.events} events`;
  }, 1000);
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
