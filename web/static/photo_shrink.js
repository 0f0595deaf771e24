// A phone's photo (often 3-6 MB) drawn again as a JPEG of at most `longest` px and
// `limit` bytes before a form sends it, so it never meets the request's body limit:
// lower quality first, then fewer pixels. Browsers that cannot redraw send it as it
// is. Used by the grid worker's pages (grid.js) and the citizens' form (report.js).
(function () {
  "use strict";

  var QUALITIES = [0.85, 0.7, 0.55];

  function encode(bitmap, scale, quality, then) {
    var canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    canvas.toBlob(then, "image/jpeg", quality);
  }

  window.hotlineShrinkPhoto = function (input, limit, longest, done) {
    var file = input.files && input.files[0];
    if (!file || !window.createImageBitmap || !window.DataTransfer) return done();
    createImageBitmap(file).then(function (bitmap) {
      var scale = Math.min(1, longest / Math.max(bitmap.width, bitmap.height));
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
  };
})();
