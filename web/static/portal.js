// Live countdowns to each case's deadline (the server's clock, corrected for skew).
(function () {
  "use strict";
  var host = document.querySelector("[data-now]");
  var skew = host ? Number(host.dataset.now) - Date.now() : 0;
  // 2天3小时, 3小时20分, 4分20秒, 45秒 (en: 2 d 3 h, 4 min 20 s), as web/i18n.py's duration.
  var zh = (document.documentElement.lang || "zh").toLowerCase().indexOf("zh") === 0;
  var UNITS = zh ? ["天", "小时", "分", "秒"] : [" d", " h", " min", " s"];
  function fmt(ms) {
    var late = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var n = [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60];
    var first = 0;
    while (first < 3 && !n[first]) first++;
    var parts = [n[first] + UNITS[first]];
    if (first < 3 && n[first + 1]) parts.push(n[first + 1] + UNITS[first + 1]);
    var text = parts.join(zh ? "" : " ");
    return late ? "−" + text : text;
  }
  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      if (!el.dataset.deadline) return;
      var left = Number(el.dataset.deadline) - now;
      el.textContent = fmt(left);
      el.classList.toggle("late", left < 0);
    });
  }
  tick();
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick); // fresh rows count down at once
})();

// The live inbox: htmx refetches the table when the stream says "inbox" (see
// portal_inbox.html). A newly arrived urgent case chimes once and counts in the page
// title, e.g. "(1) 部门工作台", until the clerk comes back to the page.
(function () {
  "use strict";
  var body = document.getElementById("inbox-body");
  if (!body) return;
  var baseTitle = document.title;
  var unseen = 0;
  var chime = body.dataset.chime ? new Audio(body.dataset.chime) : null;
  function urgentNumbers() {
    var found = {};
    body.querySelectorAll("tr[data-urgent]").forEach(function (row) {
      found[row.dataset.number] = true;
    });
    return found;
  }
  var known = urgentNumbers();
  function seen() {
    if (!unseen) return;
    unseen = 0;
    document.title = baseTitle;
  }
  body.addEventListener("htmx:afterSwap", function () {
    var now = urgentNumbers(), fresh = 0;
    Object.keys(now).forEach(function (number) {
      if (!known[number]) fresh += 1;
    });
    known = now;
    if (!fresh) return;
    unseen += fresh;
    document.title = "(" + unseen + ") " + baseTitle;
    body.dataset.chimes = String(Number(body.dataset.chimes || 0) + 1);
    if (chime) {
      chime.currentTime = 0;
      var playing = chime.play();
      if (playing && playing.catch) playing.catch(function () {}); // no gesture yet: title only
    }
  });
  window.addEventListener("focus", seen);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && document.hasFocus()) seen();
  });
  document.addEventListener("pointerdown", seen);
  document.addEventListener("keydown", seen);
})();
