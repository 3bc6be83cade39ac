"""BestChange's published `info.zip`: the offers of every exchanger the monitor lists, as an optional rate source
("position N among the monitor's offers", with a floor and a ceiling; docs/monitors.md, "Competitors' rates").
Pure: the archive's bytes in, Decimals out; fetching it (URL, interval, timeout, maximum age) is the rate engine's.

The archive holds `;`-separated text files in windows-1251, one record a line:
- `bm_cy.dat` currencies: id; sort position; name; code; ... (further columns ignored);
- `bm_exch.dat` exchangers: id; name; ... ;
- `bm_rates.dat` offers: from-currency id; to-currency id; exchanger id; give; receive; reserve (of the
  to-currency); reviews; (unused); minimum; maximum; city id (cash directions; 0 or absent: none). The customer
  gives `give` of the from-currency and receives `receive` of the to-currency (one of them usually 1).
"""
import collections
import csv
import io
import zipfile
from decimal import Decimal, InvalidOperation, localcontext

Currency = collections.namedtuple("Currency", "id name code")
Offer = collections.namedtuple("Offer", "from_id to_id exchanger_id give receive reserve min_amount max_amount "
                                        "city_id")
Snapshot = collections.namedtuple("Snapshot", "currencies exchangers offers")

FILES = ("bm_cy.dat", "bm_exch.dat", "bm_rates.dat")
ENCODING = "windows-1251"


class BestChangeFormatError(ValueError):
    """The archive is not BestChange's info.zip (a file missing, a line that does not parse)."""


def _rows(archive, name):
    try:
        text = archive.read(name).decode(ENCODING)
    except KeyError:
        raise BestChangeFormatError("%s is missing from the archive" % name)
    return [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=";"), 1) if row]


def _decimal(text, name, where):
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise BestChangeFormatError("%s: %s is not a number: %r" % (where, name, text))
    if not value.is_finite() or value < 0:
        raise BestChangeFormatError("%s: %s must be a finite number, not below 0: %r" % (where, name, text))
    return value


def _int(text, name, where):
    try:
        return int(text.strip())
    except ValueError:
        raise BestChangeFormatError("%s: %s is not an id: %r" % (where, name, text))


def read_info_zip(data):
    """The Snapshot of an info.zip archive (bytes): currencies {id: Currency}, exchangers {id: name}, offers."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BestChangeFormatError("not a zip archive: %s" % exc)
    with archive:
        currencies = {}
        for number, row in _rows(archive, "bm_cy.dat"):
            where = "bm_cy.dat line %d" % number
            if len(row) < 3:
                raise BestChangeFormatError("%s: needs id;position;name" % where)
            currency_id = _int(row[0], "id", where)
            currencies[currency_id] = Currency(currency_id, row[2].strip(),
                                               row[3].strip() if len(row) > 3 and row[3].strip() else None)
        exchangers = {}
        for number, row in _rows(archive, "bm_exch.dat"):
            where = "bm_exch.dat line %d" % number
            if len(row) < 2:
                raise BestChangeFormatError("%s: needs id;name" % where)
            exchangers[_int(row[0], "id", where)] = row[1].strip()
        offers = []
        for number, row in _rows(archive, "bm_rates.dat"):
            where = "bm_rates.dat line %d" % number
            if len(row) < 6:
                raise BestChangeFormatError("%s: needs from;to;exchanger;give;receive;reserve" % where)
            give, receive = _decimal(row[3], "give", where), _decimal(row[4], "receive", where)
            if give == 0 or receive == 0:
                raise BestChangeFormatError("%s: give and receive must be above 0" % where)
            offers.append(Offer(
                _int(row[0], "from", where), _int(row[1], "to", where), _int(row[2], "exchanger", where),
                give, receive, _decimal(row[5], "reserve", where),
                _decimal(row[8], "minimum", where) if len(row) > 8 and row[8].strip() else None,
                _decimal(row[9], "maximum", where) if len(row) > 9 and row[9].strip() else None,
                _int(row[10], "city", where) or None if len(row) > 10 and row[10].strip() else None))
    return Snapshot(currencies, exchangers, offers)


def currency_id(snapshot, code_or_name):
    """The id of a currency by its code (bm_cy.dat's 4th column) or, failing that, its exact name; None if absent."""
    for currency in snapshot.currencies.values():
        if currency.code == code_or_name:
            return currency.id
    for currency in snapshot.currencies.values():
        if currency.name == code_or_name:
            return currency.id
    return None


def offers_for(snapshot, from_currency, to_currency, exclude_exchangers=(), city_id=None):
    """The offers of one direction (currency codes or names), our own exchanger(s) left out; cash offers only
    for `city_id` when given, else only offers without a city."""
    from_id, to_id = currency_id(snapshot, from_currency), currency_id(snapshot, to_currency)
    return [o for o in snapshot.offers
            if o.from_id == from_id and o.to_id == to_id and o.exchanger_id not in exclude_exchangers
            and o.city_id == city_id]


def offer_rate(offer):
    """What one unit of the from-currency buys of the to-currency at this offer (exact to 60 digits)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return offer.receive / offer.give


def ranked(offers):
    """Best for the customer first (most received per unit given); equal rates: the larger reserve first, then
    the exchanger id, so the order is the same every time."""
    return sorted(offers, key=lambda o: (-offer_rate(o), -o.reserve, o.exchanger_id))


def position_rate(offers, n, floor=None, ceiling=None):
    """The rate (to-currency per unit of the from-currency) of the N-th best offer (1 = the best), kept between
    `floor` and `ceiling` (either may be None). Fewer than N offers: the last one (that is where the N-th place
    begins). No offers at all: None, so the engine's guard treats the source as having no fresh value rather
    than inventing a rate."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError("the position must be a whole number from 1")
    if floor is not None and ceiling is not None and floor > ceiling:
        raise ValueError("the floor must not be above the ceiling")
    if not offers:
        return None
    order = ranked(offers)
    rate = offer_rate(order[min(n, len(order)) - 1])
    if floor is not None and rate < floor:
        rate = floor
    if ceiling is not None and rate > ceiling:
        rate = ceiling
    return rate
