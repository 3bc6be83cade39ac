// The order page follows its request by itself: GET /api/v1/orders/<token> every few seconds (no reload),
// updating the status, the history and the payment block; and counts down to the payment deadline.
(function () {
  "use strict";
  var root = document.getElementById("order");
  if (!root) { return; }
  var token = root.getAttribute("data-token");
  var texts = JSON.parse(document.getElementById("status-texts").textContent);
  var FINAL = ["completed", "canceled", "deleted"];
  var status = root.getAttribute("data-status");
  var historyLength = document.querySelectorAll("#timeline li").length;
  var interval = 3000;

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.querySelector("span").textContent = text || ""; el.hidden = !text; }
  }

  function render(order) {
    if (order.status !== status) {
      status = order.status;
      root.setAttribute("data-status", status);
      var badge = document.getElementById("status");
      badge.textContent = texts[status] || status;
      badge.className = "badge st-" + status;
      badge.setAttribute("data-status", status);
      var pay = document.getElementById("pay");
      if (pay) { pay.hidden = status !== "new"; }
    }
    setText("notice", order.notice);
    setText("cancel-reason", order.cancel_reason);
    var history = order.history || [];
    if (history.length !== historyLength) {
      var list = document.getElementById("timeline");
      list.textContent = "";
      history.forEach(function (h) {
        var li = document.createElement("li");
        li.className = "st-" + h.to_status;
        var when = document.createElement("span");
        when.className = "when";
        when.textContent = (h.at || "").slice(0, 16).replace("T", " ");
        var what = document.createElement("span");
        what.className = "what";
        what.textContent = " " + (texts[h.to_status] || h.to_status);
        li.appendChild(when);
        li.appendChild(what);
        if (h.note) {
          var note = document.createElement("span");
          note.className = "note";
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

  var countdown = document.getElementById("countdown");
  function tick() {
    if (!countdown) { return; }
    var left = Math.floor((Date.parse(countdown.getAttribute("data-expires")) - Date.now()) / 1000);
    if (left <= 0) {
      countdown.textContent = "0:00";
      document.getElementById("expired-note").hidden = false;
      return;
    }
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    countdown.textContent = (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + (s < 10 ? "0" : "") + s;
    window.setTimeout(tick, 1000);
  }
  tick();
  window.setTimeout(poll, interval);
}());
