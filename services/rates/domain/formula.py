"""The formula language of a direction's rate (docs/rates.md, "Formulas"): parsed by a grammar (lark, LALR), never
by eval, and evaluated over source values in exact Decimal.

    expression := numbers, source values `<source>.<symbol>` (`cbr.USD`, `binance.BTCUSDT.bid`),
                  + - * / with the usual precedence, unary minus, parentheses, and the functions
    min(a, b, ...)  max(a, b, ...)  avg(a, b, ...)  median(a, b, ...)
    first(a, b, ...)       the first argument whose values are all fresh (a fallback chain)
    limit(x, lo, hi)       x clamped to [lo, hi]
    markup(x, p)           x raised by p percent;  discount(x, p): x lowered by p percent

The arguments of min/max/avg/median/first are alternatives for one quantity: the guards compare them with their
median (guards.py).
"""
from decimal import Decimal, localcontext

from lark import Lark, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput

MAX_LENGTH = 1000
PRECISION = 50          # significant digits while evaluating: far beyond any rate, so rounding happens once, at the end

GRAMMAR = r"""
?start: sum
?sum: product
    | sum "+" product   -> add
    | sum "-" product   -> sub
?product: unary
    | product "*" unary -> mul
    | product "/" unary -> div
?unary: atom
    | "-" unary         -> neg
?atom: NUMBER           -> number
     | NAME "(" [sum ("," sum)*] ")" -> call
     | NAME             -> var
     | "(" sum ")"
NAME: /[a-z][a-z0-9_]*(\.[A-Za-z0-9_]+)*/
NUMBER: /[0-9]+(\.[0-9]+)?/
%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)

# name -> (least, most) arguments
FUNCTIONS = {"min": (1, 50), "max": (1, 50), "avg": (1, 50), "median": (1, 50), "first": (1, 20),
             "limit": (3, 3), "markup": (2, 2), "discount": (2, 2)}
ALTERNATIVES = ("min", "max", "avg", "median", "first")


class FormulaError(ValueError):
    """The formula cannot be saved (syntax, unknown name, division by zero...) or cannot be computed now."""


class Unavailable(FormulaError):
    """A source value the formula needs is missing or stale (first() tries the next argument)."""

    def __init__(self, names):
        self.names = list(names)
        super().__init__("no fresh value of %s" % ", ".join(self.names))


@v_args(inline=True)
class _ToTree(Transformer):
    def number(self, token):
        return ("num", Decimal(str(token)))

    def var(self, token):
        name = str(token)
        if "." not in name:
            raise FormulaError("%r is not a source value (write <source>.<symbol>) nor a function call" % name)
        return ("var", name)

    def call(self, token, *args):
        name = str(token)
        if name not in FUNCTIONS:
            raise FormulaError("unknown function %s (known: %s)" % (name, ", ".join(sorted(FUNCTIONS))))
        least, most = FUNCTIONS[name]
        if not least <= len(args) <= most:
            raise FormulaError("%s takes %s arguments, got %d" % (
                name, least if least == most else "%d to %d" % (least, most), len(args)))
        return ("call", name, list(args))

    def neg(self, a):
        return ("neg", a)

    def add(self, a, b):
        return ("add", a, b)

    def sub(self, a, b):
        return ("sub", a, b)

    def mul(self, a, b):
        return ("mul", a, b)

    def div(self, a, b):
        return ("div", a, b)


def parse(expression):
    """The formula's tree; FormulaError naming what is wrong and where."""
    if not isinstance(expression, str) or not expression.strip():
        raise FormulaError("the formula is empty")
    if len(expression) > MAX_LENGTH:
        raise FormulaError("the formula is longer than %d characters" % MAX_LENGTH)
    try:
        tree = _PARSER.parse(expression)
        return _ToTree().transform(tree)
    except UnexpectedInput as exc:
        raise FormulaError("syntax error at column %s: %s" % (
            getattr(exc, "column", "?"), exc.get_context(expression).strip().replace("\n", " ")))
    except LarkError as exc:
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, FormulaError):
            raise inner
        raise FormulaError("cannot read the formula: %s" % exc)
    except RecursionError:
        raise FormulaError("the formula is nested too deeply")


def names(tree):
    """Every source value the formula refers to, in order of appearance."""
    out = []

    def walk(node):
        if node[0] == "var":
            if node[1] not in out:
                out.append(node[1])
        elif node[0] == "call":
            for arg in node[2]:
                walk(arg)
        elif node[0] != "num":
            for child in node[1:]:
                walk(child)
    walk(tree)
    return out


def _constant(node):
    """The value of a subtree without source values, or None."""
    if names(node):
        return None
    try:
        return evaluate(node, {}).value
    except FormulaError:
        return None


def check(tree, sources):
    """Rules of a formula to save, beyond its syntax: every source value names a configured source; no division
    by a constant zero; constant percentages and bounds make sense. FormulaError for the first fault."""
    for name in names(tree):
        source = name.split(".", 1)[0]
        if source not in sources:
            raise FormulaError("unknown source %r in %s (configured: %s)" % (source, name, ", ".join(sorted(sources))))

    def walk(node):
        kind = node[0]
        if kind == "div":
            divisor = _constant(node[2])
            if divisor is not None and divisor == 0:
                raise FormulaError("division by zero")
        if kind == "call":
            name, args = node[1], node[2]
            if name in ("markup", "discount"):
                percent = _constant(args[1])
                if percent is None:
                    raise FormulaError("the percent of %s must be a number" % name)
                if not 0 <= percent < 100:
                    raise FormulaError("the percent of %s must be at least 0 and below 100" % name)
            if name == "limit":
                lo, hi = _constant(args[1]), _constant(args[2])
                if lo is not None and hi is not None and lo > hi:
                    raise FormulaError("limit: the low bound is above the high bound")
            for arg in args:
                walk(arg)
        elif kind not in ("num", "var"):
            for child in node[1:]:
                walk(child)
    walk(tree)


class Result:
    """A computed value, the source values used (name -> Decimal), and the groups of alternatives the guards
    compare (each a list of (text, value))."""

    def __init__(self, value, used, groups):
        self.value = value
        self.used = used
        self.groups = groups


def evaluate(tree, values):
    """Evaluate over `values` {name: Decimal} holding only FRESH values; Unavailable when a needed one is not
    there, FormulaError on division by zero."""
    used, groups = {}, []

    def ev(node):
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "var":
            value = values.get(node[1])
            if value is None:
                raise Unavailable([node[1]])
            used[node[1]] = value
            return value
        if kind == "neg":
            return -ev(node[1])
        if kind in ("add", "sub", "mul", "div"):
            a, b = ev(node[1]), ev(node[2])
            if kind == "add":
                return a + b
            if kind == "sub":
                return a - b
            if kind == "mul":
                return a * b
            if b == 0:
                raise FormulaError("division by zero")
            return a / b
        name, args = node[1], node[2]
        if name == "first":
            missing = []
            for arg in args:
                try:
                    value = ev(arg)
                except Unavailable as exc:
                    missing.extend(n for n in exc.names if n not in missing)
                    continue
                return value
            raise Unavailable(missing)
        evaluated = [ev(arg) for arg in args]
        if name in ALTERNATIVES and len(args) > 1:
            groups.append([(_text(arg), value) for arg, value in zip(args, evaluated)])
        if name == "min":
            return min(evaluated)
        if name == "max":
            return max(evaluated)
        if name == "avg":
            return sum(evaluated) / len(evaluated)
        if name == "median":
            return median(evaluated)
        if name == "limit":
            x, lo, hi = evaluated
            return min(max(x, lo), hi)
        if name == "markup":
            return evaluated[0] * (100 + evaluated[1]) / 100
        return evaluated[0] * (100 - evaluated[1]) / 100   # discount

    with localcontext() as ctx:
        ctx.prec = PRECISION
        value = ev(tree)
        return Result(+value, used, groups)


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _text(node):
    kind = node[0]
    if kind == "num":
        return str(node[1])
    if kind == "var":
        return node[1]
    if kind == "neg":
        return "-" + _text(node[1])
    if kind == "call":
        return "%s(%s)" % (node[1], ", ".join(_text(a) for a in node[2]))
    op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
    return "(%s %s %s)" % (_text(node[1]), op, _text(node[2]))
