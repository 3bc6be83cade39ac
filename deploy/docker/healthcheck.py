"""Container healthcheck without curl in the slim image: `python deploy/docker/healthcheck.py URL`."""
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
        sys.exit(0 if response.status < 400 else 1)
except Exception:  # noqa: BLE001 - any failure is unhealthy
    sys.exit(1)
