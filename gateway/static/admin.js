// Operator pages: the dialog behind each request's action icon (notice for process/finalize, reason for cancel).
// The form posts to the page route with its CSRF token; the server checks the role and the state machine again.
(function () {
  "use strict";
  var dialog = document.getElementById("action-dialog");
  if (!dialog) { return; }
  var form = document.getElementById("action-form");
  var text = document.getElementById("action-text");
  var label = document.getElementById("action-label");
  var title = document.getElementById("action-title");
  var help = document.getElementById("action-help");
  var SPEC = {
    process: {title: "Process", label: "Notice to the customer (required)", required: true,
              help: "The customer is told the funds were received and the payout is on its way."},
    finalize: {title: "Finalize", label: "Notice to the customer (optional)", required: false,
               help: "Marks the request completed: the customer was paid."},
    cancel: {title: "Cancel", label: "Reason (sent to the customer)", required: true,
             help: "Cancels the request. If money was received, refund it."},
    payout: {title: "Payout", label: null, help: "Sends the payout through the payment system's API."},
    "delete": {title: "Delete", label: null, help: "Hides the request; it stays in the audit."}
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    var action = button.getAttribute("data-action");
    var spec = SPEC[action];
    if (!spec) { return; }
    form.action = "/admin/orders/" + encodeURIComponent(button.getAttribute("data-order")) + "/" + action;
    form.setAttribute("data-action", action);
    title.textContent = spec.title + " request " + button.getAttribute("data-order") + " (" +
      button.getAttribute("data-ref") + ")";
    help.textContent = spec.help;
    text.value = "";
    var hasText = spec.label !== null;
    label.hidden = !hasText;
    text.hidden = !hasText;
    text.required = !!spec.required;
    if (hasText) { label.textContent = spec.label; }
    dialog.showModal();
    if (hasText) { text.focus(); }
  });
  document.getElementById("action-close").addEventListener("click", function () { dialog.close(); });
}());
