/* Portal behaviour, loaded after htmx (no inline scripts: the CSP forbids them).
 * - Every HTMX request carries the session's CSRF token from <meta name="csrf-token">.
 * - An HTMX error answer (problem+json) is shown in the page's alert region as text. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  document.addEventListener("htmx:configRequest", function (evt) {
    var token = csrfToken();
    if (token) {
      evt.detail.headers["X-CSRF-Token"] = token;
    }
  });

  function flash(message) {
    var region = document.getElementById("flash");
    if (!region) {
      return;
    }
    region.textContent = message;
    region.classList.add("shown");
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    var message = "操作未完成，请稍后再试。";
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.detail) {
        message = body.title ? body.title + "：" + body.detail : body.detail;
      }
    } catch (e) {
      /* not JSON: keep the generic message */
    }
    flash(message);
  });

  document.addEventListener("htmx:sendError", function () {
    flash("网络连接失败，请检查网络后重试。");
  });
})();
