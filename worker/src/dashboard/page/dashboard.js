// The worker dashboard: polls /api/status (docs/DASHBOARD.md) and redraws the figures and charts.
// Every text shown is set with textContent, never as HTML: slash reasons and errors come from peers.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const CHART_W = 600;
const CHART_H = 160;
const PAD = { left: 52, right: 8, top: 18, bottom: 18 };

const CHARTS = {
  "chart-jobs": {
    format: count,
    lines: [
      { key: "jobs_done", label: "done", color: "#1f6feb" },
      { key: "jobs_verified", label: "verified", color: "#1f8a4c" },
      { key: "jobs_failed", label: "failed", color: "#c53030" },
    ],
  },
  "chart-earnings": {
    format: count,
    lines: [
      { key: "tickets_received", label: "tickets received", color: "#1f6feb" },
      { key: "tickets_won", label: "won", color: "#b7791f" },
      { key: "tickets_redeemed", label: "redeemed", color: "#1f8a4c" },
    ],
  },
  "chart-storage": {
    format: bytes,
    lines: [{ key: "store_used_bytes", label: "used", color: "#1f6feb" }],
  },
};

function $(id) {
  return document.getElementById(id);
}

function set(id, text, raw) {
  const el = $(id);
  el.textContent = text;
  if (raw !== undefined) el.dataset.value = String(raw);
}

function count(n) {
  return Number(n).toLocaleString("en-US");
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return (u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + " " + units[u];
}

function when(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString();
}

function ago(ms, now) {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function fixed(n, digits, unit) {
  return n === null || n === undefined ? "—" : Number(n).toFixed(digits) + unit;
}

function node(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// The history's points and one more for now, so a change shows at once, between two samples.
function pointsWithNow(status) {
  const now = {
    t_unix_ms: status.now_unix_ms,
    jobs_done: status.jobs.done,
    jobs_failed: status.jobs.failed,
    jobs_verified: status.jobs.verified,
    tickets_received: status.tickets.received,
    tickets_won: status.tickets.won,
    tickets_redeemed: status.tickets.redeemed,
    store_used_bytes: status.store.used_bytes,
  };
  return status.series.concat([now]);
}

function drawChart(svg, spec, points) {
  svg.replaceChildren();
  const t0 = points[0].t_unix_ms;
  const t1 = Math.max(points[points.length - 1].t_unix_ms, t0 + 1);
  let max = 1;
  for (const p of points) for (const line of spec.lines) max = Math.max(max, p[line.key] || 0);
  const w = CHART_W - PAD.left - PAD.right;
  const h = CHART_H - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => PAD.top + h - (v / max) * h;
  for (const frac of [0, 0.5, 1]) {
    const gy = PAD.top + h - frac * h;
    svg.appendChild(node("line", { class: "grid", x1: PAD.left, x2: CHART_W - PAD.right, y1: gy, y2: gy }));
    svg.appendChild(node("text", { x: PAD.left - 4, y: gy + 4, "text-anchor": "end" }, spec.format(max * frac)));
  }
  svg.appendChild(node("text", { x: PAD.left, y: CHART_H - 4 }, ago(t0, t1)));
  svg.appendChild(node("text", { x: CHART_W - PAD.right, y: CHART_H - 4, "text-anchor": "end" }, "now"));
  let legendX = PAD.left;
  for (const line of spec.lines) {
    const coords = points.map((p) => x(p.t_unix_ms).toFixed(1) + "," + y(p[line.key] || 0).toFixed(1));
    svg.appendChild(
      node("polyline", {
        points: coords.join(" "),
        stroke: line.color,
        "data-key": line.key,
        "data-points": points.length,
      }),
    );
    svg.appendChild(node("rect", { x: legendX, y: 4, width: 10, height: 10, fill: line.color }));
    const label = node("text", { x: legendX + 14, y: 13 }, line.label);
    svg.appendChild(label);
    legendX += 22 + line.label.length * 6.5;
  }
  svg.dataset.points = String(points.length);
}

function render(s) {
  $("problem").hidden = true;
  set("worker-id", s.worker_id);
  const state = $("connection-state");
  state.textContent = s.connection.state;
  state.className = "pill " + s.connection.state;
  set("updated", "updated " + new Date(s.now_unix_ms).toLocaleTimeString());

  set("coordinator-url", s.connection.coordinator);
  set("coordinator-id", s.connection.coordinator_id || "—");
  set("connection-since", ago(s.connection.since_unix_ms, s.now_unix_ms));
  set("connection-attaches", count(s.connection.attaches), s.connection.attaches);
  set("connection-switches", count(s.connection.switches), s.connection.switches);
  set("connection-error", s.connection.last_error || "—");

  set("encoder-name", s.encoder.name + (s.encoder.hardware ? " (hardware)" : " (software)"));
  set("encoder-reason", s.encoder.reason);
  set("encoder-sessions", s.encoder.running + " of " + s.encoder.sessions, s.encoder.running);
  set("encoder-hasher", s.encoder.hasher);

  $("bench-none").hidden = s.bench !== null;
  $("bench-figures").hidden = s.bench === null;
  if (s.bench !== null) {
    const b = s.bench;
    set("bench-hash", fixed(b.hash_gb_per_s, 2, " GB/s") + (b.hash_method ? " (" + b.hash_method + ")" : ""));
    set("bench-encode", fixed(b.encode_fps, 1, " fps") + (b.encoder ? " (" + b.encoder + ")" : ""));
    set("bench-dual", "hash " + fixed(b.hash_loss_percent, 1, " %") + ", encode " + fixed(b.encode_loss_percent, 1, " %"));
    set("bench-ran", when(b.ran_unix_ms));
  }

  set("jobs-done", count(s.jobs.done), s.jobs.done);
  set("jobs-failed", count(s.jobs.failed), s.jobs.failed);
  set("jobs-verified", count(s.jobs.verified), s.jobs.verified);
  set("jobs-payment-refused", count(s.jobs.payment_refused), s.jobs.payment_refused);

  const t = s.tickets;
  set("tickets-received", count(t.received), t.received);
  set("tickets-won", count(t.won), t.won);
  set("tickets-redeemed", count(t.redeemed), t.redeemed);
  set("tickets-redeemed-value", count(t.redeemed_value), t.redeemed_value);
  set("tickets-waiting", count(t.waiting) + " (" + count(t.waiting_face_value) + ")", t.waiting);
  set("hosting-rewards", s.hosting_rewards === null ? "none yet" : count(s.hosting_rewards));

  const a = s.account;
  set("account-stake", a ? count(a.stake) : "—");
  set("account-bonded", a ? count(a.bonded_to_self) : "—");
  set("account-balance", a ? count(a.balance) : "—");
  set("account-round", a ? count(a.round) : "—");
  set("account-suspended", a ? (a.suspended_until ? count(a.suspended_until) : "not suspended") : "—");

  set("slashes-count", count(s.slashes.count), s.slashes.count);
  set("slashes-amount", count(s.slashes.amount), s.slashes.amount);
  const rows = s.slashes.recent.map((slash) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[count(slash.round), "num"], [count(slash.amount), "num"], [slash.reason, "reason"]]) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  $("slashes-list").replaceChildren(...rows);

  const st = s.store;
  set("store-used", bytes(st.used_bytes), st.used_bytes);
  set("store-capacity", bytes(st.capacity_bytes), st.capacity_bytes);
  set("store-blobs", count(st.blobs), st.blobs);
  set("store-transfers", count(st.stored) + " / " + count(st.refused) + " / " + count(st.served));
  const share = st.capacity_bytes > 0 ? Math.min(1, st.used_bytes / st.capacity_bytes) : 0;
  $("store-bar").style.width = (share * 100).toFixed(2) + "%";

  const c = s.challenges;
  set("challenges-rate", c.pass_rate === null ? "no challenge yet" : (c.pass_rate * 100).toFixed(1) + " %");
  set("challenges-answered", count(c.answered), c.answered);
  set("challenges-blobs", count(c.blobs_proved) + " / " + count(c.blobs_failed));

  set("scrubs-runs", count(s.scrubs.runs), s.scrubs.runs);
  set("scrubs-totals", count(s.scrubs.checked) + " / " + count(s.scrubs.dropped));
  const last = s.scrubs.last;
  set(
    "scrubs-last",
    last
      ? ago(last.at_unix_ms, s.now_unix_ms) + ": " + count(last.checked) + " checked, " + count(last.corrupt) +
          " corrupt, " + count(last.missing) + " missing, " + count(last.repaired_outboards) + " outboards repaired"
      : "no scrub yet",
  );

  const points = pointsWithNow(s);
  for (const [id, spec] of Object.entries(CHARTS)) drawChart($(id), spec, points);
}

function unreachable(why) {
  const problem = $("problem");
  problem.textContent = "cannot read the worker's status: " + why + " (is the worker still running?)";
  problem.hidden = false;
  const state = $("connection-state");
  state.textContent = "unreachable";
  state.className = "pill unreachable";
}

async function poll() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (e) {
    unreachable(e.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
