// The order page follows its request by itself: GET /api/v1/orders/<token> every few seconds (no reload),
// updating the status, the history (one sentence per event, in the page's language) and the payment block; counts
// down to the payment deadline and disables paying and cancelling when it passes; shows times in the visitor's
// time zone; copies the payment details; asks before cancelling.
(function () {
  "use strict";
  var root = document.getElementById("order");
  if (!root) { return; }
  var token = root.getAttribute("data-token");
  var texts = JSON.parse(document.getElementById("status-texts").textContent);
  var page = JSON.parse(document.getElementById("page-texts").textContent);
  var FINAL = ["completed", "canceled", "deleted"];
  var status = root.getAttribute("data-status");
  var flag = root.getAttribute("data-flag");
  var historyLength = document.querySelectorAll("#timeline li").length;
  var interval = 3000;

  // -- times in the visitor's zone, the zone named ------------------------------------------------------------
  var formatter = null;
  try {
    formatter = new Intl.DateTimeFormat(page.lang === "ru" ? "ru-RU" : "en-GB", {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      timeZoneName: "short"});
  } catch (e) { formatter = null; }

  function localTime(el) {
    var at = Date.parse(el.getAttribute("data-at"));
    if (formatter && !isNaN(at)) { el.textContent = formatter.format(new Date(at)); }
  }

  function localTimes(scope) {
    Array.prototype.forEach.call((scope || document).querySelectorAll("[data-at]"), localTime);
  }

  // -- copy buttons -----------------------------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent.trim();
    var shown = button.querySelector(".copy-label");
    var label = button.getAttribute("data-label") || shown.textContent;
    button.setAttribute("data-label", label);
    function done() {
      shown.textContent = page.copied;
      window.setTimeout(function () { shown.textContent = label; }, 2000);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
    }
  });

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // -- cancelling asks first --------------------------------------------------------------------------------------
  var cancelForm = document.getElementById("cancel-form");
  if (cancelForm) {
    cancelForm.addEventListener("submit", function (event) {
      if (!window.confirm(cancelForm.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  }

  // -- following the request --------------------------------------------------------------------------------------
  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.querySelector("span").textContent = text || ""; el.hidden = !text; }
  }

  function sentence(h, order) {
    var key = "ev_" + h.action;
    if (h.action === "pay" && order.payment_flag) { key = "ev_pay_" + order.payment_flag; }
    return page.events[key] || page.events["st_" + h.to_status] || texts[h.to_status] || "";
  }

  function render(order) {
    if ((order.payment_flag || "") !== (flag || "")) {
      // a payment that does not fit: the page explains it (received, expected, what happens), drawn by the server
      window.location.reload();
      return;
    }
    if (order.status !== status) {
      status = order.status;
      root.setAttribute("data-status", status);
      var badge = document.getElementById("status");
      badge.textContent = texts[status] || "";
      badge.className = "badge st-" + status;
      badge.setAttribute("data-status", status);
      var pay = document.getElementById("pay");
      if (pay) { pay.hidden = status !== "new"; }
      var semi = document.getElementById("semi-auto-note");
      if (semi) { semi.hidden = !(order.exchange_type === "semi_auto" && status === "paid" && !order.payment_flag); }
    }
    setText("notice", order.notice);
    setText("cancel-reason", order.cancel_reason);
    var history = order.history || [];
    if (history.length !== historyLength) {
      var list = document.getElementById("timeline");
      list.textContent = "";
      history.forEach(function (h) {
        var li = document.createElement("li");
        li.setAttribute("data-status", h.to_status);
        li.setAttribute("data-action", h.action);
        var when = document.createElement("time");
        when.className = "when";
        when.setAttribute("datetime", h.at || "");
        when.setAttribute("data-at", h.at || "");
        when.textContent = (h.at || "").slice(0, 16).replace("T", " ") + " UTC";
        localTime(when);
        var what = document.createElement("span");
        what.className = "what";
        what.textContent = sentence(h, order);
        li.appendChild(when);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(what);
        if (h.note) {
          var note = document.createElement("span");
          note.className = "note";
          note.setAttribute("translate", "no");
          note.textContent = " — " + h.note;
          li.appendChild(note);
        }
        list.appendChild(li);
      });
      historyLength = history.length;
    }
  }

  function poll() {
    if (FINAL.indexOf(status) >= 0) { return; }
    fetch("/api/v1/orders/" + encodeURIComponent(token), {headers: {"Accept": "application/json"},
                                                          credentials: "omit", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (order) {
        if (order) { render(order); interval = 3000; } else { interval = Math.min(interval * 2, 30000); }
      })
      .catch(function () { interval = Math.min(interval * 2, 30000); })
      .then(function () { window.setTimeout(poll, interval); });
  }

  // -- the countdown: at zero, paying and cancelling stop at once (the server refuses them too) ------------------
  var countdown = document.getElementById("countdown");
  function expired() {
    countdown.textContent = "0:00";
    document.getElementById("expired-note").hidden = false;
    ["paid-button", "cancel-button"].forEach(function (id) {
      var button = document.getElementById(id);
      if (button) { button.disabled = true; }
    });
    var link = document.getElementById("sandbox-link");
    if (link) { link.hidden = true; }
  }
  function tick() {
    if (!countdown || status !== "new") { return; }
    var left = Math.floor((Date.parse(countdown.getAttribute("data-expires")) - Date.now()) / 1000);
    if (left <= 0) { expired(); return; }
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    countdown.textContent = (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + (s < 10 ? "0" : "") + s;
    window.setTimeout(tick, 1000);
  }
  localTimes();
  tick();
  window.setTimeout(poll, interval);
}());
