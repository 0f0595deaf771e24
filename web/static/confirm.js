// Confirmations before destructive actions: a form, or a submit button, carrying
// data-confirm="question" asks window.confirm before it is sent; cancelling sends
// nothing. htmx elements use htmx's own hx-confirm instead.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation(); // htmx's own submit listener must not send it either
    }
  }, true);
  // A data-confirm button outside any form (a plain link-like action).
  document.addEventListener("click", function (event) {
    var el = event.target instanceof Element ? event.target.closest("a[data-confirm], button[data-confirm]") : null;
    if (!el || (el.form && el.type === "submit")) return; // those are asked on submit
    if (!window.confirm(el.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
