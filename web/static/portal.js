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
})();
