// remediator console: follow /api/v1/events and swap in the server-rendered live part.
// The pages work without this file; it only saves a reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var only = live.getAttribute("data-incident");
  var pending = false;
  function refresh() {
    if (pending) { return; }
    pending = true;
    setTimeout(function () {
      var src = live.getAttribute("data-live");
      var url = src + (src.indexOf("?") < 0 ? "?" : "&") + "fragment=1";
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          pending = false;
          var active = document.activeElement;
          if (html !== null && !(active && live.contains(active) && active.tagName === "INPUT")) {
            live.innerHTML = html;
            live.setAttribute("data-updated", String(Date.now()));
          }
        })
        .catch(function () { pending = false; });
    }, 250);
  }
  var source = new EventSource("/api/v1/events");
  function onEvent(e) {
    var data = {};
    try { data = JSON.parse(e.data); } catch (err) { return; }
    if (!only || data.incident === only) { refresh(); }
  }
  ["opened", "state", "step", "verify", "approval", "escalated", "closed", "manual",
   "acknowledged", "guard", "retry"].forEach(function (name) {
    source.addEventListener(name, onEvent);
  });
  source.addEventListener("reset", refresh);
  // a page left for another must not keep its stream: open streams count against the
  // browser's few connections per host and would queue this page's own fetches
  window.addEventListener("pagehide", function () { source.close(); });
  window.addEventListener("pageshow", function (e) { if (e.persisted) { location.reload(); } });
})();
