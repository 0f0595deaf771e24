// The wallboard: redrawn when the push process says "board" (with the newest queue
// event it has seen, so the web draws a board at least that recent), and the hourly
// chart (Apache ECharts) redrawn from each new board.
(function () {
  "use strict";
  var board = document.getElementById("board");
  document.body.addEventListener("htmx:sseMessage", function (e) {
    if (!e.detail) return;
    if (e.detail.type === "gone") window.location.reload(); // signed out: the sign-in page
    if (e.detail.type === "board" && board) {
      var url = board.dataset.boardUrl + "?seen=" + encodeURIComponent(e.detail.data || "");
      htmx.ajax("GET", url, { target: board, swap: "innerHTML" });
    }
  });
  var el = document.getElementById("hourly-chart");
  if (!el || !window.echarts) return;
  var labels = JSON.parse(el.dataset.labels);
  var chart = echarts.init(el, null, { locale: el.dataset.locale, renderer: "svg" });
  function draw(hourly) {
    chart.setOption({
      tooltip: { trigger: "axis", renderMode: "richText" },  // HTML tooltips carry style attributes CSP refuses
      legend: { top: 0, data: [labels.offered, labels.answered, labels.abandoned] },
      grid: { left: 40, right: 16, top: 44, bottom: 24, containLabel: true },
      xAxis: { type: "category", data: hourly.map(function (h) { return h.hour + ":00"; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: labels.offered, type: "bar", data: hourly.map(function (h) { return h.offered; }) },
        { name: labels.answered, type: "bar", data: hourly.map(function (h) { return h.answered; }) },
        { name: labels.abandoned, type: "line", data: hourly.map(function (h) { return h.abandoned; }) },
      ],
    });
  }
  draw(JSON.parse(el.dataset.hourly));
  document.body.addEventListener("htmx:afterSwap", function (e) {
    var fresh = e.target && e.target.querySelector && e.target.querySelector("[data-hourly-now]");
    if (fresh) draw(JSON.parse(fresh.dataset.hourlyNow));
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
