// The operator console: live timers, the wrap-up countdown, and case drafts that
// survive a page reload (kept in this browser per call until the form is filed).
(function () {
  "use strict";
  // Validation errors (422) and refusals (409) carry a form to show: swap them too.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "40[9]|422", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];
  var skew = 0; // Redis clock minus this browser's clock, from the last seat panel

  function fmt(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function tick() {
    document.querySelectorAll("[data-now]").forEach(function (el) {
      if (!el.dataset.seen) { skew = Number(el.dataset.now) - Date.now(); el.dataset.seen = "1"; }
    });
    // Disconnected, the seat's state is not known: its clock stops rather than
    // count an "available" the queue may no longer hold.
    if (document.body.classList.contains("disconnected")) return;
    var now = Date.now() + skew;
    document.querySelectorAll(".timer[data-since]").forEach(function (el) {
      el.textContent = " · " + fmt((now - Number(el.dataset.since)) / 1000);
    });
    document.querySelectorAll(".countdown-left[data-until]").forEach(function (el) {
      el.textContent = fmt((Number(el.dataset.until) - now) / 1000);
    });
  }
  setInterval(tick, 500);

  function draftKey(form) { return "hotline-draft:" + form.dataset.call; }
  function saveDraft(form) {
    var data = {};
    new FormData(form).forEach(function (v, k) { if (k !== "csrf_token") data[k] = v; });
    localStorage.setItem(draftKey(form), JSON.stringify(data));
  }
  function restoreDraft(form) {
    var raw = localStorage.getItem(draftKey(form));
    if (!raw) return;
    var data = JSON.parse(raw);
    Object.keys(data).forEach(function (name) {
      form.querySelectorAll('[name="' + name + '"]').forEach(function (el) {
        if (el.type === "radio" || el.type === "checkbox") el.checked = el.value === data[name];
        else if (!el.value) el.value = data[name];
      });
    });
    suggest(form);
  }
  function suggest(form) {
    var input = form.querySelector('[name="category_code"]');
    var out = form.querySelector("#suggested-department");
    if (!input || !out) return;
    var option = document.querySelector('#categories option[value="' + CSS.escape(input.value) + '"]');
    var label = option ? option.getAttribute("label") || "" : "";
    out.textContent = label.indexOf(" · ") >= 0 ? label.slice(label.indexOf(" · ") + 3) : "";
  }
  // 就绪 while the call's form was never filed would leave an empty case behind.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("#seat button.primary");
    if (!button) return;
    var form = document.querySelector("form.case-form");
    if (form && !form.querySelector("#case-filed") && !window.confirm(form.dataset.unfiled || "")) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);

  function wire(root) {
    root.querySelectorAll("form.case-form").forEach(function (form) {
      if (form.dataset.wired) return;
      form.dataset.wired = "1";
      if (form.querySelector("#case-filed")) localStorage.removeItem(draftKey(form));
      else restoreDraft(form);
      form.addEventListener("input", function () { saveDraft(form); suggest(form); });
    });
    tick();
  }
  // The live seat panel is redrawn on every seat event: a pause reason the operator
  // has picked but not yet sent survives the redraw.
  var chosenReason = null;
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches('#seat select[name="reason"]')) chosenReason = e.target.value;
  });
  function keepReason(root) {
    if (chosenReason === null || !root.querySelectorAll) return;
    root.querySelectorAll('select[name="reason"]').forEach(function (el) { el.value = chosenReason; });
  }
  document.addEventListener("htmx:afterSettle", function (e) {
    keepReason(e.target);
    if (e.detail && e.detail.requestConfig && e.detail.requestConfig.verb === "post") chosenReason = null;
  });

  // A lost connection is shown at once: the panel's state is then not to be trusted.
  var banner = function () { return document.getElementById("connection-lost"); };
  function connection(ok) {
    var el = banner();
    if (el) el.hidden = ok;
    document.body.classList.toggle("disconnected", !ok);
  }
  document.addEventListener("htmx:sendError", function () { connection(false); });
  document.addEventListener("htmx:sseError", function () { connection(false); });
  document.addEventListener("htmx:sseOpen", function () { connection(true); });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail && e.detail.xhr && e.detail.xhr.status > 0) connection(true);
  });
  window.addEventListener("offline", function () { connection(false); });

  // The push process sends signals; the screens are drawn by the web. "pop" carries
  // the call offered to this seat: its screen pop is fetched at once. The seat was
  // logged out or taken over ("gone"): the console reloads at once and says why.
  // Signing out (退出) frees the seat, and the signal may come before the sign-out's
  // own answer: a page already on its way elsewhere is not reloaded under it.
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  document.addEventListener("htmx:sseMessage", function (e) {
    if (!e.detail) return;
    if (e.detail.type === "gone" && !leaving) window.location.reload();
    var pop = document.getElementById("pop");
    if (e.detail.type === "pop" && pop && e.detail.data) {
      var url = pop.dataset.popUrl.replace("CALL", encodeURIComponent(e.detail.data));
      htmx.ajax("GET", url, { target: pop, swap: "innerHTML" });
    }
  });

  document.addEventListener("htmx:load", function (e) { wire(e.target); });
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
})();
