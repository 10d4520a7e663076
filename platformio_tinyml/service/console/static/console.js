// The console's only script: poll a running compilation or deployment and the device table, show a
// deployment's match and a board's profile.
"use strict";

function cell(row, text, href) {
  // A table cell with ``text`` (a link to ``href`` when given), appended to ``row``.
  const td = document.createElement("td");
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    td.appendChild(a);
  } else {
    td.textContent = text;
  }
  row.appendChild(td);
  return td;
}

function pollCompilation(status) {
  const url = status.dataset.poll;
  const tick = async () => {
    try {
      const r = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (r.status === 401) { window.location.assign("/signin?ended=1"); return; }
      if (r.ok) {
        const c = await r.json();
        if (c.state === "succeeded" || c.state === "failed") { window.location.reload(); return; }
        document.getElementById("state").textContent = c.state;
        document.getElementById("progress").textContent = Math.round(100 * (c.progress || 0)) + " %";
        document.getElementById("log").textContent = c.log.join("\n");
      }
    } catch (e) { /* the service is restarting: try again */ }
    window.setTimeout(tick, 700);
  };
  window.setTimeout(tick, 500);
}

function pollDeployment(live) {
  // Follow a running deployment in place (no reload): its state, counts and device rows.
  const url = live.dataset.poll;
  const tick = async () => {
    let again = true;
    try {
      const r = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (r.status === 401) { window.location.assign("/signin?ended=1"); return; }
      if (r.ok) {
        const d = await r.json();
        document.getElementById("dep-state").textContent = d.state;
        document.getElementById("dep-counts").textContent = d.counts;
        const body = document.getElementById("dep-devices");
        const rows = d.devices.map((dev) => {
          const tr = document.createElement("tr");
          cell(tr, dev.endpoint, "/devices/" + encodeURIComponent(dev.endpoint));
          cell(tr, dev.stage);
          const st = cell(tr, "");
          const span = document.createElement("span");
          span.className = "state " + dev.state;
          span.textContent = dev.state;
          st.appendChild(span);
          cell(tr, dev.reason);
          cell(tr, String(dev.blocks));
          return tr;
        });
        body.replaceChildren(...rows);
        live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
        again = d.live;
      }
    } catch (e) { /* the service is restarting: try again */ }
    if (again) window.setTimeout(tick, 1000);
  };
  window.setTimeout(tick, 500);
}

function pollDevices(table) {
  // Refresh the device table's rows, count and pager in place (same filter, sort and page).
  const columns = ["online", "last_seen", "board", "core", "ram_bytes", "installed", "tags"];
  const body = table.querySelector("tbody");
  const tick = async () => {
    try {
      if (document.hidden) throw new Error("not shown: ask later");
      const r = await fetch(table.dataset.poll, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (r.status === 401) { window.location.assign("/signin?ended=1"); return; }
      if (r.ok) {
        const d = await r.json();
        body.replaceChildren(...d.rows.map((dev) => {
          const tr = document.createElement("tr");
          cell(tr, dev.endpoint, "/devices/" + encodeURIComponent(dev.endpoint));
          columns.forEach((k) => { const td = cell(tr, dev[k]); if (k === "ram_bytes") td.className = "num"; });
          return tr;
        }));
        document.getElementById("count").textContent = d.count;
        document.getElementById("empty").hidden = d.total > 0;
        table.hidden = d.total === 0;
        document.getElementById("next").hidden = !d.next;
        table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
      }
    } catch (e) { /* the service is restarting: try again */ }
    window.setTimeout(tick, 1000 * Number(table.dataset.every || 2));
  };
  window.setTimeout(tick, 1000 * Number(table.dataset.every || 2));
}

function showMatch(out) {
  // The new-deployment form, as you type: how many devices the selector picks and, once the
  // module is chosen, which of them the deployment would skip and why.
  const ids = ["query", "endpoints", "tags"];
  const list = document.getElementById("skipped");
  const form = out.closest("form");
  const file = document.getElementById("module");
  let timer = null;
  let asked = 0;
  const show = (text, reasons) => {
    out.textContent = text;
    list.replaceChildren(...reasons.map((g) => {
      const li = document.createElement("li");
      const more = g.count > g.endpoints.length ? ", ..." : "";
      li.textContent = g.count + " skipped: " + g.reason + " (" + g.endpoints.join(", ") + more + ")";
      return li;
    }));
  };
  const update = async () => {
    const q = new FormData();
    q.set("csrf", form.querySelector("input[name=csrf]").value);
    ids.forEach((id) => q.set(id, document.getElementById(id).value));
    if (file.files.length) q.set("module", file.files[0]);
    const mine = ++asked;
    try {
      const r = await fetch("/deployments/match", {method: "POST", body: q, credentials: "same-origin"});
      if (r.status === 401) { window.location.assign("/signin?ended=1"); return; }
      const a = await r.json();
      if (mine !== asked) return;             // a later answer is on its way
      if (r.ok) show(a.text, a.reasons);
      else show(a.detail, []);
      out.dataset.answers = String(Number(out.dataset.answers || 0) + 1);
    } catch (e) { /* try again on the next change */ }
  };
  const soon = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 300);
  };
  ids.forEach((id) => document.getElementById(id).addEventListener("input", soon));
  file.addEventListener("change", soon);
  update();
}

function showProfile(input) {
  const out = document.getElementById("profile");
  const update = async () => {
    const id = input.value.trim();
    out.textContent = "";
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$/.test(id)) return;
    const r = await fetch("/boards/" + encodeURIComponent(id) + "/profile", {credentials: "same-origin"});
    if (!r.ok) return;
    const p = await r.json();
    const kib = (n) => n ? Math.round(n / 1024).toLocaleString() + " KiB" : "?";
    out.textContent = [p.name || id, p.core, p.clock_hz ? (p.clock_hz / 1e6) + " MHz" : null,
                       kib(p.flash_bytes) + " flash", kib(p.ram_bytes) + " RAM",
                       p.npu ? "NPU " + p.npu : null].filter(Boolean).join(", ");
  };
  input.addEventListener("change", update);
  if (input.value) update();
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  if (status && status.dataset.poll) pollCompilation(status);
  const live = document.getElementById("dep-live");
  if (live && live.dataset.poll) pollDeployment(live);
  const devices = document.getElementById("devices");
  if (devices && devices.dataset.poll) pollDevices(devices);
  const match = document.getElementById("match");
  if (match) showMatch(match);
  const target = document.getElementById("target");
  if (target) showProfile(target);
});
