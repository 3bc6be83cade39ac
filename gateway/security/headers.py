"""Security headers on every response: a strict CSP (no inline script or style on the pages, nothing at all for
the JSON API), no framing, no sniffing, HSTS when configured, and no caching of pages, JSON or CSV."""
from flask import current_app, request

CSP_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
             "object-src 'none'")
CSP_API = "default-src 'none'; frame-ancestors 'none'"


def security_headers(response):
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")  # order tokens in URLs never leave for another site
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    hsts = current_app.config.get("HSTS_SECONDS")
    if hsts:
        h.setdefault("Strict-Transport-Security", "max-age=%d; includeSubDomains" % hsts)
    if response.mimetype == "text/html":
        h.setdefault("Content-Security-Policy", CSP_PAGES)
    elif not request.path.startswith("/static/"):
        h.setdefault("Content-Security-Policy", CSP_API)
    if response.mimetype in ("application/json", "text/html", "text/csv") and "Cache-Control" not in h:
        h["Cache-Control"] = "no-store"
    return response
