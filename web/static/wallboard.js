// The wallboard's hourly chart (Apache ECharts), redrawn from each "chart" event.
(function () {
  "use strict";
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
  document.body.addEventListener("htmx:sseMessage", function (e) {
    if (e.detail.type === "chart") draw(JSON.parse(e.detail.data));
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
