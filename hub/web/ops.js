// OrderHub operator page: the inventory map and lane health, refreshed every few seconds.
// Plain JavaScript, no dependencies. Data is written with textContent only, never as HTML.
// The bearer token lives in this tab's sessionStorage and goes only to this hub's /ops/api.
"use strict";

(function () {
  const TOKEN_KEY = "orderhub.ops.token";
  const REFRESH_MS = 5000;
  const params = new URLSearchParams(window.location.search);
  const numbers = new Intl.NumberFormat("en-US");
  const $ = (id) => document.getElementById(id);

  const COLUMNS = [
    ["on_hand", "On hand"],
    ["reserved", "Reserved"],
    ["safety_stock", "Safety"],
    ["available", "Available"],
    ["sku_count", "SKUs"],
    ["warehouse_count", "Warehouses"],
    ["out_of_stock_skus", "Out of stock"],
  ];
  const KEY_NAMES = {
    province: ["province", "Province"],
    city: ["city", "City"],
    warehouse: ["warehouse_id", "Warehouse"],
    category: ["category", "Category"],
    sku: ["sku", "SKU"],
  };

  let timer = null;
  let loading = false;

  function token() {
    return window.sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function showSignin(message) {
    stop();
    $("board").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function showBoard() {
    $("signin").hidden = true;
    $("board").hidden = false;
    $("signout").hidden = false;
  }

  class Refused extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function getJson(path, query) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value) url.searchParams.set(key, value);
    }
    const response = await fetch(url, {
      headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = (body && body.message) || response.statusText || "request failed";
      throw new Refused(response.status, message);
    }
    return body;
  }

  function filters() {
    return {
      warehouse: params.get("warehouse") || "",
      province: params.get("province") || "",
      category: params.get("category") || "",
    };
  }

  // ------------------------------------------------------------------ inventory map

  function renderInventory(data) {
    const table = $("inventory");
    const keys = data.group_by.map((d) => KEY_NAMES[d]);
    const head = el("tr");
    for (const [, title] of keys) head.appendChild(el("th", title));
    for (const [, title] of COLUMNS) head.appendChild(el("th", title, "num"));
    table.tHead.replaceChildren(head);

    const rows = data.rows.map((row) => {
      const tr = el("tr");
      tr.dataset.key = keys.map(([field]) => row[field]).join("|");
      for (const [field] of keys) {
        const td = el("td", row[field] || "—");
        td.dataset.col = field;
        tr.appendChild(td);
      }
      for (const [field] of COLUMNS) tr.appendChild(numberCell(row, field));
      return tr;
    });
    table.tBodies[0].replaceChildren(...rows);

    const total = el("tr");
    total.dataset.key = "TOTAL";
    const label = el("td", "Total");
    label.colSpan = Math.max(keys.length, 1);
    total.appendChild(label);
    for (const [field] of COLUMNS) total.appendChild(numberCell(data.total, field));
    table.tFoot.replaceChildren(total);

    const note = data.rows.length
      ? (data.rows.length === 1 ? "1 row" : `${numbers.format(data.rows.length)} rows`) +
        (data.truncated ? " (cut at the limit)" : "")
      : "No stock levels match.";
    $("inventory-note").textContent = note + ` · as of ${when(data.as_of)}`;
  }

  function numberCell(row, field) {
    const value = row[field];
    const td = el("td", numbers.format(value), "num");
    td.dataset.col = field;
    td.dataset.value = String(value);
    if (field === "available") {
      if (value === 0 && row.on_hand > 0) td.classList.add("zero");
      const meter = el("span", null, "meter");
      const fill = el("span");
      fill.style.width = row.on_hand > 0 ? Math.min(100, (100 * value) / row.on_hand) + "%" : "0%";
      meter.appendChild(fill);
      td.appendChild(meter);
    }
    if (field === "out_of_stock_skus" && value > 0) td.classList.add("zero");
    return td;
  }

  // ------------------------------------------------------------------ lanes

  function renderLanes(data) {
    const rows = data.lanes.map((lane) => {
      const tr = el("tr");
      tr.dataset.lane = [lane.warehouse_id, lane.carrier, lane.destination_province].join("|");
      tr.appendChild(el("td", lane.warehouse_id));
      tr.appendChild(el("td", lane.carrier));
      tr.appendChild(el("td", lane.destination_province));
      const state = el("td");
      state.dataset.col = "state";
      state.appendChild(el("span", lane.state.replace("_", "-"), "badge " + lane.state));
      tr.appendChild(state);
      const share = el("td", lane.judged ? (100 * lane.late_ratio).toFixed(1) + "%" : "–", "num");
      if (!lane.judged) share.title = "too few outcomes in the last judged window";
      share.dataset.col = "late_ratio";
      share.dataset.value = String(lane.late_ratio);
      tr.appendChild(share);
      const counts = el("td", `${numbers.format(lane.late)} / ${numbers.format(lane.outcomes)}`, "num");
      counts.dataset.col = "outcomes";
      counts.dataset.value = String(lane.outcomes);
      tr.appendChild(counts);
      tr.appendChild(el("td", lane.since ? when(lane.since) : "—"));
      tr.appendChild(el("td", reasonOf(lane), "reason"));
      return tr;
    });
    if (!rows.length) {
      const empty = el("tr");
      const td = el("td", "No lanes with outcomes yet.", "muted");
      td.colSpan = 8;
      empty.appendChild(td);
      rows.push(empty);
    }
    $("lanes").tBodies[0].replaceChildren(...rows);
    const count = data.lanes.length === 1 ? "1 lane" : `${numbers.format(data.lanes.length)} lanes`;
    $("lanes-note").textContent = `${count} · as of ${when(data.as_of)}`;
  }

  function reasonOf(lane) {
    let text = lane.reason || "";
    if (lane.state === "HALF_OPEN") text += ` (probes ${lane.probe_late} late of ${lane.probes})`;
    if (lane.state === "OPEN" && lane.reopens_at) text += ` (half-open at ${when(lane.reopens_at)})`;
    return text || "—";
  }

  // ------------------------------------------------------------------ status tiles

  function tile(id, text, level) {
    const node = $(id);
    node.querySelector(".value").textContent = text;
    node.classList.remove("warn", "bad");
    if (level) node.classList.add(level);
  }

  function renderStatus(data) {
    const wms = data.wms;
    const lag = wms.lag_seconds;
    tile("tile-lag", lag === null ? "?" : seconds(lag), lag === null ? "warn" : lag > 30 ? "bad" : lag > 10 ? "warn" : "");
    const waiting = wms.pending === null ? null : wms.pending + wms.ack_pending;
    tile("tile-pending", waiting === null ? "?" : numbers.format(waiting), wms.connected === false ? "bad" : "");
    const outbox = data.outbox;
    tile(
      "tile-outbox",
      outbox.pending === null ? "?" : numbers.format(outbox.pending),
      outbox.oldest_age_seconds > 60 ? "bad" : outbox.oldest_age_seconds > 10 ? "warn" : ""
    );
    tile("tile-dead", data.dead_letters_open === null ? "?" : numbers.format(data.dead_letters_open), data.dead_letters_open > 0 ? "warn" : "");
    const lanes = data.lanes;
    const total = lanes.CLOSED + lanes.OPEN + lanes.HALF_OPEN;
    tile("tile-lanes", `${lanes.OPEN} / ${lanes.HALF_OPEN}`, lanes.OPEN > 0 ? "bad" : lanes.HALF_OPEN > 0 ? "warn" : "");
    $("tile-lanes").querySelector(".hint").textContent = `of ${numbers.format(total)} lanes with outcomes`;
  }

  function seconds(value) {
    if (value < 1) return "0 s";
    if (value < 120) return value.toFixed(0) + " s";
    return (value / 60).toFixed(0) + " min";
  }

  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString("sv-SE", { hour12: false }).replace("T", " ");
  }

  // ------------------------------------------------------------------ the loop

  async function refresh() {
    if (loading) return;
    loading = true;
    try {
      const f = filters();
      const [inventory, lanes, status] = await Promise.all([
        getJson("/ops/api/inventory", { by: $("by").value, ...f }),
        getJson("/ops/api/lanes", { warehouse: f.warehouse, state: $("troubled").checked ? "OPEN,HALF_OPEN" : "" }),
        getJson("/ops/api/status"),
      ]);
      renderInventory(inventory);
      renderLanes(lanes);
      renderStatus(status);
      $("problem").hidden = true;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString("sv-SE");
      document.body.dataset.loaded = "yes";
    } catch (err) {
      if (err instanceof Refused && err.status === 401) {
        window.sessionStorage.removeItem(TOKEN_KEY);
        showSignin("The hub did not accept this token: " + err.message);
        return;
      }
      if (err instanceof Refused && err.status === 403) {
        window.sessionStorage.removeItem(TOKEN_KEY);
        showSignin(err.message);
        return;
      }
      $("problem").textContent = "Could not refresh (showing the last data): " + err.message;
      $("problem").hidden = false;
    } finally {
      loading = false;
    }
    schedule();
  }

  function schedule() {
    stop();
    timer = window.setTimeout(() => {
      if (document.visibilityState === "visible") refresh();
      else schedule();
    }, REFRESH_MS);
  }

  function stop() {
    if (timer !== null) window.clearTimeout(timer);
    timer = null;
  }

  function start() {
    showBoard();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const by = params.get("by");
    if (by && [...$("by").options].some((o) => o.value === by)) $("by").value = by;
    if (params.get("troubled") === "1") $("troubled").checked = true;
    $("by").addEventListener("change", refresh);
    $("troubled").addEventListener("change", refresh);
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
      if (!value) return;
      window.sessionStorage.setItem(TOKEN_KEY, value);
      start();
    });
    $("signout").addEventListener("click", () => {
      window.sessionStorage.removeItem(TOKEN_KEY);
      showSignin("");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && token() && timer === null && !loading) refresh();
    });
    if (token()) start();
    else showSignin("");
  });
})();
