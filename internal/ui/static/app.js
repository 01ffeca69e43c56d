// podnet ui: fetches /api/* and draws it. Everything is written with
// textContent (never innerHTML): names come from the cluster.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function row(tbody, cells) {
  const tr = el("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", {}, c));
  tbody.append(tr);
  return tr;
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const resp = await fetch(path, opts);
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

// Topology, Services and NetworkPolicies with their enforcement status.
// The lists are arrays, never null (the server's contract; a unit test).

let topology = null;
let policyStatus = [];

function drawTopology() {
  if (!topology) return;
  const ns = $("topo-ns").value.trim();
  const nodes = $("nodes");
  nodes.replaceChildren();
  const byNode = new Map(topology.nodes.map((n) => [n.name, []]));
  const unscheduled = [];
  for (const p of topology.pods) {
    if (ns && p.namespace !== ns) continue;
    (byNode.get(p.node) || unscheduled).push(p);
  }
  const box = (title, meta, pods) => {
    const b = el("div", { class: "node" }, el("h3", {}, title), el("div", { class: "meta" }, meta));
    for (const p of pods) {
      b.append(el("span", { class: "pod", title: p.phase }, p.namespace + "/" + p.name + " ", el("span", { class: "ip" }, p.ip || p.phase)));
    }
    return b;
  };
  for (const n of topology.nodes) {
    const meta = [n.address, (n.podCIDRs || []).join(","), n.ready ? "Ready" : "NotReady"].filter(Boolean).join(" · ");
    nodes.append(box(n.name, meta, byNode.get(n.name)));
  }
  if (unscheduled.length) nodes.append(box("(no node)", "pending", unscheduled));

  const svcs = $("services").tBodies[0];
  svcs.replaceChildren();
  for (const s of topology.services) {
    if (ns && s.namespace !== ns) continue;
    row(svcs, [s.namespace + "/" + s.name, s.type, el("td", { class: "mono" }, s.clusterIP), (s.ports || []).join(", ")]);
  }
  drawPolicies();
}

function drawPolicies() {
  const ns = $("topo-ns").value.trim();
  const status = new Map(policyStatus.map((p) => [p.namespace + "/" + p.name, p]));
  const tbody = $("policies").tBodies[0];
  tbody.replaceChildren();
  for (const p of topology.policies) {
    if (ns && p.namespace !== ns) continue;
    const key = p.namespace + "/" + p.name;
    const st = status.get(key);
    let inForce = "?", not = "";
    if (st) {
      const nodes = st.nodes || [];
      const ok = nodes.filter((n) => n.state === "InForce");
      inForce = ok.length + "/" + nodes.length;
      not = nodes.filter((n) => n.state !== "InForce").map((n) => n.node + " " + n.state + (n.error ? ": " + n.error : "")).join("; ");
    }
    row(tbody, [key, el("td", { class: "mono" }, p.podSelector || "(all pods)"), p.types.join(","),
      el("td", { class: not ? "lagging" : "allowed" }, inForce), not || "-"]);
  }
}

async function refresh() {
  try {
    let statusError = "";
    const [t, ps] = await Promise.all([api("/api/topology"), api("/api/policies").catch((e) => { statusError = e.message; return []; })]);
    topology = t;
    policyStatus = ps;
    drawTopology();
    $("status").textContent = `${t.nodes.length} nodes, ${t.pods.length} pods · updated ${new Date().toLocaleTimeString()}` +
      (statusError ? " · policy status: " + statusError : "");
  } catch (e) {
    $("status").textContent = "cluster: " + e.message;
  }
}

// Live flows.

let flowSource = null;
const maxFlows = 500;

// endpoint names a flow's end: its pod, else the node whose address it
// is (kubelet probes, host-network pods), else the address.
function endpoint(e) {
  const node = topology && topology.nodes.find((n) => n.address === e.ip);
  let s = e.pod ? e.namespace + "/" + e.pod : node ? "node/" + node.name : e.ip;
  if (e.port) s += ":" + e.port;
  return s;
}

function addFlow(r) {
  const tbody = $("flows").tBodies[0];
  let verdict = r.verdict;
  if (r.event === "end") verdict = "ended";
  if (r.reason) verdict += " (" + r.reason + ")";
  const svc = r.service ? r.service.namespace + "/" + r.service.name + ":" + r.service.port : "-";
  const tr = el("tr", { class: "flow" });
  tr.dataset.time = r.time;
  for (const c of [new Date(r.time).toLocaleTimeString([], { hour12: false }), r.node, el("span", { class: r.verdict }, verdict), r.direction || "-",
    endpoint(r.source), endpoint(r.destination), svc, r.protocol, r.policyText || "-"]) {
    tr.append(el("td", {}, c));
  }
  // Newest first: the nodes' streams interleave, so insert by time.
  const t = Date.parse(r.time);
  const after = [...tbody.rows].find((row) => Date.parse(row.dataset.time) <= t);
  tbody.insertBefore(tr, after || null);
  while (tbody.rows.length > maxFlows) tbody.deleteRow(-1);
}

function follow() {
  if (flowSource) flowSource.close();
  const q = new URLSearchParams();
  if ($("flows-ns").value.trim()) q.set("namespace", $("flows-ns").value.trim());
  if ($("flows-verdict").value) q.set("verdict", $("flows-verdict").value);
  flowSource = new EventSource("/api/flows?" + q);
  // Each (re)connection sends the nodes' held records again: start over.
  flowSource.onopen = () => { $("flows").tBodies[0].replaceChildren(); $("flows-state").textContent = "following"; };
  flowSource.onerror = () => { $("flows-state").textContent = "reconnecting…"; };
  flowSource.addEventListener("record", (ev) => addFlow(JSON.parse(ev.data)));
  flowSource.addEventListener("nodeerror", (ev) => {
    const e = JSON.parse(ev.data);
    $("flows-state").textContent = "no records from " + e.node + ": " + e.error;
  });
}

// Trace.

async function runTrace(ev) {
  ev.preventDefault();
  const verdict = $("trace-verdict"), text = $("trace-text");
  verdict.textContent = "tracing…";
  verdict.className = "verdict muted";
  text.textContent = "";
  try {
    const r = await api("/api/trace", { namespace: $("trace-ns").value.trim(), pod: $("trace-pod").value.trim(),
      target: $("trace-target").value.trim(), probe: $("trace-probe").checked });
    let v = r.explanation.verdict.toUpperCase();
    if (r.probe) v += r.probe.agrees ? " · probe agrees" : " · probe DISAGREES";
    verdict.textContent = v;
    verdict.className = "verdict " + r.explanation.verdict;
    text.textContent = r.text + (r.warnings || []).map((w) => "warning: policy " + w + "\n").join("");
  } catch (e) {
    verdict.textContent = e.message;
    verdict.className = "verdict error";
  }
}

// Connectivity matrix.

async function runMatrix(ev) {
  ev.preventDefault();
  const state = $("matrix-state"), table = $("matrix");
  state.textContent = "probing…";
  state.className = "muted";
  table.replaceChildren();
  try {
    const r = await api("/api/matrix", {
      namespaces: $("matrix-ns").value.split(",").map((s) => s.trim()).filter(Boolean),
      selector: $("matrix-selector").value.trim(), port: Number($("matrix-port").value), protocol: $("matrix-proto").value });
    const m = r.matrix;
    const head = el("tr", {}, el("th"));
    m.tos.forEach((to, i) => head.append(el("th", { title: to }, String(i + 1))));
    table.append(head);
    m.froms.forEach((from, i) => {
      const tr = el("tr", {}, el("th", { class: "from" }, (i + 1) + " " + from));
      for (const to of m.tos) {
        const ok = m.allowed[from][to];
        tr.append(el("td", { class: ok ? "dot" : "X", title: from + " -> " + to + (ok ? "" : ": " + (m.why[from + " -> " + to] || "")) }, ok ? "." : "X"));
      }
      table.append(tr);
    });
    let connected = 0;
    for (const f of m.froms) for (const t of m.tos) if (m.allowed[f][t]) connected++;
    state.textContent = `${connected} of ${m.froms.length * m.tos.length} pairs connect` + (r.error ? " · " + r.error : "");
  } catch (e) {
    state.textContent = e.message;
    state.className = "error";
  }
}

$("topo-ns").addEventListener("input", drawTopology);
$("flows-form").addEventListener("submit", (ev) => { ev.preventDefault(); follow(); });
$("trace-form").addEventListener("submit", runTrace);
$("matrix-form").addEventListener("submit", runMatrix);
// Follow once the topology is known: flows name node addresses by it.
refresh().then(follow);
setInterval(refresh, 5000);
