// The cabinet's one script: copy the referral link (Clipboard API where the browser allows it, else select the
// text so the partner copies it by hand). No inline script: the pages' CSP forbids it.
(function () {
  "use strict";
  var button = document.getElementById("copy-link");
  var field = document.getElementById("ref-link");
  if (!button || !field) { return; }
  var label = button.textContent;

  function done() {
    button.textContent = button.getAttribute("data-copied");
    window.setTimeout(function () { button.textContent = label; }, 2000);
  }

  button.addEventListener("click", function () {
    field.focus();
    field.select();
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(done, function () { /* selected: copy by hand */ });
    }
  });
}());
