// Live quote on the exchange form: the same arithmetic as the orders service (libs/money.py convert), done
// exactly on decimal strings with BigInt (no floating point), rounded down to the currency's precision.
// The server computes the amount again when the request is created; this is only what the customer sees first.
(function () {
  "use strict";
  var dataEl = document.getElementById("directions-data");
  if (!dataEl) { return; }
  var directions = JSON.parse(dataEl.textContent);
  var texts = JSON.parse(document.getElementById("texts-data").textContent);
  var byId = {};
  directions.forEach(function (d) { byId[String(d.id)] = d; });
  var select = document.getElementById("direction_id");
  var amountIn = document.getElementById("amount_in");
  var amountOut = document.getElementById("amount_out");
  var quoteError = document.getElementById("quote-error");
  var TEN = BigInt(10);

  function pow10(n) { var r = BigInt(1); for (var i = 0; i < n; i++) { r *= TEN; } return r; }

  function say(key, values) {
    return String(texts[key] || key).replace(/\{(\w+)\}/g, function (_, name) { return values[name]; });
  }

  // What the customer typed, as the server reads it (gateway/pages/customer.py normalise_amount): spaces
  // dropped, one decimal comma read as a point.
  function normalise(text) {
    text = String(text || "").replace(/\s/g, "");
    return (text.match(/,/g) || []).length <= 1 ? text.replace(",", ".") : text;
  }

  // "12.50" -> {n: 1250n, s: 2}; null when it is not a plain positive decimal.
  function parse(text) {
    text = normalise(text);
    if (!/^\d{1,20}(\.\d{1,18})?$/.test(text)) { return null; }
    var parts = text.split(".");
    var frac = parts[1] || "";
    return {n: BigInt(parts[0] + frac), s: frac.length};
  }

  function format(units, precision) {
    var neg = units < 0;
    var s = (neg ? -units : units).toString();
    if (precision > 0) {
      while (s.length <= precision) { s = "0" + s; }
      s = s.slice(0, s.length - precision) + "." + s.slice(s.length - precision);
      s = s.replace(/0+$/, "").replace(/\.$/, "");
    }
    return (neg ? "-" : "") + s;
  }

  // amount_out in units of 10^-precision_out for amount_in given in units of 10^-scale:
  // floor(A * rate_out * (100 - fee) / (rate_in * 100)), the K below is that factor as num/den.
  function factor(d) {
    var ro = parse(d.rate_out), ri = parse(d.rate_in), f = parse(d.fee) || {n: BigInt(0), s: 0};
    var hundred = BigInt(100) * pow10(f.s);
    return {
      num: ro.n * (hundred - f.n) * pow10(d.precision_out) * pow10(ri.s),
      den: pow10(ro.s) * pow10(f.s) * ri.n * BigInt(100)
    };
  }

  function forward(d, a) {
    var k = factor(d);
    return (a.n * k.num) / (k.den * pow10(a.s));
  }

  function backward(d, outUnits) {
    // the smallest amount in (at precision_in) that gives at least outUnits
    var k = factor(d);
    var num = outUnits * k.den * pow10(d.precision_in);
    var den = k.num;
    var units = (num + den - BigInt(1)) / den;
    return {n: units, s: d.precision_in};
  }

  function current() { return byId[select.value]; }

  function cmp(a, b) {
    var s = Math.max(a.s, b.s);
    var x = a.n * pow10(s - a.s), y = b.n * pow10(s - b.s);
    return x < y ? -1 : (x > y ? 1 : 0);
  }

  function showError(text) {
    quoteError.textContent = text || "";
    quoteError.hidden = !text;
    amountIn.classList.toggle("invalid", !!text);
  }

  function check(d, a, outUnits) {
    if (a.s > d.precision_in && a.n % pow10(a.s - d.precision_in) !== BigInt(0)) {
      return say("err_decimals", {cur: d.currency_in, n: d.precision_in});
    }
    if (cmp(a, parse(d.min_amount)) < 0) { return say("err_min", {amount: d.min_amount, cur: d.currency_in}); }
    if (cmp(a, parse(d.max_amount)) > 0) { return say("err_max", {amount: d.max_amount, cur: d.currency_in}); }
    // what open orders do not hold yet (the service holds it again, atomically, when the order is created)
    var reserve = parse(d.reserve_available);
    if (reserve && cmp({n: outUnits, s: d.precision_out}, reserve) > 0) {
      return say("err_reserve", {amount: d.reserve_available, cur: d.currency_out});
    }
    return "";
  }

  function describe(d) {
    document.getElementById("cur-in").textContent = d.currency_in;
    document.getElementById("cur-out").textContent = d.currency_out;
    document.getElementById("q-rate").textContent = d.rate_in + " " + d.currency_in + " → " + d.rate_out + " " + d.currency_out;
    document.getElementById("q-floating").hidden = !d.floating;   // the rate at payment decides (docs/rates.md)
    document.getElementById("q-fee").textContent = d.fee + " %";
    document.getElementById("q-limits").textContent = d.min_amount + " – " + d.max_amount + " " + d.currency_in;
    document.getElementById("q-reserve").textContent = d.reserve_available + " " + d.currency_out;
  }

  function fromIn() {
    var d = current();
    if (!d) { return; }
    describe(d);
    var a = parse(amountIn.value);
    if (!a) {
      amountOut.value = "";
      var typed = normalise(amountIn.value);
      // letters, two separators, a huge number: said at once, as the server would say it
      showError(!typed ? "" : (/^\d{21,}(\.\d*)?$/.test(typed) ? say("err_too_large", {}) : say("err_number", {})));
      return;
    }
    if (a.n === BigInt(0)) { amountOut.value = ""; showError(say("err_positive", {})); return; }
    var out = forward(d, a);
    amountOut.value = format(out, d.precision_out);
    showError(check(d, a, out));
  }

  function fromOut() {
    var d = current();
    var o = parse(amountOut.value);
    if (!d || !o) { return; }
    var wanted = (o.n * pow10(d.precision_out)) / pow10(o.s);
    if (wanted <= BigInt(0)) { return; }
    var a = backward(d, wanted);
    amountIn.value = format(a.n, a.s);
    showError(check(d, a, forward(d, a)));
  }

  select.addEventListener("change", fromIn);
  amountIn.addEventListener("input", fromIn);
  amountOut.addEventListener("input", fromOut);
  fromIn();
}());
