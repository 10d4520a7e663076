// The console's only script: poll a running compilation, show a board's profile.
"use strict";

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
  const target = document.getElementById("target");
  if (target) showProfile(target);
});
