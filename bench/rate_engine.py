"""The rate engine's recompute of many formulas, in process (services/rates/dependencies.py Engine.recompute):

    python bench/rate_engine.py [--formulas 1000] [--rounds 5]

Seeds `--formulas` formulas (direction ids from 900000000, so real ones are untouched) over one manual value in
the rates schema of DATABASE_URL, then `--rounds` times changes that value and times one recompute: read every
formula and value, judge each, publish every changed verdict (one statement, one rates_computed event). Also
times a recompute with nothing changed. Removes its formulas and its value at the end; their rate_history rows
(append-only) and the rates_computed events stay, for orders to ignore (no such directions). Prints one JSON
line: {"formulas", "recompute_ms" (median of the rounds), "recompute_ms_max", "unchanged_ms", "load_average"}.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from libs.db import Database  # noqa: E402
from services.rates.dependencies import Engine  # noqa: E402

BASE = 900000000
SOURCES = [{"name": "manual", "kind": "manual", "url": None, "poll_seconds": 60, "timeout_seconds": 5,
            "max_age_seconds": 3600}]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.formulas, args.rounds)))


def measure(formulas=1000, rounds=5, database_url=None):
    """The figures as a dict (bench/rates.py reports recompute_ms from here)."""
    args = argparse.Namespace(formulas=formulas, rounds=rounds)
    db = Database(url=database_url, schema="rates", maxconn=2)
    engine = Engine(db, SOURCES)
    engine.start()

    def clean():
        with db.transaction() as cur:
            cur.execute("DELETE FROM formulas WHERE direction_id >= %s", (BASE,))
            cur.execute("DELETE FROM source_values WHERE source = 'manual' AND symbol = 'bench_engine'")

    def set_value(value):
        with db.transaction() as cur:
            cur.execute("INSERT INTO source_values (source, symbol, value, source_time, fetched_at) VALUES "
                        "('manual', 'bench_engine', %s, now(), now()) ON CONFLICT (source, symbol) DO UPDATE SET "
                        "value = EXCLUDED.value, source_time = now(), fetched_at = now()", (value,))
    clean()
    set_value("100")
    with db.transaction() as cur:
        cur.execute("INSERT INTO formulas (direction_id, currency_in, currency_out, precision_in, precision_out, "
                    "expression, quote, max_jump_percent, max_spread_percent) SELECT %s + g, 'USDT', 'RUB', 6, 2, "
                    "'markup(first(manual.bench_engine, 1), 1.5)', 'out_per_in', 10, 5 "
                    "FROM generate_series(1, %s) g", (BASE, args.formulas))
    try:
        engine.recompute()    # first verdicts, and the parse cache
        timings = []
        for i in range(args.rounds):
            set_value(str(101 + i))
            started = time.perf_counter()
            result = engine.recompute()
            timings.append((time.perf_counter() - started) * 1000)
            assert result.get("published", 0) >= args.formulas, result   # plus any real formulas that moved
        started = time.perf_counter()
        engine.recompute()
        unchanged = (time.perf_counter() - started) * 1000
    finally:
        clean()
        db.close()
    return {"formulas": args.formulas, "recompute_ms": round(statistics.median(timings), 1),
            "recompute_ms_max": round(max(timings), 1), "unchanged_ms": round(unchanged, 1),
            "load_average": os.getloadavg()[0]}


if __name__ == "__main__":
    main()
