// The live review desk: follow /dashboard/events (Server-Sent Events) and, on each
// "change", re-fetch the page's live regions ([data-live] holds each one's fragment URL)
// and swap them in. No reload: the filter form, scroll position and a half-filled
// decision form are left as they are.
(function () {
  "use strict";
  var source = document.querySelector("[data-events]");
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  var badge = document.getElementById("live-status");
  if (!source || !regions.length || !("EventSource" in window)) return;

  var busy = false;
  var again = false;

  function show(text, state) {
    if (!badge) return;
    badge.hidden = false;
    badge.textContent = text;
    badge.className = "live " + state;
  }

  function refreshRegion(region) {
    return fetch(region.getAttribute("data-live"), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    }).then(function (response) {
      if (response.status === 401) {
        window.location.reload(); // signed out: the page sends us to sign in
        return;
      }
      if (!response.ok) return;
      return response.text().then(function (html) {
        region.innerHTML = html;
      });
    });
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    Promise.all(regions.map(refreshRegion))
      .then(function () {
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
        show("live · updated " + new Date().toLocaleTimeString(), "on");
      })
      .catch(function () {
        show("live · update failed, retrying", "off");
      })
      .then(function () {
        busy = false;
        if (again) refresh();
      });
  }

  var events = new EventSource(source.getAttribute("data-events"));
  events.addEventListener("open", function () {
    show("live", "on");
  });
  events.addEventListener("error", function () {
    show("reconnecting…", "off");
  });
  events.addEventListener("change", refresh);
  events.addEventListener("signed-out", function () {
    events.close();
    window.location.reload();
  });
})();
