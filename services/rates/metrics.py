"""Rate engine metrics (module level: registered once per process), served on the service's METRICS_PORT.

- exchanger_rate_frozen_directions: directions with a formula that a guard holds frozen now (alert on > 0);
- exchanger_rate_source_errors_in_row{source}: failed polls of a source since its last good answer;
- exchanger_rate_source_fresh_values{source}: its values within the maximum age (0: every formula on it relies on
  a fallback or is frozen);
- exchanger_rate_recompute_seconds: one recompute of every formula, publishing included.
"""
from prometheus_client import Gauge, Histogram

FROZEN = Gauge("exchanger_rate_frozen_directions", "Directions with a formula that a guard holds frozen")
SOURCE_ERRORS = Gauge("exchanger_rate_source_errors_in_row", "Failed polls since the last good answer", ["source"])
SOURCE_FRESH = Gauge("exchanger_rate_source_fresh_values", "Values of the source within its maximum age",
                     ["source"])
RECOMPUTE_SECONDS = Histogram("exchanger_rate_recompute_seconds", "One recompute of every formula",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
