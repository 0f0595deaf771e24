// The citizens' web form (web/report): a phone's photo (often 3-6 MB) is drawn again
// as a JPEG of at most 2048 px and data-max-bytes before it is sent (photo_shrink.js),
// so it never meets the request's body limit. Until that is done the
// button waits, so a quick tap never sends the large original.
(function () {
  "use strict";

  var LONGEST = 2048;

  function shrink(input, limit, done) {
    window.hotlineShrinkPhoto(input, limit, LONGEST, done);
  }

  document.querySelectorAll("form.report-form").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    var status = document.getElementById("report-photo-status");
    var limit = Number(form.dataset.maxBytes) || 3 * 1024 * 1024;
    var buttons = form.querySelectorAll("button");
    var busy = false;
    if (!input) return;
    var say = function (text, bad) {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("error", !!bad);
    };
    form.addEventListener("submit", function (event) {
      if (busy) event.preventDefault();
    });
    input.addEventListener("change", function () {
      if (!(input.files && input.files[0])) return say("");
      busy = true;
      say(form.dataset.shrinking || "");
      buttons.forEach(function (b) { b.disabled = true; });
      shrink(input, limit, function () {
        busy = false;
        buttons.forEach(function (b) { b.disabled = false; });
        var kept = input.files && input.files[0];
        if (kept && kept.size > limit) {
          // The phone could not redraw it: said here, and the form is sent without it.
          input.value = "";
          say(form.dataset.tooLarge || "", true);
          return;
        }
        say("");
      });
    });
  });
})();
