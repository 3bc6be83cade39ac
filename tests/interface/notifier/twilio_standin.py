"""A Twilio REST API stand-in for the tests: the real twilio client talks to it through TWILIO_BASE_URL.

It implements what the notifier uses, with Twilio's shapes:
- POST /2010-04-01/Accounts/<sid>/Messages.json (form To, From, Body, StatusCallback; HTTP Basic auth) ->
  201 and a Message resource (sid SM..., status "queued");
- GET  /2010-04-01/Accounts/<sid>/Messages.json?To=&From= -> a page {"messages": [...], ...}.

Scriptable per request: `script("500", "429", "hang")` makes the next POSTs fail that way, then it answers
normally again; `script(..., to="+1555...")` scripts only the messages to that number (tests share the
stand-in). Modes: "ok", "500", "429", "400", "hang" (never answers until stopped), "accept_500" (stores the
message, then answers 500: the outcome-unknown case), "drop" (closes the connection without an answer).
With `callbacks=True` it posts signed status callbacks (sent, delivered) to the message's StatusCallback, as
Twilio does. Works in plain threads (e2e) and green ones (interface tests).
"""
import base64
import collections
import email.utils
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from twilio.request_validator import RequestValidator

API = "/2010-04-01/Accounts/"


class TwilioStandin:
    def __init__(self, account_sid, auth_token, host="127.0.0.1", port=0, callbacks=False):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.callbacks = callbacks
        self.messages = []          # accepted messages (dicts, Twilio's JSON shape)
        self.requests = []          # every POST: {"to", "body", "mode", "status_callback"}
        self.callbacks_sent = []    # (url, params, status_code)
        self._script = collections.deque()
        self._scripts = collections.defaultdict(collections.deque)  # per recipient
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = "http://%s:%d" % (host, self.httpd.server_port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="twilio-standin", daemon=True)
        self.thread.start()

    # -- control ---------------------------------------------------------------------------------------------
    def script(self, *modes, to=None):
        with self._lock:
            (self._scripts[to] if to else self._script).extend(modes)

    def reset(self):
        with self._lock:
            self._script.clear()
            self._scripts.clear()
            self.messages.clear()
            self.requests.clear()
            self.callbacks_sent.clear()

    def stop(self):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def sent_to(self, phone):
        return [m for m in self.messages if m["to"] == phone]

    def _next_mode(self, to):
        with self._lock:
            if self._scripts.get(to):
                return self._scripts[to].popleft()
            return self._script.popleft() if self._script else "ok"

    # -- the API ---------------------------------------------------------------------------------------------
    def _message(self, form):
        now = email.utils.formatdate(usegmt=True)
        sid = "SM" + secrets.token_hex(16)
        return {
            "sid": sid, "account_sid": self.account_sid, "api_version": "2010-04-01",
            "to": form.get("To"), "from": form.get("From"), "body": form.get("Body"),
            "status": "queued", "direction": "outbound-api", "num_segments": "1", "num_media": "0",
            "date_created": now, "date_updated": now, "date_sent": None,
            "error_code": None, "error_message": None, "price": None, "price_unit": "USD",
            "messaging_service_sid": None,
            "uri": "%s%s/Messages/%s.json" % (API, self.account_sid, sid),
            "subresource_uris": {"media": "%s%s/Messages/%s/Media.json" % (API, self.account_sid, sid)},
            "_status_callback": form.get("StatusCallback"),
        }

    def _public(self, message):
        return {k: v for k, v in message.items() if not k.startswith("_")}

    def _send_callbacks(self, message):
        url = message.get("_status_callback")
        if not url:
            return
        validator = RequestValidator(self.auth_token)
        for status in ("sent", "delivered"):
            time.sleep(0.05)
            params = {"MessageSid": message["sid"], "MessageStatus": status, "SmsSid": message["sid"],
                      "SmsStatus": status, "AccountSid": self.account_sid, "To": message["to"],
                      "From": message["from"], "ApiVersion": "2010-04-01"}
            signature = validator.compute_signature(url, params)
            try:
                r = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
                self.callbacks_sent.append((url, params, r.status_code))
            except requests.RequestException as exc:
                self.callbacks_sent.append((url, params, repr(exc)))

    def _handler_class(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status, code, message):
                self._json(status, {"code": code, "message": message, "status": status,
                                    "more_info": "https://www.twilio.com/docs/errors/%s" % code})

            def _authorized(self):
                header = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(
                    ("%s:%s" % (standin.account_sid, standin.auth_token)).encode()).decode()
                return header == expected

            def _path_ok(self):
                path = urllib.parse.urlsplit(self.path).path
                return path == "%s%s/Messages.json" % (API, standin.account_sid)

            def do_GET(self):
                if not self._path_ok():
                    return self._error(404, 20404, "The requested resource was not found")
                if not self._authorized():
                    return self._error(401, 20003, "Authenticate")
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                to = query.get("To", [None])[0]
                from_ = query.get("From", [None])[0]
                items = [standin._public(m) for m in reversed(standin.messages)
                         if (to is None or m["to"] == to) and (from_ is None or m["from"] == from_)]
                uri = "%s%s/Messages.json" % (API, standin.account_sid)
                self._json(200, {"messages": items[:50], "first_page_uri": uri, "next_page_uri": None,
                                 "previous_page_uri": None, "page": 0, "page_size": 50, "start": 0,
                                 "end": max(len(items[:50]) - 1, 0), "uri": uri})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
                if not self._path_ok():
                    return self._error(404, 20404, "The requested resource was not found")
                if not self._authorized():
                    return self._error(401, 20003, "Authenticate")
                mode = standin._next_mode(form.get("To"))
                standin.requests.append({"to": form.get("To"), "body": form.get("Body"), "mode": mode,
                                         "status_callback": form.get("StatusCallback")})
                if mode == "hang":
                    standin._stop.wait(120)
                    self.close_connection = True
                    return
                if mode == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode == "500":
                    return self._error(500, 20500, "Internal Server Error")
                if mode == "429":
                    return self._error(429, 20429, "Too Many Requests")
                if mode == "400":
                    return self._error(400, 21211, "The 'To' number is not a valid phone number.")
                if not form.get("To") or not form.get("Body") or not form.get("From"):
                    return self._error(400, 21604, "A 'To', 'From' and 'Body' are required")
                message = standin._message(form)
                standin.messages.append(message)
                if mode == "accept_500":
                    return self._error(500, 20500, "Internal Server Error")
                self._json(201, standin._public(message))
                if standin.callbacks:
                    threading.Thread(target=standin._send_callbacks, args=(message,), daemon=True).start()

        return Handler
