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

// The request list: rows that change or arrive appear by themselves (GET /admin/orders/rows?since=…, the list's
// filters, every few seconds), new ones counted in a badge and the tab's title; keyboard shortcuts (? shows
// them); selection with bulk cancel / delete / export; filters folded on phones.
(function () {
  "use strict";
  var table = document.getElementById("orders-table");
  if (!table) { return; }
  var tbody = table.querySelector("tbody");
  var badge = document.getElementById("new-count");
  var baseTitle = document.title;
  var fresh = 0;
  var current = -1;

  // -- filters folded on phones (unless some are applied) -------------------------------------------------------
  var more = document.getElementById("more-filters");
  if (more && window.matchMedia("(max-width: 700px)").matches && !more.getAttribute("data-applied")) {
    more.open = false;
  }

  function rows() { return Array.prototype.slice.call(tbody.querySelectorAll("tr[data-order-id]")); }

  // -- selection and bulk actions -------------------------------------------------------------------------------
  var bulk = document.getElementById("bulk-form");
  function selected() { return rows().filter(function (r) { return r.querySelector("input[name=ids]").checked; }); }
  function updateBulk() {
    var n = selected().length;
    bulk.hidden = n === 0;
    document.getElementById("bulk-count").textContent = n + " selected";
  }
  tbody.addEventListener("change", function (event) {
    if (event.target.name === "ids") { updateBulk(); }
  });
  document.getElementById("pick-all").addEventListener("change", function (event) {
    rows().forEach(function (r) { r.querySelector("input[name=ids]").checked = event.target.checked; });
    updateBulk();
  });
  var bulkCancel = document.getElementById("bulk-cancel");
  if (bulkCancel) {
    bulkCancel.addEventListener("click", function (event) {
      var reason = document.getElementById("bulk-reason");
      if (!reason.value.trim()) {
        event.preventDefault();
        reason.setCustomValidity("A reason is needed: the customers are told it.");
        reason.reportValidity();
        return;
      }
      reason.setCustomValidity("");
      if (!window.confirm("Cancel " + selected().length + " requests with this reason?")) { event.preventDefault(); }
    });
  }
  var bulkDelete = document.getElementById("bulk-delete");
  if (bulkDelete) {
    bulkDelete.addEventListener("click", function (event) {
      if (!window.confirm("Delete " + selected().length + " requests?")) { event.preventDefault(); }
    });
  }
  document.getElementById("bulk-export").addEventListener("click", function () {
    var header = ["id", "reference", "created_at (UTC)", "status", "type", "direction", "amount_in", "currency_in",
                  "amount_out", "currency_out", "recipient", "email"];
    var lines = [header].concat(selected().map(function (r) { return JSON.parse(r.getAttribute("data-csv")); }));
    var csv = lines.map(function (line) {
      return line.map(function (v) {
        var text = v === null || v === undefined ? "" : String(v);
        if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }   // no formulas in a spreadsheet
        return /[",\n;]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
      }).join(",");
    }).join("\r\n");
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob(["\ufeff" + csv], {type: "text/csv;charset=utf-8"}));
    link.download = "requests-selected.csv";
    document.body.appendChild(link);
    link.click();
    window.setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  });

  // -- live rows --------------------------------------------------------------------------------------------------
  var since = table.getAttribute("data-since");
  var url = table.getAttribute("data-rows-url");
  var interval = 4000;
  function place(row) {
    var id = row.id;
    var existing = tbody.querySelector("tr[data-order-id='" + id + "']");
    var holder = document.createElement("tbody");
    holder.innerHTML = row.html.trim();
    var tr = holder.firstElementChild;
    if (existing) {
      if (existing.getAttribute("data-updated") === tr.getAttribute("data-updated")) { return; }
      tr.querySelector("input[name=ids]").checked = existing.querySelector("input[name=ids]").checked;
      if (existing.classList.contains("current")) { tr.classList.add("current"); }
      tr.classList.add("row-changed");
      existing.replaceWith(tr);
      return;
    }
    var newest = rows()[0];
    if (newest && Number(newest.getAttribute("data-order-id")) > id) { return; }   // older: belongs to a later page
    var empty = document.getElementById("no-orders-row");
    if (empty) { empty.remove(); }
    tr.classList.add("row-new");
    tbody.insertBefore(tr, tbody.firstChild);
    if (current >= 0) { current += 1; }
    fresh += 1;
    badge.textContent = fresh + " new";
    badge.hidden = false;
    document.title = "(" + fresh + ") " + baseTitle;
  }
  function poll() {
    fetch(url + (url.indexOf("?") >= 0 ? "&" : "?") + "since=" + encodeURIComponent(since),
          {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) {
          since = data.now;
          data.rows.slice().reverse().forEach(place);
          interval = 4000;
        } else {
          interval = Math.min(interval * 2, 60000);
        }
      })
      .catch(function () { interval = Math.min(interval * 2, 60000); })
      .then(function () { window.setTimeout(poll, interval); });
  }
  if (table.getAttribute("data-live")) { window.setTimeout(poll, interval); }

  // -- keyboard shortcuts -----------------------------------------------------------------------------------------
  var help = document.getElementById("hotkeys");
  document.getElementById("hotkeys-open").addEventListener("click", function () { help.showModal(); });
  document.getElementById("hotkeys-close").addEventListener("click", function () { help.close(); });
  function focusRow(index) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (r, i) { r.classList.toggle("current", i === current); });
    all[current].scrollIntoView({block: "nearest"});
    all[current].querySelector("a.open-order").focus({preventScroll: true});
  }
  function currentRow() { return current >= 0 ? rows()[current] : null; }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || document.querySelector("dialog[open]")) {
      return;
    }
    var row = currentRow();
    var key = event.key;
    if (key === "?") { help.showModal(); event.preventDefault(); return; }
    if (key === "/") { document.getElementById("f-q").focus(); event.preventDefault(); return; }
    if (key === "j") { focusRow(current + 1); return; }
    if (key === "k") { focusRow(current - 1); return; }
    if (!row) { return; }
    if (key === "o") { window.location.href = row.querySelector("a.open-order").href; return; }
    if (key === "x") {
      var box = row.querySelector("input[name=ids]");
      box.checked = !box.checked;
      updateBulk();
      return;
    }
    var action = {p: "process", f: "finalize", c: "cancel", u: "payout"}[key];
    if (action) {
      var button = row.querySelector("button[data-action=" + action + "]");
      if (button) { button.click(); event.preventDefault(); }
    }
  });
}());

// "Export CSV" takes the filters as they stand in the form, applied or not (the search box is the list's own).
(function () {
  "use strict";
  var form = document.getElementById("filters");
  var link = document.getElementById("export-csv");
  if (!form || !link) { return; }
  var base = link.getAttribute("href").split("?")[0];
  function update() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (key !== "q" && String(value).trim()) { params.append(key, String(value).trim()); }
    });
    var query = params.toString();
    link.setAttribute("href", base + (query ? "?" + query : ""));
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
}());
