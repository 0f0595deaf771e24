// Live countdowns to each case's deadline (the server's clock, corrected for skew).
(function () {
  "use strict";
  var host = document.querySelector("[data-now]");
  var skew = host ? Number(host.dataset.now) - Date.now() : 0;
  function fmt(ms) {
    var late = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var text = (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
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
