// The citizens' web form (web/report): a phone's photo (often 3-6 MB) is drawn again
// as a JPEG of at most 2048 px and data-max-bytes before it is sent, as the grid page
// does (grid.js), so it never meets the request's body limit. Until that is done the
// button waits, so a quick tap never sends the large original.
(function () {
  "use strict";

  var LONGEST = 2048;
  var QUALITIES = [0.85, 0.7, 0.55];

  function encode(bitmap, scale, quality, then) {
    var canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    canvas.toBlob(then, "image/jpeg", quality);
  }

  // Smaller quality first, then fewer pixels, until the JPEG fits the limit.
  function shrink(input, limit, done) {
    var file = input.files && input.files[0];
    if (!file || !window.createImageBitmap || !window.DataTransfer) return done();
    createImageBitmap(file).then(function (bitmap) {
      var scale = Math.min(1, LONGEST / Math.max(bitmap.width, bitmap.height));
      if (scale === 1 && file.size <= limit) return done();
      var step = 0;
      var attempt = function () {
        encode(bitmap, scale, QUALITIES[step % QUALITIES.length], function (blob) {
          if (blob && blob.size <= limit) {
            var smaller = new DataTransfer();
            smaller.items.add(new File([blob], "photo.jpg", { type: "image/jpeg" }));
            input.files = smaller.files;
            return done();
          }
          step += 1;
          if (step % QUALITIES.length === 0) scale *= 0.7;
          if (!blob || step > 12) return done();
          attempt();
        });
      };
      attempt();
    }).catch(function () { done(); });
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
