// The console's address field suggests from the grid's address table (/grid/addresses):
// roads with their house-number ranges and named places, each with its grid; under the
// field, the grid of the address as typed or chosen. Delegated: htmx swaps the form.
//
// A number still being typed ("国贸路1", on its way to 国贸路128号) names no grid yet:
// the line waits for 号, a chosen suggestion, or the operator leaving the field. Once
// the grid is decided, the form's lead unit and district follow it (grid-changed asks
// /console/suggest again, with address_complete).
(function () {
  "use strict";
  var timer = null, lastAsked = "", known = {}, gridWork = {}, done = "", decided = null;
  var TYPING_NUMBER = /\d\s*$/;
  function category(input) {
    var field = input.form && input.form.elements.category_code;
    return field ? field.value.trim() : "";
  }
  function complete(input) {
    var typed = input.value.trim();
    return !!typed && (done === typed || !TYPING_NUMBER.test(typed));
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
    var typed = input.value.trim(), ready = complete(input);
    var grid = ready ? known[typed] : null;
    var label = gridWork[typed] ? line.dataset.labelWork : line.dataset.label;
    line.textContent = grid ? (label || "").replace("{grid}", grid) : "";
    var flag = input.form && input.form.elements.address_complete;
    if (flag) flag.value = ready ? "1" : "";
    var now = grid ? grid + "|" + !!gridWork[typed] : "";
    if (now !== decided) {
      decided = now;
      input.dispatchEvent(new CustomEvent("grid-changed", { bubbles: true }));
    }
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
  // Leaving the field (or picking a suggestion) finishes the number as typed.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches) return;
    if (input.matches("input[data-hints]")) {
      done = input.value.trim();
      clearTimeout(timer);
      ask(input);
    } else if (input.name === "category_code" && input.form) {
      var address = input.form.querySelector("input[data-hints]");
      if (address && address.value.trim()) ask(address);  // grid work or not
    }
  });
})();
