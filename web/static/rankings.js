// The rankings chart (Apache ECharts): each unit's in-time rates as bars.
(function () {
  "use strict";
  var el = document.getElementById("rankings-chart");
  if (!el || !window.echarts) return;
  var rows = JSON.parse(el.dataset.rows);
  var chart = echarts.init(el, null, { locale: el.dataset.locale, renderer: "svg" });
  // A unit with nothing due yet has no bar (null), not a 0 % bar.
  function pct(v) { return v === null ? null : Math.round(v * 1000) / 10; }
  chart.setOption({
    tooltip: {
      trigger: "axis", axisPointer: { type: "shadow" },
      renderMode: "richText",  // drawn in the chart: HTML tooltips carry style attributes CSP refuses
      valueFormatter: function (v) { return v === null || v === undefined ? el.dataset.none : v + "%"; },
    },
    legend: { top: 0, data: [el.dataset.signed, el.dataset.resolved] },
    grid: { left: 48, right: 16, top: 40, bottom: 80 },
    xAxis: { type: "category", data: rows.map(function (r) { return r.unit; }), axisLabel: { rotate: 40 } },
    yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
    series: [
      { name: el.dataset.signed, type: "bar", data: rows.map(function (r) { return pct(r.signed_in_time); }) },
      { name: el.dataset.resolved, type: "bar", data: rows.map(function (r) { return pct(r.resolved_in_time); }) },
    ],
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
