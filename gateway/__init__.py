"""The gateway: customer and operator HTTP API (and, later, pages) in front of the nameko services."""
import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import config as gateway_config
from gateway import errors, metrics, pages, security
from gateway.security.staff import StaffStore
from libs import config as libs_config
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
    libs_config.refuse_unsafe_production("gateway")

    database = Database(url=app.config["DATABASE_URL"], schema="gateway", maxconn=8, application_name="gateway")
    app.extensions["db"] = database
    app.extensions["staff"] = StaffStore(database)

    errors.init_app(app)
    metrics.init_app(app)
    security.init_app(app, database)  # sessions, CSRF, rate limits, headers (before the blueprints use them)

    from gateway.api import account, admin, auth, health, manage, notifications, partner, payments, public, reports
    from gateway import openapi
    for module in (public, auth, admin, manage, notifications, reports, payments, account, partner, health, openapi):
        app.register_blueprint(module.bp)

    pages.init_app(app)  # customer and operator pages, HTML errors outside /api
    from gateway.pages import cabinet, partners_admin  # the customer's cabinet, the partner program: docs/partners.md
    app.register_blueprint(cabinet.bp)
    app.register_blueprint(partners_admin.bp)
    # the rate engine's panel: sources, formulas, rate history (docs/rates.md)
    from gateway.api import rates as rates_api
    from gateway.pages import rates as rates_pages
    app.register_blueprint(rates_api.bp)
    app.register_blueprint(rates_pages.bp)
    # stuck money work, its API and its operator page (docs/architecture.md, "Stuck work")
    from gateway.api import stuck as stuck_api
    from gateway.pages import stuck as stuck_pages
    app.register_blueprint(stuck_api.bp)
    app.register_blueprint(stuck_pages.bp)
    from gateway.api import monitors  # the monitors' rates file (docs/monitors.md)
    app.register_blueprint(monitors.bp)
    app.wsgi_app = monitors.RatesFastPath(app, app.wsgi_app)
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        # Behind `hops` reverse proxies: the client's address, scheme and host are the ones the proxies saw
        # (X-Forwarded-For/-Proto/-Host/-Port, each trusted that many entries deep). Without it every client has
        # the proxy's address (README, "HTTPS and reverse proxies"). Outermost, so the monitors' fast path sees
        # the client's scheme too.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app
