// Automatic logoff warning: the server ends a session after a period without requests; a
// minute before, say so and offer to stay; at the end, sign out on the server and show why.
(function () {
  "use strict";
  var body = document.body;
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds"), 10);
  var banner = document.getElementById("logoff-banner");
  if (!idleSeconds || !banner) {
    return;
  }
  var warnSeconds = Math.min(60, Math.floor(idleSeconds / 2));
  var countdown = document.getElementById("logoff-countdown");
  var stay = document.getElementById("logoff-stay");
  var form = document.getElementById("logout-form");
  var lastActivity = Date.now();
  var timer = null;

  function secondsLeft() {
    return idleSeconds - Math.floor((Date.now() - lastActivity) / 1000);
  }

  function describe(seconds) {
    return seconds >= 60 ? "1 minute" : seconds + " second" + (seconds === 1 ? "" : "s");
  }

  function signOut() {
    form.querySelector('input[name="reason"]').value = "idle";
    form.submit();
  }

  function tick() {
    var left = secondsLeft();
    if (left <= 0) {
      window.clearInterval(timer);
      signOut();
      return;
    }
    if (left <= warnSeconds) {
      countdown.textContent = describe(left);
      if (banner.hidden) {
        banner.hidden = false;
        stay.focus();
      }
    }
  }

  stay.addEventListener("click", function () {
    // Any request counts as activity on the server.
    fetch("/me", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.ok) {
          lastActivity = Date.now();
          banner.hidden = true;
        } else {
          signOut();
        }
      });
  });
  timer = window.setInterval(tick, 1000);
})();
