"""A local stand-in for the rate sources (docs/rates.md, "The stand-in"): `python -m sandbox.rates_standin`.

Serves the recorded files in sandbox/rates_files/ at the paths config.yml of services/rates points at by default
(RATES_STANDIN_PORT, 8095), so `make run` has rates that move:

    GET /cbr/XML_daily.asp                     Bank of Russia, dated today (windows-1251)
    GET /ecb/eurofxref-daily.xml               ECB, dated today (or the recorded day: `holiday`)
    GET /binance/api/v3/ticker/bookTicker      Binance bid/ask, drifting a little with time
    GET /binance/api/v3/ticker/price           Binance last prices, drifting the same way
    GET /other/rates.xml                       another exchanger's monitors' file, drifting

Tests script it: POST /_control with {"source": "binance", "pin": {"BTCUSDT": "100.5"}} fixes values (a number
for both bid and ask, or {"bid", "ask"}), "pin": null lets them drift again; {"down": "error"} answers 503,
{"down": "hang"} answers nothing for a minute (past any timeout), {"down": null} serves again;
{"holiday": true} keeps the ECB file on its recorded day. GET /_control shows the state.
"""
import argparse
import datetime
import json
import math
import os
import re
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from libs import config
from libs.monitor_rates import parse_rates_xml, render_rates_xml

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rates_files")
ROUTES = {
    "/cbr/XML_daily.asp": "cbr",
    "/ecb/eurofxref-daily.xml": "ecb",
    "/binance/api/v3/ticker/bookTicker": "binance",
    "/binance/api/v3/ticker/price": "binance_price",
    "/other/rates.xml": "other",
}
SOURCES = sorted(set(ROUTES.values()))


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.pins = {s: {} for s in SOURCES}
        self.down = {s: None for s in SOURCES}
        self.holiday = False

    def control(self, body):
        source = body.get("source")
        targets = SOURCES if source in (None, "all") else [source]
        if any(t not in SOURCES for t in targets):
            raise ValueError("unknown source %r" % source)
        with self.lock:
            for target in targets:
                if "pin" in body:
                    self.pins[target] = dict(body["pin"] or {})
                if "down" in body:
                    if body["down"] not in (None, "error", "hang"):
                        raise ValueError("down: null, error or hang")
                    self.down[target] = body["down"]
            if "holiday" in body:
                self.holiday = bool(body["holiday"])

    def snapshot(self):
        with self.lock:
            return {"pins": self.pins, "down": self.down, "holiday": self.holiday}


STATE = State()


def _read(name):
    with open(os.path.join(FILES, name), "rb") as fh:
        return fh.read()


def drift():
    """A slow wave of ±0.3 % over ten minutes: the demo's rates move, by amounts no guard minds."""
    return Decimal(1) + Decimal(str(round(0.003 * math.sin(time.time() / 600 * 2 * math.pi), 6)))


def _moved(value, factor):
    return (Decimal(value) * factor).quantize(Decimal(value)) if "." in value else Decimal(value) * factor


def cbr():
    today = datetime.date.today().strftime("%d.%m.%Y")
    return re.sub(rb'Date="[0-9.]+"', b'Date="' + today.encode() + b'"', _read("cbr_daily.xml"))


def ecb():
    data = _read("ecb_daily.xml")
    if STATE.holiday:
        return data
    return re.sub(rb"time='[0-9-]+'", b"time='" + datetime.date.today().isoformat().encode() + b"'", data)


def _pinned(pins, symbol, side):
    pin = pins.get(symbol)
    if isinstance(pin, dict):
        return pin.get(side)
    return pin


def binance(kind):
    pins = STATE.snapshot()["pins"][kind]
    factor = drift()
    if kind == "binance":
        tickers = json.loads(_read("binance_bookticker.json"))
        for t in tickers:
            for field, side in (("bidPrice", "bid"), ("askPrice", "ask")):
                t[field] = str(_pinned(pins, t["symbol"], side) or _moved(t[field], factor))
    else:
        tickers = json.loads(_read("binance_price.json"))
        for t in tickers:
            t["price"] = str(_pinned(pins, t["symbol"], "price") or _moved(t["price"], factor))
    return json.dumps(tickers).encode()


def other():
    pins = STATE.snapshot()["pins"]["other"]
    factor = drift()
    items = parse_rates_xml(_read("monitor_other.xml"))
    for item in items:
        pin = pins.get("%s_%s" % (item["from"], item["to"]))
        if pin is not None:
            item["in"], item["out"] = Decimal(1), Decimal(str(pin))
        else:
            side = "out" if item["in"] == 1 else "in"
            item[side] = (item[side] * factor).quantize(Decimal("0.01"))
    return render_rates_xml(items)


def body_of(source):
    if source == "cbr":
        return cbr(), "application/xml; charset=windows-1251"
    if source == "ecb":
        return ecb(), "text/xml"
    if source in ("binance", "binance_price"):
        return binance(source), "application/json"
    return other(), "application/xml"


class Handler(BaseHTTPRequestHandler):
    server_version = "rates-standin/1"

    def _send(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/_control":
            return self._send(200, json.dumps(STATE.snapshot()).encode())
        source = ROUTES.get(path)
        if source is None:
            return self._send(404, b'{"error": "not found"}')
        down = STATE.snapshot()["down"][source]
        if down == "hang":
            time.sleep(60)
            return None
        if down == "error":
            return self._send(503, b"maintenance", "text/plain")
        body, content_type = body_of(source)
        return self._send(200, body, content_type)

    def do_POST(self):  # noqa: N802
        if self.path != "/_control":
            return self._send(404, b'{"error": "not found"}')
        try:
            length = int(self.headers.get("Content-Length") or 0)
            STATE.control(json.loads(self.rfile.read(length) or b"{}"))
        except (ValueError, TypeError, AttributeError) as exc:
            return self._send(422, json.dumps({"error": str(exc)}).encode())
        return self._send(200, json.dumps(STATE.snapshot()).encode())

    def log_message(self, fmt, *args):
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description="local stand-in for the rate sources")
    parser.add_argument("--host", default=config.env("RATES_STANDIN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=config.env_int("RATES_STANDIN_PORT", 8095))
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print("rates stand-in on http://%s:%d/" % (args.host, args.port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
