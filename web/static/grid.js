// The grid worker's phone page (web/grid): where the phone is, for 到场 and patrol
// reports, and photos made small enough to send before they leave the phone.
(function () {
  "use strict";

  // A form with class "locate" gets lat, lon and accuracy from the phone before it is
  // sent (or at once, data-auto-locate); no location within 10 s sends it without.
  function locate(form, then) {
    var status = form.querySelector(".location-status");
    var say = function (text) { if (status) status.textContent = text; };
    if (!navigator.geolocation) {
      say(form.dataset.noLocation || "");
      then(false);
      return;
    }
    say(form.dataset.locating || "");
    navigator.geolocation.getCurrentPosition(
      function (where) {
        form.elements.lat.value = where.coords.latitude.toFixed(6);
        form.elements.lon.value = where.coords.longitude.toFixed(6);
        form.elements.accuracy.value = Math.round(where.coords.accuracy);
        say((form.dataset.located || "").replace("{m}", Math.round(where.coords.accuracy)));
        then(true);
      },
      function () {
        say(form.dataset.noLocation || "");
        then(false);
      },
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 }
    );
  }

  document.querySelectorAll("form.locate").forEach(function (form) {
    if (form.dataset.autoLocate) {
      locate(form, function () {});
      return;
    }
    var asked = false;
    form.addEventListener("submit", function (event) {
      if (asked) return;
      event.preventDefault();
      asked = true;
      var button = form.querySelector("button");
      if (button) button.disabled = true;
      locate(form, function () { form.submit(); });
    });
  });

  // A phone's photo is often larger than the limit: drawn again at most 1600 px wide
  // as JPEG before it is sent. Browsers that cannot do so send it as it is.
  var LONGEST = 1600;
  function shrink(input, limit) {
    var file = input.files && input.files[0];
    if (!file || !window.createImageBitmap || !window.DataTransfer) return;
    createImageBitmap(file).then(function (bitmap) {
      var scale = Math.min(1, LONGEST / Math.max(bitmap.width, bitmap.height));
      if (scale === 1 && file.size <= limit) return;
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) {
        if (!blob) return;
        var smaller = new DataTransfer();
        smaller.items.add(new File([blob], "photo.jpg", { type: "image/jpeg" }));
        input.files = smaller.files;
      }, "image/jpeg", 0.85);
    }).catch(function () {});
  }
  document.querySelectorAll("form.photo-form").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    var limit = Number(form.dataset.maxBytes) || 5 * 1024 * 1024;
    var chosen = form.querySelector(".chosen");
    if (!input) return;
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (chosen) chosen.textContent = file ? (chosen.dataset.chosen || "").replace("{name}", file.name) : "";
      shrink(input, limit);
    });
  });
})();
