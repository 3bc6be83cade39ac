"""Server-rendered pages: the customer's exchange form and order page (ru/en), and the operator pages under /admin.
Templates in gateway/templates, one CSS and a few small scripts in gateway/static (no inline script or style:
the CSP forbids them, so an injected one cannot run)."""
import functools
from urllib.parse import urlsplit

from flask import g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from gateway.pages.i18n import current_language, translator
from gateway.security.caller import client_ip
from gateway.security.sessions import session_store, staff_cookie
from gateway.security.staff import staff_store


def safe_next(target, default="/admin/"):
    """Only a local /admin path may follow sign-in (no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or target.startswith("//"):
        return default
    return target


def staff_page(roles):
    """Every operator page names its roles: no session -> the sign-in page; wrong role -> 403 (audited)."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            session = session_store().load(staff_cookie())
            if session is None or session["stage"] != "full":
                if session is not None and session["stage"] == "enrol":
                    return redirect(url_for("signin.enrol"))
                if session is not None and session["stage"] == "password":
                    return redirect(url_for("signin.code"))
                target = (request.full_path if request.query_string else request.path) \
                    if request.method == "GET" else None
                return redirect(url_for("signin.login", next=target) if target else url_for("signin.login"))
            g.staff = {"id": session["staff_id"], "username": session["username"], "role": session["role"],
                       "scope": "full", "via": "session", "stepped_up_at": session["stepped_up_at"]}
            g.auth_session = session
            if session["role"] not in roles:
                staff_store().audit(session["username"], "forbidden:%s %s" % (request.method, request.path),
                                    outcome="denied", role=session["role"], ip=client_ip())
                return render_template("admin/error.html", code=403,
                                       message="Your role may not open this page."), 403
            return view(*args, **kwargs)
        wrapper.required_roles = roles
        return wrapper
    return decorator


def _is_page():
    return not request.path.startswith("/api/") and request.path not in ("/metrics", "/healthz", "/readyz")


def init_app(app):
    from gateway.pages import admin, customer, manage, signin
    for module in (customer, signin, admin, manage):
        app.register_blueprint(module.bp)

    @app.context_processor
    def _globals():
        lang = current_language() if _is_page() and not request.path.startswith("/admin") else "en"
        return {"lang": lang, "t": translator(lang), "me": g.get("staff") if request.path.startswith("/admin")
                else None}

    json_http_error = app.error_handler_spec[None][None].get(HTTPException)
    json_unexpected = app.error_handler_spec[None][None].get(Exception)

    def _page_error(code, message):
        template = "admin/error.html" if request.path.startswith("/admin") else "error.html"
        return render_template(template, code=code, message=message), code

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        # The API keeps its JSON errors (gateway/errors.py); people get a page.
        if not _is_page():
            return json_http_error(exc)
        t = translator(current_language())
        if isinstance(exc, CSRFError):
            return _page_error(400, t("form_expired"))
        if exc.code == 429:
            return _page_error(429, t("too_many"))
        if exc.code == 404:
            return _page_error(404, t("not_found") if request.path.startswith("/orders/") else t("page_not_found"))
        # werkzeug's descriptions are English: a page in Russian says it in its own words.
        worded = {400: "bad_request", 403: "forbidden", 405: "method_not_allowed"}.get(exc.code)
        return _page_error(exc.code or 500, t(worded) if worded else t("error"))

    @app.errorhandler(Exception)
    def _unexpected(exc):
        response = json_unexpected(exc)  # logs it, as for the API
        if not _is_page():
            return response
        return _page_error(500, translator(current_language())("error"))
