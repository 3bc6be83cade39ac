"""WSGI entry point: `gunicorn sandbox.wsgi:app`."""
from sandbox.app import create_app

app = create_app()
