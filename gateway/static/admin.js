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
    payout: {title: "Payout", label: null, summary: true,
             help: "Sends this amount to this recipient through the payment system's API. The payment system " +
                   "answers afterwards: the request page shows whether it paid or refused."},
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
    var summary = document.getElementById("action-summary");
    if (summary) {
      summary.hidden = !spec.summary;
      document.getElementById("action-amount").textContent =
        button.getAttribute("data-amount") + " " + button.getAttribute("data-currency");
      document.getElementById("action-recipient").textContent = button.getAttribute("data-recipient");
    }
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

// The request page while a payout is with the payment system: follow the request until it answers, then say what
// it answered (paid, or refused with its reason) instead of leaving the operator with "handed over".
(function () {
  "use strict";
  var outcome = document.getElementById("live-outcome");
  if (!outcome || outcome.getAttribute("data-status") !== "payout") { return; }
  var id = outcome.getAttribute("data-order-id");
  var badge = document.getElementById("order-status");

  function getJson(path) {
    return fetch(path, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; });
  }

  function show(kind, text) {
    outcome.className = "alert alert-" + kind;
    outcome.textContent = text;
    outcome.hidden = false;
  }

  function poll() {
    getJson("/api/v1/admin/orders/" + encodeURIComponent(id)).then(function (order) {
      if (!order || order.status === "payout") { window.setTimeout(poll, 2000); return; }
      if (badge) {
        badge.textContent = order.status.replace(/_/g, " ");
        badge.className = "badge st-" + order.status;
        badge.setAttribute("data-status", order.status);
      }
      if (order.status === "completed") {
        show("ok", "The payment system paid the payout: the request is completed.");
        return;
      }
      getJson("/api/v1/admin/orders/" + encodeURIComponent(id) + "/payments").then(function (payments) {
        var last = payments && payments.payouts && payments.payouts[payments.payouts.length - 1];
        show("error", "The payment system refused the payout" + (last && last.error ? ": " + last.error : "") +
             ". The request is " + order.status.replace(/_/g, " ") + ".");
      });
    }).catch(function () { window.setTimeout(poll, 5000); });
  }
  show("info", "The payout is with the payment system; waiting for its answer…");
  window.setTimeout(poll, 1500);
}());
