"""nameko dependencies of the rates service, one per task, on the container's one connection pool
(libs/dependencies.py):

- `engine`: each tick polls the sources that are due (domain/sources.py parsers, fetcher.py) and recomputes every
  formula, publishing what changed (rates_computed for orders, directions_frozen for the admin's letter);
- `panel`: what operators see and do: sources with their values, ages and errors, the manual source, formulas with
  a preview, their history and the history of rates.
"""
import logging
import threading
from decimal import Decimal

from libs import errors, money
from libs.contracts import events
from libs.dependencies import ServiceDependency
from services.rates import fetcher, metrics, schemas
from services.rates.domain import formula as language, guards, sources as source_rules
from services.rates.store import RatesStore

log = logging.getLogger(__name__)


def configured_sources(cfg):
    """The SOURCES of config.yml as rows: {name, kind, url, poll_seconds, timeout_seconds, max_age_seconds}."""
    out = []
    for name, spec in sorted((cfg.get("SOURCES") or {}).items()):
        spec = spec or {}
        kind = spec.get("kind")
        if kind not in source_rules.KINDS:
            raise ValueError("rates source %s: kind must be one of %s" % (name, ", ".join(source_rules.KINDS)))
        if kind != "manual" and not spec.get("url"):
            raise ValueError("rates source %s: url is required" % name)
        out.append({"name": name, "kind": kind, "url": spec.get("url") or None,
                    "poll_seconds": Decimal(str(spec.get("poll_seconds") or 60)),
                    "timeout_seconds": Decimal(str(spec.get("timeout_seconds") or 5)),
                    "max_age_seconds": Decimal(str(spec.get("max_age_seconds") or 600))})
    return out


class Engine:
    """Polling and recomputing. Formulas are parsed once per version (the cache), so a recompute of all of them
    is arithmetic over the values read in one query."""

    def __init__(self, db, sources):
        self.store = RatesStore(db)
        self.sources = sources
        self.fetched = [s["name"] for s in sources if s["kind"] != "manual"]
        self._trees = {}
        self._lock = threading.Lock()

    def start(self):
        self.store.sync_sources(self.sources)

    def tick(self):
        due = self.store.due_sources(self.fetched) if self.fetched else []
        if due:
            fetcher.fetch_all(due, self._fetched, self._failed, events.utcnow)
        return self.recompute()

    def _fetched(self, source, values, asked_at):
        self.store.record_fetch(source["name"], values, asked_at)
        metrics.SOURCE_ERRORS.labels(source["name"]).set(0)

    def _failed(self, source, message, asked_at):
        log.warning("rates: source %s failed: %s", source["name"], message)
        self.store.record_error(source["name"], message, asked_at)
        metrics.SOURCE_ERRORS.labels(source["name"]).inc()

    def tree(self, row):
        key = (row["direction_id"], row["version"], row["expression"])
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = language.parse(row["expression"])
        return tree

    def fresh_values(self):
        """({name: value} of fresh values, {name: why stale} of the others), by this process's clock."""
        now = events.utcnow()
        fresh, stale = {}, {}
        counts = dict.fromkeys((s["name"] for s in self.sources), 0)
        for v in self.store.values():
            name = "%s.%s" % (v["source"], v["symbol"])
            if source_rules.is_fresh(v["source_time"], v["fetched_at"], float(v["max_age_seconds"]), now):
                fresh[name] = v["value"]
                counts[v["source"]] = counts.get(v["source"], 0) + 1
            else:
                stale[name] = "older than its source's max age of %s s" % money.to_str(v["max_age_seconds"])
        for source, n in counts.items():
            metrics.SOURCE_FRESH.labels(source).set(n)
        return fresh, stale

    def recompute(self):
        """Judge every formula; publish the changed verdicts in one transaction. Returns counts."""
        with self._lock, metrics.RECOMPUTE_SECONDS.time():
            fresh, stale = self.fresh_values()
            updates, frozen_now = [], []
            frozen = 0
            for row in self.store.engine_formulas():
                try:
                    tree = self.tree(row)
                except language.FormulaError as exc:   # saved by an older grammar: freeze rather than guess
                    verdict = guards.Verdict(reason="the formula cannot be read: %s" % exc, code="failed")
                else:
                    verdict = guards.judge(tree, fresh, row["accepted_value"], row["quote"], row["precision_in"],
                                           row["precision_out"], row["max_jump_percent"], row["max_spread_percent"],
                                           stale)
                frozen += verdict.frozen
                update = self._update(row, verdict)
                if update is None:
                    continue
                updates.append(update)
                if verdict.frozen and update["publish"] and not row["published_frozen"]:
                    frozen_now.append({"direction_id": row["direction_id"], "code": verdict.code,
                                       "pair": "%s → %s" % (row["currency_in"], row["currency_out"]),
                                       "reason": verdict.reason})
            metrics.FROZEN.set(frozen)
            published = sum(1 for u in updates if u["publish"])
            if updates and not self.store.publish(updates, frozen_now):
                return {"skipped": "another instance is recomputing"}
            return {"published": published, "frozen_now": len(frozen_now), "recorded": len(updates)}

    @staticmethod
    def _update(row, verdict):
        accepted = row["accepted_value"] if verdict.frozen else verdict.value
        if row["published_frozen"] is None:
            publish = True
        elif verdict.frozen:
            publish = not row["published_frozen"] or verdict.code != row["frozen_code"]
        else:
            publish = (row["published_frozen"] or verdict.rate_in != row["published_rate_in"]
                       or verdict.rate_out != row["published_rate_out"])
        if not publish and verdict.value == row["value"] and accepted == row["accepted_value"]:
            return None
        return {"direction_id": row["direction_id"], "version": row["version"], "value": verdict.value,
                "rate_in": verdict.rate_in, "rate_out": verdict.rate_out, "frozen": verdict.frozen,
                "code": verdict.code, "reason": verdict.reason, "accepted_value": accepted, "publish": publish}


class Panel:
    """What the operator panel reads and changes (each change audited in rates.audit_log)."""

    def __init__(self, db, engine, default_jump, default_spread):
        self.store = RatesStore(db)
        self.engine = engine
        self.default_jump = default_jump
        self.default_spread = default_spread

    def list_sources(self):
        now = events.utcnow()
        values = {}
        for v in self.store.values():
            values.setdefault(v["source"], []).append(v)
        return [schemas.source_to_wire(row, values.get(row["name"], []), now) for row in self.store.sources()]

    def set_manual_value(self, source, symbol, value, actor):
        actor = errors.staff_actor(actor)
        kinds = {s["name"]: s["kind"] for s in self.engine.sources}
        if kinds.get(source) != "manual":
            raise errors.NotFound("no manual source %r" % str(source)[:40])
        number, fields = source_rules.manual_value(symbol, value)
        if fields:
            raise errors.ValidationFailed("invalid manual value", fields)
        self.store.set_manual_value(source, symbol, number, actor)
        self.engine.recompute()
        return {"source": source, "symbol": symbol, "value": money.to_str(number)}

    def list_formulas(self):
        return [schemas.formula_to_wire(r) for r in self.store.formulas()]

    def get_formula(self, direction_id):
        row = self.store.formula(int(direction_id))
        return {"formula": schemas.formula_to_wire(row) if row else None,
                "history": [schemas.formula_history_to_wire(h) for h in self.store.formula_history(direction_id)],
                "rates": [schemas.rate_history_to_wire(h) for h in self.store.rate_history(direction_id)]}

    def _checked(self, direction, data):
        direction = _direction(direction)
        values, fields = schemas.load_formula_input(data, self.default_jump, self.default_spread)
        tree = None
        if "expression" not in fields:
            try:
                tree = language.parse(values["expression"])
                language.check(tree, {s["name"] for s in self.engine.sources})
            except language.FormulaError as exc:
                fields["expression"] = [str(exc)]
        if fields:
            raise errors.ValidationFailed("invalid formula", fields)
        current = self.store.formula(direction["id"])
        fresh, stale = self.engine.fresh_values()
        verdict = guards.judge(tree, fresh, current["accepted_value"] if current else None, values["quote"],
                               direction["precision_in"], direction["precision_out"], values["max_jump_percent"],
                               values["max_spread_percent"], stale)
        if verdict.code == "failed" and "division by zero" in (verdict.reason or ""):
            # a divisor that is zero with today's values is refused as much as a literal one
            raise errors.ValidationFailed("invalid formula", {"expression": [verdict.reason]})
        unknown = [n for n in language.names(tree) if n not in fresh and n not in stale
                   and _kind(self.engine.sources, n) != "manual"]
        preview = {"value": money.to_str(verdict.value) if verdict.value is not None else None,
                   "rate_in": money.to_str(verdict.rate_in) if verdict.rate_in is not None else None,
                   "rate_out": money.to_str(verdict.rate_out) if verdict.rate_out is not None else None,
                   "frozen": verdict.frozen, "reason": verdict.reason, "code": verdict.code,
                   "names": language.names(tree), "unknown_values": unknown}
        return direction, values, preview

    def preview(self, direction, data):
        return self._checked(direction, data)[2]

    def save_formula(self, direction, data, actor):
        actor = errors.staff_actor(actor)
        direction, values, preview = self._checked(direction, data)
        expected = values.pop("expected_version")
        row = self.store.save_formula(direction, values, actor, expected)
        if row is None:
            raise errors.Conflict("the formula was changed meanwhile: reload it", {"expected_version": ["stale"]})
        self.engine.recompute()
        return {"formula": schemas.formula_to_wire(self.store.formula(direction["id"])), "preview": preview}

    def delete_formula(self, direction_id, actor):
        actor = errors.staff_actor(actor)
        if not self.store.delete_formula(int(direction_id), actor):
            raise errors.NotFound("this direction has no formula")
        return {"direction_id": int(direction_id), "deleted": True}

    def accept(self, direction_id, actor):
        actor = errors.staff_actor(actor)
        if self.store.accept(int(direction_id), actor) is None:
            raise errors.NotFound("this direction has no formula")
        self.engine.recompute()
        return schemas.formula_to_wire(self.store.formula(int(direction_id)))


def _kind(sources, name):
    source = name.split(".", 1)[0]
    return next((s["kind"] for s in sources if s["name"] == source), None)


def _direction(direction):
    """The direction as the gateway read it from orders: id, currencies and their precision."""
    try:
        out = {"id": int(direction["id"]), "currency_in": str(direction["currency_in"]),
               "currency_out": str(direction["currency_out"]), "precision_in": int(direction["precision_in"]),
               "precision_out": int(direction["precision_out"])}
    except (KeyError, TypeError, ValueError):
        raise errors.ValidationFailed("invalid direction", {"direction": ["id, currencies and precisions"]})
    return out


class _Shared:
    """One Engine per container, so the panel's recompute after a save shares the formula cache and lock."""
    engines = {}


def _engine(db, cfg):
    key = id(db)
    if key not in _Shared.engines:
        _Shared.engines[key] = Engine(db, configured_sources(cfg))
    return _Shared.engines[key]


def _percent(cfg, key, default):
    value = cfg.get(key)
    return Decimal(str(value)) if value not in (None, "") else Decimal(default)


class EngineProvider(ServiceDependency):
    def build(self, db, cfg):
        return _engine(db, cfg)

    def start_api(self, engine):
        engine.start()

    def stop_api(self, engine):
        _Shared.engines.pop(id(engine.store.db), None)


class PanelProvider(ServiceDependency):
    def build(self, db, cfg):
        return Panel(db, _engine(db, cfg), _percent(cfg, "MAX_JUMP_PERCENT", "10"),
                     _percent(cfg, "MAX_SPREAD_PERCENT", "5"))
