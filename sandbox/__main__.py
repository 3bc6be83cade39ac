"""Run the sandbox payment system: `python -m sandbox [--dev] [--migrate]`.

Listens on SANDBOX_HOST (127.0.0.1) : SANDBOX_PORT (8090). By default it runs under gunicorn with threaded workers
(SANDBOX_WORKERS, SANDBOX_THREADS); `--dev` uses werkzeug's reloader-free development server instead.
"""
import argparse
import logging
import sys

from libs import config


def _gunicorn(host, port, workers, threads):
    from gunicorn.app.base import BaseApplication

    class Sandbox(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", "%s:%d" % (host, port))
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            # A timeout fault holds a request for delay_s (30 s by default): do not let the arbiter kill it.
            self.cfg.set("timeout", 3700)
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", "sandbox")

        def load(self):
            from sandbox.wsgi import app
            return app

    Sandbox().run()


def main(argv=None):
    config.refuse_unsafe_production("sandbox")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=config.env("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=config.env_int("SANDBOX_PORT", 8090))
    parser.add_argument("--workers", type=int, default=config.env_int("SANDBOX_WORKERS", 2))
    parser.add_argument("--threads", type=int, default=config.env_int("SANDBOX_THREADS", 8))
    parser.add_argument("--dev", action="store_true", help="werkzeug development server instead of gunicorn")
    parser.add_argument("--migrate", action="store_true", help="apply the sandbox schema migrations first")
    parser.add_argument("--seed", action="store_true", help="create the demo accounts first (implies --migrate)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(name)s: %(message)s")

    if args.migrate or args.seed:
        from libs.migrate import migrate
        migrate(config.database_url(), ["sandbox"])
    if args.seed:
        from sandbox.seed import seed
        seed()

    if args.dev:
        from werkzeug.serving import run_simple
        from sandbox.app import create_app
        run_simple(args.host, args.port, create_app(), threaded=True, use_reloader=False)
    else:
        _gunicorn(args.host, args.port, args.workers, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
