"""The one base for every service's nameko dependencies (docs/architecture.md, "One shape for every service").

A service's `dependencies.py` subclasses `ServiceDependency` once per task (an order store, a payout sender, a
letter log...) and builds a small API object from the container's shared database pool and config. Entrypoints
get that object and nothing else, so a worker's collaborators are named after what they do.

Every provider of one container shares ONE connection pool (`SharedDatabase`), so splitting a service's
storage into several providers costs no extra connections.
"""
from nameko.extensions import DependencyProvider, SharedExtension

from libs import config
from libs.db import Database


def service_schema(container):
    """The PostgreSQL schema of this container: DB_SCHEMA in its config (tests give each run a private copy),
    else the service's own name."""
    return container.config.get("DB_SCHEMA") or container.service_name


def pool_size(cfg):
    """One connection per worker plus two for timers and the relay's occasional reads."""
    return int(cfg.get("DB_POOL_SIZE") or int(cfg.get("max_workers", 10)) + 2)


class SharedDatabase(SharedExtension):
    """One Database pool per container, shared by every ServiceDependency of that container."""

    database = None

    def setup(self):
        # Idempotent: nameko sets a container's extensions up concurrently in no fixed order, so each provider
        # calls this before building its API instead of relying on the container having called it already.
        if self.database is not None:
            return
        cfg = self.container.config
        self.database = Database(url=cfg.get("DATABASE_URL") or config.database_url(),
                                 schema=service_schema(self.container), maxconn=pool_size(cfg),
                                 application_name=self.container.service_name)

    def stop(self):
        self.database.close()

    def kill(self):
        self.database.close()


class ServiceDependency(DependencyProvider):
    """Subclass and implement `build(db, cfg)`; the object it returns is what the entrypoints see.

    `start_api(api)` / `stop_api(api)` run at container start and stop for APIs that keep state (a metric
    primed at start, a client to close)."""

    shared_database = SharedDatabase()

    def setup(self):
        self.shared_database.setup()
        self.api = self.build(self.shared_database.database, self.container.config)

    def build(self, db, cfg):
        raise NotImplementedError

    def start(self):
        self.start_api(self.api)

    def stop(self):
        self.stop_api(self.api)

    def kill(self):
        self.stop_api(self.api)

    def start_api(self, api):
        pass

    def stop_api(self, api):
        pass

    def get_dependency(self, worker_ctx):
        return self.api
