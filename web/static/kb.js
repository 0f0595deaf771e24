// The knowledge base panel beside the pop (web/console/knowledge.py): "/" focuses its
// search box, suggestions follow the case form's category and description (debounced),
// and an article opened while a case form is on screen can answer that call.
(function () {
  "use strict";
  var WAIT_MS = 400;
  var timer = null;

  function caseForm() { return document.querySelector("form.case-form"); }

  function refreshSuggestions() {
    var out = document.getElementById("kb-suggestions");
    if (!out) return;
    var form = caseForm();
    var params = new URLSearchParams();
    if (form) {
      var category = form.querySelector('[name="category_code"]');
      var description = form.querySelector('[name="description"]');
      params.set("category_code", category ? category.value : "");
      params.set("description", description ? description.value : "");
    }
    htmx.ajax("GET", out.dataset.url + "?" + params.toString(), { target: out, swap: "innerHTML" });
  }
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refreshSuggestions, WAIT_MS);
  }

  document.addEventListener("input", function (e) {
    if (e.target.closest && e.target.closest("form.case-form") &&
        (e.target.name === "category_code" || e.target.name === "description")) soon();
  });
  document.addEventListener("change", function (e) {
    if (e.target.closest && e.target.closest("form.case-form") && e.target.name === "category_code") soon();
  });
  // A new pop (or a form restored from its draft) brings its own words.
  document.addEventListener("htmx:load", function (e) {
    if (e.target.querySelector && (e.target.matches("form.case-form") || e.target.querySelector("form.case-form"))) soon();
  });

  // An article opened for the call on screen: the server offers 答复自本条知识.
  document.addEventListener("htmx:configRequest", function (e) {
    if (!e.detail || !e.detail.path || e.detail.path.indexOf("/console/kb/articles/") !== 0) return;
    var form = caseForm();
    if (form && form.dataset.call) e.detail.parameters.call = form.dataset.call;
  });

  document.addEventListener("click", function (e) {
    if (e.target.id === "kb-close") {
      var reader = document.getElementById("kb-article");
      if (reader) reader.innerHTML = "";
    }
  });

  // "/" anywhere but in a text box: the search box; Escape leaves it.
  document.addEventListener("keydown", function (e) {
    var box = document.getElementById("kb-q");
    if (!box) return;
    var el = e.target;
    var typing = el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
    if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      box.focus();
      box.select();
    } else if (e.key === "Escape" && el === box) {
      box.blur();
    }
  });

  document.addEventListener("DOMContentLoaded", function () { if (caseForm()) refreshSuggestions(); });
})();
