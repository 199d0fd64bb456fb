// The shop page's buttons: a file of its own, so the page's policy allows no inline script.
(function () {
  "use strict";
  var out = document.getElementById("out");
  function show(text) { out.textContent = text; }
  function call(path, init) {
    return fetch(path, init).then(function (r) {
      return r.text().then(function (t) { show(r.status + " " + t); });
    }, function (e) { show("failed: " + e); });
  }
  document.getElementById("user").addEventListener("click", function () { call("/users/1"); });
  document.getElementById("order").addEventListener("click", function () {
    call("/orders", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user_id: 1, amount: 19.99 }) });
  });
  document.getElementById("fail").addEventListener("click", function () { call("/error"); });
  document.getElementById("bug").addEventListener("click", function () {
    setTimeout(function () { undefinedFunctionInTheShop(); }, 0);
    show("a JavaScript error was thrown");
  });
})();
