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
  // as JPEG before it is sent. Browsers that cannot do so send it as it is. Until it
  // is done the form's buttons wait, so the large original is never sent by a quick tap.
  var LONGEST = 1600;
  function shrink(input, limit, done) {
    window.hotlineShrinkPhoto(input, limit, LONGEST, done);
  }
  document.querySelectorAll("form.photo-form").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    var limit = Number(form.dataset.maxBytes) || 5 * 1024 * 1024;
    var chosen = form.querySelector(".chosen");
    if (!input) return;
    var buttons = form.querySelectorAll("button");
    var say = function (text, bad) {
      if (!chosen) return;
      chosen.textContent = text;
      chosen.classList.toggle("error", !!bad);
    };
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) return say("");
      say(form.dataset.shrinking || "");
      buttons.forEach(function (b) { b.disabled = true; });
      shrink(input, limit, function () {
        buttons.forEach(function (b) { b.disabled = false; });
        var kept = input.files && input.files[0];
        if (kept && kept.size > limit) {
          // Still too large (the phone could not redraw it): say so here, send nothing.
          input.value = "";
          say(form.dataset.tooLarge || "", true);
          return;
        }
        say((chosen && chosen.dataset.chosen || "").replace("{name}", file.name));
      });
    });
  });

  // Live countdowns to each deadline (the server's clock, corrected for skew):
  // "3小时20分" ahead, "已超时3天" past it (en: "3 days overdue"), as the server
  // first writes them (web/grid countdown).
  var host = document.querySelector(".grid-phone[data-now]");
  var zh = (document.documentElement.lang || "zh").toLowerCase().indexOf("zh") === 0;
  if (host) {
    var skew = Number(host.dataset.now) - Date.now();
    var lateWords = host.dataset.late || "−{time}";
    var UNITS = zh ? ["天", "小时", "分", "秒"] : [" d", " h", " min", " s"];
    var fmt = function (ms, late) {
      var s = Math.floor(Math.abs(ms) / 1000);
      var n = [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60];
      var first = 0;
      while (first < 3 && !n[first]) first++;
      var parts = [n[first] + UNITS[first]];
      if (!zh && late && first === 0) parts = [n[0] + (n[0] === 1 ? " day" : " days")];
      if (first < 3 && n[first + 1]) parts.push(n[first + 1] + UNITS[first + 1]);
      return parts.join(zh ? "" : " ");
    };
    var tick = function () {
      var now = Date.now() + skew;
      document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
        if (!el.dataset.deadline) return;
        var left = Number(el.dataset.deadline) - now;
        var late = left < 0;
        el.textContent = late ? lateWords.replace("{time}", fmt(left, true)) : fmt(left, false);
        el.classList.toggle("late", late);
      });
    };
    tick();
    setInterval(tick, 1000);
  }

  // Drafts: what is typed or chosen on a case (or the patrol form) is kept in this
  // tab's sessionStorage, so a refused photo, a too-large upload or a sign-in that
  // ended loses nothing; cleared once the case is resolved, escalated or filed.
  var store = null;
  try { store = window.sessionStorage; } catch (e) { store = null; }
  var PREFIX = "grid-draft:";
  function forget(key) {
    if (!store) return;
    for (var i = store.length - 1; i >= 0; i--) {
      var name = store.key(i);
      if (name && name.indexOf(PREFIX + key + ":") === 0) store.removeItem(name);
    }
  }
  function keep(form, key) {
    form.querySelectorAll("textarea[name], input[name]:not([type=hidden]):not([type=file]), select[name]").forEach(function (field) {
      var name = PREFIX + key + ":" + form.id + ":" + field.name;
      var saved = store.getItem(name);
      if (saved !== null) {
        if (field.tagName === "SELECT") {
          if (field.querySelector("option[value='" + saved.replace(/'/g, "") + "']")) field.value = saved;
        } else if (!field.value) {
          field.value = saved;
        }
      }
      var save = function () { store.setItem(name, field.value); };
      field.addEventListener("input", save);
      field.addEventListener("change", save);
    });
  }
  if (store && host) {
    var number = host.dataset["case"];
    if (host.dataset.done) forget(host.dataset.done);
    if (document.getElementById("patrol-filed")) forget("patrol");
    if (number && host.dataset.active === "0") forget(number);
    if (number && host.dataset.saved) forget(number + ":" + host.dataset.saved);
    if (number && host.dataset.active === "1") {
      host.querySelectorAll("form[id]").forEach(function (form) { keep(form, number); });
    }
  }
  if (store) {
    document.querySelectorAll("form[data-draft]").forEach(function (form) {
      keep(form, form.dataset.draft);
    });
  }
})();
