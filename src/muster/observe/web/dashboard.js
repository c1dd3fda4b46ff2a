// muster's dashboard: polls /api/dashboard every 2 s and redraws. Read-only.
// Registry values are hostile input: every text goes in through textContent, never HTML.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let lastSeq = 0;
  const events = [];
  const MAX_EVENTS = 200;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }

  function ms(seconds) {
    return seconds == null ? "-" : (seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0) + " ms";
  }

  function spark(points) {
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 20");
    svg.setAttribute("preserveAspectRatio", "none");
    if (points && points.length > 1) {
      const max = Math.max(...points, 1e-9);
      const step = 120 / (points.length - 1);
      const line = document.createElementNS(svgNS, "polyline");
      line.setAttribute("points", points.map((p, i) => (i * step).toFixed(1) + "," + (19 - (p / max) * 18).toFixed(1)).join(" "));
      svg.append(line);
    }
    return svg;
  }

  function serverRow(service, s) {
    const codes = s.codes ? ["2xx", "3xx", "4xx", "5xx"].map((c) => s.codes[c] || 0).join("/") : "-";
    const errors = (s.errors || 0) + (s.timeouts || 0);
    const tr = el("tr", { class: "server", "data-service": service, "data-addr": s.addr, "data-state": s.state },
      el("td", {}, s.addr),
      el("td", { class: "state-" + s.state.replace(" ", "-") }, s.state),
      el("td", { class: "num" }, s.weight == null ? "-" : s.weight),
      el("td", { class: "num rps" }, s.rps == null ? "-" : s.rps.toFixed(1)),
      el("td", { class: "spark-col" }, spark(s.spark)),
      el("td", { class: "num requests" }, s.requests == null ? "-" : s.requests),
      el("td", { class: "num" }, s.requests == null ? "-" : errors + (s.error_rate ? " (" + (s.error_rate * 100).toFixed(1) + "%)" : "")),
      el("td", { class: "num" }, ms(s.p50)),
      el("td", { class: "num" }, ms(s.p95)),
      el("td", { class: "num" }, codes));
    return tr;
  }

  function drawServices(data) {
    const body = document.querySelector("#services tbody");
    const rows = [];
    for (const svc of data.services) {
      const note = (svc.registered ? "" : " (not registered)") + (svc.held ? " - panic guard holds " + svc.held : "");
      rows.push(el("tr", { class: "service", "data-service": svc.name },
        el("td", { colspan: "3" }, svc.name + note + " - " + svc.servers.filter((s) => s.registered).length + " server(s)"),
        el("td", { class: "num" }, svc.rps.toFixed(1)), el("td", { class: "spark-col" }),
        el("td", { class: "num" }, svc.requests), el("td", { colspan: "4" })));
      for (const s of svc.servers) rows.push(serverRow(svc.name, s));
    }
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "10" }, "No service is registered.")));
    body.replaceChildren(...rows);
  }

  function drawRejected(data) {
    const list = document.getElementById("rejected");
    document.getElementById("rejected-count").textContent = "(" + data.rejected.length + ")";
    list.replaceChildren(...(data.rejected.length ? data.rejected.map((r) =>
      el("li", { class: "rejected", "data-key": r.key }, el("code", {}, r.key), " - ", el("span", { class: "why" }, r.reason)))
      : [el("li", {}, "None: every entry is valid.")]));
  }

  function drawEvents(data) {
    for (const e of data.events) {
      if (e.seq > lastSeq) { events.push(e); lastSeq = e.seq; }
    }
    events.splice(0, Math.max(0, events.length - MAX_EVENTS));
    const list = document.getElementById("events");
    list.replaceChildren(...events.slice().reverse().map((e) => {
      const when = new Date(e.time * 1000).toLocaleTimeString();
      const li = el("li", { class: "event", "data-kind": e.kind }, el("span", { class: "kind kind-" + e.kind }, e.kind), " ", when, " ", e.text);
      if (e.detail) li.append(el("details", {}, el("summary", {}, "config diff"), el("pre", {}, e.detail)));
      return li;
    }));
  }

  function draw(data) {
    const ready = document.getElementById("ready");
    ready.textContent = data.ready ? "ready" : "not ready";
    ready.className = "badge " + (data.ready ? "ok" : "bad");
    const reason = document.getElementById("reason");
    reason.hidden = !!data.ready;
    reason.textContent = data.ready ? "" : data.reason;
    const info = data.info || {};
    document.getElementById("facts").textContent = [
      info.backend && "backend " + info.backend,
      info.endpoints && info.endpoints.length && "endpoints " + info.endpoints.join(", "),
      "revision " + (data.revision == null ? "-" : data.revision),
      info.dataplane && "data plane " + info.dataplane,
    ].filter(Boolean).join(" \u00b7 ");
    document.getElementById("no-traffic").hidden = data.traffic.available;
    document.getElementById("updated").textContent = "updated " + new Date(data.time * 1000).toLocaleTimeString();
    drawServices(data);
    drawRejected(data);
    drawEvents(data);
  }

  async function poll() {
    try {
      const resp = await fetch("api/dashboard?after=" + lastSeq, { headers, cache: "no-store" });
      if (!resp.ok) throw new Error(resp.status + " " + (await resp.text()));
      draw(await resp.json());
    } catch (err) {
      const ready = document.getElementById("ready");
      ready.textContent = "daemon unreachable";
      ready.className = "badge bad";
    }
    setTimeout(poll, 2000);
  }
  poll();
})();
