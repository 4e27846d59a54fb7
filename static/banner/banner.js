// cookie_gate banner: progressive enhancement of the server-rendered form.
// Without this file the form posts and the server answers 303 back to the page.
(function () {
  "use strict";
  var root = document.getElementById("cookie-gate");
  if (!root || !window.fetch) return;
  var form = root.querySelector("form");
  form.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button) return;
    event.preventDefault();
    var data = new URLSearchParams(new FormData(form));
    data.set("action", button.value);
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: data,
      redirect: "manual"
    }).then(function () {
      root.hidden = true;
      document.dispatchEvent(new CustomEvent("cookie-gate:consent"));
    }, function () {
      form.submit();
    });
  });
})();
