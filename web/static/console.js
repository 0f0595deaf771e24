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

  // The seat's clock and the wrap-up countdown in words, as every duration here (2分5秒).
  function fmt(seconds) {
    return duration(Math.max(0, seconds));
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
    tickTasks(now);
  }

  // Online requests: the list's and the detail's clocks count down to the same deadline
  // (data-due, the queue's clock) here, in the server's words and durations (2分30秒).
  function duration(seconds) {
    var card = document.getElementById("tasks-card");
    var words = card ? JSON.parse(card.dataset.dur) : { d: "{n}d", h: "{n}h", m: "{n}m", s: "{n}s" };
    var s = Math.round(Math.abs(seconds));
    var units = [["d", Math.floor(s / 86400)], ["h", Math.floor(s % 86400 / 3600)],
                 ["m", Math.floor(s % 3600 / 60)], ["s", s % 60]];
    var first = 0;
    while (first < units.length - 1 && !units[first][1]) first++;
    var parts = [units[first]];
    if (first + 1 < units.length && units[first + 1][1]) parts.push(units[first + 1]);
    return parts.map(function (u) { return words[u[0]].replace("{n}", u[1]); })
      .join(card ? card.dataset.durJoiner : "");
  }
  function tickTasks(now) {
    document.querySelectorAll(".task-clock[data-due]").forEach(function (el) {
      var left = Math.floor((Number(el.dataset.due) - now) / 1000);
      var late = left <= 0;
      el.classList.toggle("overdue", late);
      el.textContent = late ? el.dataset.overdue : el.dataset.label.replace("{s}", duration(left));
    });
    document.querySelectorAll(".task-waited[data-since]").forEach(function (el) {
      var waited = Math.max(0, Math.floor((now - Number(el.dataset.since)) / 1000));
      el.textContent = el.dataset.label.replace("{s}", duration(waited));
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
    nameCategory(form);
    suggest(form);
  }
  // A category found by its pinyin ("ts") reads as its name (停水), as once filed: the
  // datalist's label is "name initials pinyin · department"; a unique match only.
  function nameCategory(form) {
    var input = form.querySelector('[name="category_code"]');
    var key = input ? input.value.toLowerCase().replace(/\s+/g, "") : "";
    if (!key) return;
    var found = Array.prototype.filter.call(document.querySelectorAll("#categories option"), function (o) {
      var words = (o.getAttribute("label") || "").split(" · ")[0].split(" ");
      return words.slice(1).indexOf(key) >= 0;
    });
    if (found.length === 1) input.value = found[0].value;
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
      form.addEventListener("change", function (e) {
        if (e.target.name !== "category_code") return;
        nameCategory(form);
        saveDraft(form);
        suggest(form);
      });
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

  // Calls first: while the seat's call is offered, on or in wrap-up, the requests give
  // the centre to the pop (app.css .call-up).
  function callUp() {
    var root = document.querySelector(".console");
    var panel = document.querySelector("#seat .seat-panel");
    if (!root || !panel) return;
    root.classList.toggle("call-up", ["offered", "on_call", "wrap_up"].indexOf(panel.dataset.state) >= 0);
  }
  document.addEventListener("htmx:afterSettle", callUp);

  // Ready again (就绪, or the wrap-up ran out) with the ended call's form unfiled: the
  // form leaves the centre, which says its case waits under 待补录 and reopens it in a
  // click, the draft kept in this browser. The case itself was made at hang-up.
  var CALL_STATES = ["offered", "on_call", "wrap_up"];
  var seatState = null;
  function seatPanelState() {
    var panel = document.querySelector("#seat .seat-panel");
    return panel ? panel.dataset.state : null;
  }
  document.addEventListener("DOMContentLoaded", function () { seatState = seatPanelState(); });
  document.addEventListener("htmx:afterSettle", function () {
    var was = seatState;
    seatState = seatPanelState();
    if (["on_call", "wrap_up"].indexOf(was) < 0 || CALL_STATES.indexOf(seatState) >= 0) return;
    var pop = document.getElementById("pop");
    var form = pop && pop.querySelector("form.case-form");
    if (!form || !pop.dataset.leftUrl || form.querySelector("#case-filed")) return;
    htmx.ajax("GET", pop.dataset.leftUrl.replace("CALL", encodeURIComponent(form.dataset.call)),
              { target: pop, swap: "innerHTML" });
  });

  // The task list is redrawn when the seat's stream says "task" (or after an action).
  // Only while the stream is broken is it polled, slowly; when the stream opens again
  // it is redrawn at once for what was missed.
  var streamOpen = false;
  function refreshTasks() {
    var list = document.getElementById("task-list");
    if (list) htmx.trigger(list, "tasks-poll");
  }
  // data-stream on <body> says whether the seat's stream is open (after the redraw it asks for).
  document.addEventListener("htmx:sseOpen", function () {
    streamOpen = true;
    refreshTasks();
    document.body.dataset.stream = "open";
  });
  document.addEventListener("htmx:sseError", function () {
    streamOpen = false;
    document.body.dataset.stream = "broken";
  });
  var taskList = document.getElementById("task-list");
  if (taskList) {
    setInterval(function () { if (!streamOpen) refreshTasks(); },
                1000 * Number(taskList.dataset.fallbackPollS || 30));
  }
  // The reply being written is saved to the request while the operator types, at most
  // every DRAFT_EVERY_MS and when they leave the box: it tells the queue the operator is
  // there (a silent free seat's request is handed on at half its time), and a request
  // handed on takes it to the next seat. One handed on from here sends no more.
  var DRAFT_EVERY_MS = 5000;
  var csrfToken = function () {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  };
  function replyForm(el) { return el && el.closest ? el.closest("#task-reply-form") : null; }
  function stopDraft(form) {
    clearTimeout(form.draftTimer);
    form.draftTimer = null;
    form.draftDirty = false;
  }
  function sendDraft(form) {
    var dirty = form.draftDirty;
    stopDraft(form);
    if (!dirty || !form.isConnected || form.dataset.handedOn) return;
    var body = new URLSearchParams({ reply: form.querySelector('[name="reply"]').value });
    fetch(form.dataset.draftUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() },
    }).then(function (r) {
      if (r.status === 409 || r.status === 404) { form.dataset.handedOn = "1"; refreshTasks(); }
    }).catch(function () { form.draftDirty = true; });  // sent again with the next keys
  }
  document.addEventListener("input", function (e) {
    var form = replyForm(e.target);
    if (!form || form.dataset.handedOn) return;
    form.draftDirty = true;
    if (!form.draftTimer) form.draftTimer = setTimeout(function () { sendDraft(form); }, DRAFT_EVERY_MS);
  });
  // On leaving the box, a moment later: leaving it for 发送答复 sends the reply instead.
  document.addEventListener("focusout", function (e) {
    var form = replyForm(e.target);
    if (!form || !form.draftDirty) return;
    clearTimeout(form.draftTimer);
    form.draftTimer = setTimeout(function () { sendDraft(form); }, 500);
  });
  // The reply itself is on its way: no draft after it.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var form = replyForm(e.detail && e.detail.elt);
    if (form && e.detail.elt === form) stopDraft(form);
  });

  // A request handed on or completed elsewhere leaves the list: the detail says so.
  document.addEventListener("htmx:afterSettle", function (e) {
    if (!e.target || e.target.id !== "task-list") return;
    var task = document.getElementById("task");
    if (task && !e.target.querySelector('.task-row[data-number="' + CSS.escape(task.dataset.number) + '"]')) {
      var form = task.querySelector("#task-reply-form");
      if (form) { stopDraft(form); form.dataset.handedOn = "1"; }
      htmx.ajax("GET", task.closest("#task-detail").dataset.detailUrl.replace("NUMBER", encodeURIComponent(task.dataset.number)),
                { target: "#task-detail", swap: "innerHTML" });
    }
  });

  document.addEventListener("htmx:load", function (e) { wire(e.target); });
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
})();
