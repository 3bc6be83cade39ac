"""The gateway: customer and operator HTTP API (and, later, pages) in front of the nameko services."""
import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from gateway import config as gateway_config
from gateway import errors, metrics
from gateway.auth import StaffStore
from libs.db import Database


class JSONProvider(DefaultJSONProvider):
    sort_keys = False


def create_app(config=None):
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config.update(gateway_config.from_env())
    if config:
        app.config.update(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s gateway %(name)s: %(message)s")

    database = Database(url=app.config["DATABASE_URL"], schema="gateway", maxconn=8, application_name="gateway")
    app.extensions["db"] = database
    app.extensions["staff"] = StaffStore(database)

    errors.init_app(app)
    metrics.init_app(app)

    from gateway.api import admin, auth, health, public
    from gateway import openapi
    for module in (public, auth, admin, health, openapi):
        app.register_blueprint(module.bp)

    @app.after_request
    def _no_sniff(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "application/json":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
