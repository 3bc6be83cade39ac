"""Fetching a source over HTTP: one GET with the source's timeout, the body handed to its parser
(domain/sources.py). Sources of one tick are fetched side by side (green threads), so a slow one delays none of
the others."""
import eventlet
import requests

from services.rates.domain import sources as rules

MAX_BYTES = 5 * 1024 * 1024   # the Bank of Russia file is ~20 kB, Binance's full bookTicker ~600 kB


class FetchError(Exception):
    pass


def fetch(source, session=None):
    """(symbol, value, source_time) of one source now, or FetchError saying why not."""
    http = session or requests
    try:
        response = http.get(source["url"], timeout=float(source["timeout_seconds"]),
                            headers={"User-Agent": "exchanger-rates/1"}, stream=True)
    except requests.RequestException as exc:
        raise FetchError("%s: %s" % (type(exc).__name__, str(exc)[:200]))
    try:
        if response.status_code != 200:
            raise FetchError("HTTP %d" % response.status_code)
        body = response.raw.read(MAX_BYTES + 1, decode_content=True)
        if len(body) > MAX_BYTES:
            raise FetchError("answer larger than %d bytes" % MAX_BYTES)
    except requests.RequestException as exc:
        raise FetchError("%s: %s" % (type(exc).__name__, str(exc)[:200]))
    finally:
        response.close()
    try:
        return rules.parse(source["kind"], body)
    except rules.SourceError as exc:
        raise FetchError("unreadable answer: %s" % exc)


def fetch_all(sources, on_ok, on_error, now, concurrency=8):
    """Fetch each source; on_ok(source, values, asked_at) or on_error(source, message, asked_at) for each, asked_at
    being when the request started (`now()`): of two polls that overlap, the later request's answer is the newer."""
    def one(source):
        asked_at = now()
        try:
            values = fetch(source)
        except FetchError as exc:
            on_error(source, str(exc), asked_at)
            return
        on_ok(source, values, asked_at)
    pool = eventlet.GreenPool(concurrency)
    for source in sources:
        pool.spawn_n(one, source)
    pool.waitall()
