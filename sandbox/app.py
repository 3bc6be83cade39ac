"""Flask app factory of the sandbox payment system: JSON API under /api, the customer's bank page at /."""
import logging

from flask import Flask, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from libs import config as env
from libs.db import Database
from sandbox import api, database, domain, web

log = logging.getLogger(__name__)


def _is_api():
    return request.path.startswith("/api/") or request.path == "/api"


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(
        DATABASE_URL=env.database_url(),
        SANDBOX_DB_POOL=env.env_int("SANDBOX_DB_POOL", 20),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    if config:
        app.config.update(config)
    app.extensions[database.EXTENSION] = Database(
        url=app.config["DATABASE_URL"], schema="sandbox", maxconn=app.config["SANDBOX_DB_POOL"],
        application_name="sandbox")

    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)

    @app.errorhandler(domain.SandboxError)
    def sandbox_error(exc):
        if not _is_api():
            return web.render_error(exc)
        return jsonify(exc.to_wire()), exc.status

    @app.errorhandler(ValidationError)
    def schema_error(exc):
        body = {"error": "invalid_request", "message": "invalid input", "fields": exc.normalized_messages()}
        return jsonify(body), 400

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if not _is_api():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": code, "message": exc.description}), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not _is_api():
            return "Internal error", 500
        return jsonify({"error": "internal_error", "message": "internal error"}), 500

    @app.after_request
    def headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
        if _is_api():
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/healthz")
    def healthz():
        with database.get_db().transaction() as cur:
            cur.execute("SELECT 1")
        return jsonify({"status": "ok"})

    return app
