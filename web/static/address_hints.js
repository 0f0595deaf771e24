// The console's address field suggests from the grid's address table (/grid/addresses):
// roads with their house-number ranges and named places, each with its grid, shown
// under the field once an address is chosen or typed. Delegated: htmx swaps the form.
(function () {
  "use strict";
  var timer = null, lastAsked = "", known = {};
  function fill(input, hints) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) return;
    list.textContent = "";
    hints.forEach(function (hint) {
      known[hint.address] = hint.grid;
      var option = document.createElement("option");
      option.value = hint.address;
      option.label = hint.grid;
      list.appendChild(option);
    });
    showGrid(input);
  }
  function showGrid(input) {
    var line = document.getElementById("address-grid");
    if (!line) return;
    var grid = known[input.value.trim()];
    line.textContent = grid ? (line.dataset.label || "").replace("{grid}", grid) : "";
  }
  function ask(input) {
    var typed = input.value.trim();
    if (!typed || typed === lastAsked) return showGrid(input);
    lastAsked = typed;
    fetch(input.dataset.hints + "?q=" + encodeURIComponent(typed), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
      .then(function (data) {
        if (input.value.trim() === typed) fill(input, data.suggestions || []);
      })
      .catch(function () {});
  }
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[data-hints]")) return;
    clearTimeout(timer);
    timer = setTimeout(function () { ask(input); }, 250);
  });
})();
