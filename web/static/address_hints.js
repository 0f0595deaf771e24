// The console's address field suggests from the grid's address table (/grid/addresses):
// roads with their house-number ranges and named places, each with its grid; under the
// field, the grid of the address as typed or chosen. Delegated: htmx swaps the form.
(function () {
  "use strict";
  var timer = null, lastAsked = "", known = {}, gridWork = {};
  function category(input) {
    var field = input.form && input.form.elements.category_code;
    return field ? field.value.trim() : "";
  }
  function fill(input, hints, typedGrid, isGridWork) {
    known[input.value.trim()] = typedGrid || known[input.value.trim()];
    gridWork[input.value.trim()] = !!isGridWork;
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
    var label = gridWork[input.value.trim()] ? line.dataset.labelWork : line.dataset.label;
    line.textContent = grid ? (label || "").replace("{grid}", grid) : "";
  }
  function ask(input) {
    var typed = input.value.trim(), kind = category(input);
    if (!typed || typed + "|" + kind === lastAsked) return showGrid(input);
    lastAsked = typed + "|" + kind;
    var url = input.dataset.hints + "?q=" + encodeURIComponent(typed) +
      "&category=" + encodeURIComponent(kind);
    fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
      .then(function (data) {
        if (input.value.trim() === typed) {
          fill(input, data.suggestions || [], data.grid, data.grid_work);
        }
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
