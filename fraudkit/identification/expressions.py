"""A small, safe expression language for rule conditions, evaluated over whole columns.

Rule conditions are user text. They are never handed to Python's ``eval``,
``exec`` or ``compile``: :func:`parse` tokenizes them and builds an AST with a
recursive-descent parser that knows only this grammar (lowest precedence
first)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | predicate
    predicate  := sum [ CMP sum
                      | ["not"] "in" "(" literal ("," literal)* ")"
                      | ["not"] "in" LISTFN "(" STRING ")"
                      | ["not"] "between" sum "and" sum
                      | "is" ["not"] "null" ]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | STRING | "true" | "false" | "null" | NAME
                | FUNC "(" expr ("," expr)* ")" | "(" expr ")"

    CMP    := "==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    FUNC   := abs | log1p | min | max | coalesce
    LISTFN := list | blacklist | graylist

Anything else — attribute access, subscripts, dunder names, ``lambda``,
``if``/``else``, unknown functions — is rejected with its position.

:func:`compile_expression` turns the AST into a function of a pandas
DataFrame that runs numpy operations column by column. Missing values follow
SQL: arithmetic on null is null, a comparison with null is null, ``and``,
``or`` and ``not`` use three-valued logic, and a condition that ends null
is False (the rule does not fire).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from fraudkit.errors import RuleError

__all__ = [
    "Node",
    "Literal",
    "Column",
    "Unary",
    "Binary",
    "Compare",
    "BoolOp",
    "Not",
    "InValues",
    "InList",
    "Between",
    "IsNull",
    "Call",
    "FUNCTIONS",
    "LIST_FUNCTIONS",
    "parse",
    "MAX_CONDITION_CHARS",
    "MAX_NESTING",
    "MAX_LITERAL_CHARS",
    "columns_of",
    "lists_of",
    "infer_kind",
    "column_kinds",
    "compile_expression",
    "evaluate",
]

MAX_CONDITION_CHARS = 4000
"""Longest condition accepted; a rule is a short expression, not a program."""

MAX_NESTING = 50
"""Deepest nesting of parentheses and prefix operators (``not``, ``-``) accepted."""

MAX_LITERAL_CHARS = 200
"""Longest number or string literal accepted."""

FUNCTIONS = ("abs", "log1p", "min", "max", "coalesce")
"""Functions a condition may call."""

LIST_FUNCTIONS = ("list", "blacklist", "graylist")
"""List lookups allowed on the right of ``in``."""

_KEYWORDS = {"and", "or", "not", "in", "between", "is", "null", "true", "false"}
_FORBIDDEN_WORDS = {"lambda", "if", "else", "import", "for", "while", "def", "class", "return", "yield",
                    "exec", "eval", "compile", "open", "getattr", "setattr", "globals", "locals"}
_CMP = {"==": "==", "=": "==", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


# --- AST -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base of every AST node; ``pos`` is the character offset in the source."""

    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True)
class Column(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str
    operands: tuple


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class InValues(Node):
    operand: Node
    values: tuple
    negate: bool = False


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    kind: str
    name: str
    negate: bool = False


@dataclass(frozen=True)
class Between(Node):
    operand: Node
    low: Node
    high: Node
    negate: bool = False


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negate: bool = False


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple


# --- parsing -------------------------------------------------------------------------------------


def parse(text: str, *, rule_id: str | None = None) -> Node:
    """Parse a condition into an AST; raise :class:`~fraudkit.errors.RuleError` on anything unsafe.

    Parameters
    ----------
    text : str
        The condition, e.g. ``"is_emulator and n_coupon_claims >= 1"``.
    rule_id : str, optional
        Named in error messages.

    Returns
    -------
    Node
        The root of the AST.

    Examples
    --------
    >>> parse("a + 1 > 2 and b in ('x', 'y')").op
    'and'
    >>> parse("__import__('os')")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fraudkit.errors.RuleError: rule ?: unsafe name '__import__' at position 0 ...
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"rule {rule_id or '?'}: the condition is empty; write a boolean expression")
    if len(text) > MAX_CONDITION_CHARS:
        raise RuleError(f"rule {rule_id or '?'}: the condition has {len(text):,} characters (at most "
                        f"{MAX_CONDITION_CHARS:,}); split it into several rules")
    p = _Parser(text, rule_id)
    _check_nesting(p.toks, text, rule_id)
    node = p.parse_expr()
    if p.peek()[0] != "end":
        p.fail(f"unexpected {p.peek()[1]!r}", p.peek()[2])
    return node


def columns_of(node: Node) -> set[str]:
    """Column names a parsed condition reads.

    Examples
    --------
    >>> sorted(columns_of(parse("max(a, b) > 1 and c is null")))
    ['a', 'b', 'c']
    """
    return {n.name for n in _walk(node) if isinstance(n, Column)}


def lists_of(node: Node) -> set[tuple[str, str]]:
    """``(kind, name)`` of every list a condition looks up (kind: list, blacklist or graylist)."""
    return {(n.kind, n.name) for n in _walk(node) if isinstance(n, InList)}


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      |(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
      |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op><=|>=|==|!=|<>|[<>=+\-*/(),])
    """,
    re.VERBOSE,
)


def _tokenize(text: str, rule_id):
    out, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            what = {"." : "attribute access is not allowed", "[": "subscripts are not allowed",
                    "]": "subscripts are not allowed", ":": "':' is not allowed (no slices, lambdas or dicts)",
                    "'": "unterminated string", '"': "unterminated string",
                    "@": "decorators are not allowed", ";": "only one expression is allowed"}
            raise RuleError(f"rule {rule_id or '?'}: {what.get(ch, f'unexpected character {ch!r}')} "
                            f"at position {i} in {_show(text)}")
        kind = m.lastgroup
        tok = m.group()
        if kind in ("num", "str") and len(tok) > MAX_LITERAL_CHARS:
            raise RuleError(f"rule {rule_id or '?'}: a {'number' if kind == 'num' else 'string'} of {len(tok):,} "
                            f"characters at position {i} (at most {MAX_LITERAL_CHARS}) in {_show(text)}")
        if kind == "num":
            out.append(("num", float(tok) if any(c in tok for c in ".eE") else int(tok), i))
        elif kind == "str":
            body = tok[1:-1]
            out.append(("str", re.sub(r"\\(.)", r"\1", body), i))
        elif kind == "name":
            low = tok.lower()
            if "__" in tok:
                raise RuleError(f"rule {rule_id or '?'}: unsafe name {tok!r} at position {i} in {_show(text)}; "
                                "dunder names are never allowed")
            if low in _FORBIDDEN_WORDS:
                raise RuleError(f"rule {rule_id or '?'}: unsafe construct {tok!r} at position {i} in {_show(text)}; "
                                "conditions are expressions over columns, not Python")
            out.append(("kw", low, i) if low in _KEYWORDS else ("name", tok, i))
        elif kind == "op":
            out.append(("op", tok, i))
        i = m.end()
    out.append(("end", "end of condition", len(text)))
    return out


class _Parser:
    def __init__(self, text, rule_id):
        self.text, self.rule_id = text, rule_id
        self.toks = _tokenize(text, rule_id)
        self.i = 0

    def fail(self, msg, pos):
        raise RuleError(f"rule {self.rule_id or '?'}: {msg} at position {pos} in {_show(self.text)}")

    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, kind, value=None):
        t = self.peek()
        if t[0] == kind and (value is None or t[1] == value):
            self.i += 1
            return t
        return None

    def expect(self, kind, value=None, what=None):
        t = self.accept(kind, value)
        if t is None:
            got = self.peek()
            self.fail(f"expected {what or value or kind}, got {got[1]!r}", got[2])
        return t

    def parse_expr(self):
        return self.parse_or()

    def parse_or(self):
        first = self.parse_and()
        ops = [first]
        while self.accept("kw", "or"):
            ops.append(self.parse_and())
        return ops[0] if len(ops) == 1 else BoolOp(first.pos, "or", tuple(ops))

    def parse_and(self):
        first = self.parse_not()
        ops = [first]
        while self.accept("kw", "and"):
            ops.append(self.parse_not())
        return ops[0] if len(ops) == 1 else BoolOp(first.pos, "and", tuple(ops))

    def parse_not(self):
        t = self.accept("kw", "not")
        if t:
            return Not(t[2], self.parse_not())
        return self.parse_predicate()

    def parse_predicate(self):
        left = self.parse_sum()
        t = self.peek()
        if t[0] == "op" and t[1] in _CMP:
            self.next()
            return Compare(t[2], _CMP[t[1]], left, self.parse_sum())
        negate = False
        if t[0] == "kw" and t[1] == "not" and self.peek(1)[0] == "kw" and self.peek(1)[1] in ("in", "between"):
            self.next()
            negate = True
            t = self.peek()
        if self.accept("kw", "in"):
            return self._parse_in(left, negate, t[2])
        if self.accept("kw", "between"):
            low = self.parse_sum()
            self.expect("kw", "and", "'and' in 'between ... and ...'")
            return Between(t[2], left, low, self.parse_sum(), negate)
        if self.accept("kw", "is"):
            neg = bool(self.accept("kw", "not"))
            self.expect("kw", "null", "'null' after 'is'")
            return IsNull(t[2], left, neg)
        return left

    def _parse_in(self, left, negate, pos):
        t = self.peek()
        if t[0] == "name":
            if t[1] not in LIST_FUNCTIONS:
                self.fail(f"'in' takes a parenthesised list of values or one of {', '.join(LIST_FUNCTIONS)}"
                          f"('name'), got {t[1]!r}", t[2])
            self.next()
            self.expect("op", "(")
            name = self.expect("str", what="a quoted list name")
            self.expect("op", ")")
            return InList(pos, left, t[1], name[1], negate)
        self.expect("op", "(", "'(' after 'in'")
        values = [self._literal()]
        while self.accept("op", ","):
            values.append(self._literal())
        self.expect("op", ")")
        return InValues(pos, left, tuple(values), negate)

    def _literal(self):
        t = self.next()
        if t[0] in ("num", "str"):
            return t[1]
        if t[0] == "op" and t[1] == "-" and self.peek()[0] == "num":
            return -self.next()[1]
        if t[0] == "kw" and t[1] in ("true", "false"):
            return t[1] == "true"
        self.fail(f"'in (...)' takes literal values only, got {t[1]!r}", t[2])

    def parse_sum(self):
        node = self.parse_product()
        while True:
            t = self.peek()
            if t[0] == "op" and t[1] in "+-" and len(t[1]) == 1:
                self.next()
                node = Binary(t[2], t[1], node, self.parse_product())
            else:
                return node

    def parse_product(self):
        node = self.parse_unary()
        while True:
            t = self.peek()
            if t[0] == "op" and t[1] in ("*", "/"):
                self.next()
                node = Binary(t[2], t[1], node, self.parse_unary())
            else:
                return node

    def parse_unary(self):
        t = self.accept("op", "-")
        if t:
            return Unary(t[2], "-", self.parse_unary())
        return self.parse_atom()

    def parse_atom(self):
        t = self.next()
        kind, val, pos = t
        if kind in ("num", "str"):
            return Literal(pos, val)
        if kind == "kw" and val in ("true", "false"):
            return Literal(pos, val == "true")
        if kind == "kw" and val == "null":
            return Literal(pos, None)
        if kind == "op" and val == "(":
            node = self.parse_expr()
            self.expect("op", ")")
            return node
        if kind == "name":
            if self.peek()[0] == "op" and self.peek()[1] == "(":
                if val in LIST_FUNCTIONS:
                    self.fail(f"{val}('...') can only follow 'in'", pos)
                if val not in FUNCTIONS:
                    self.fail(f"unknown function {val!r} (allowed: {', '.join(FUNCTIONS)})", pos)
                self.next()
                args = [self.parse_expr()]
                while self.accept("op", ","):
                    args.append(self.parse_expr())
                self.expect("op", ")")
                _check_arity(self, val, len(args), pos)
                return Call(pos, val, tuple(args))
            return Column(pos, val)
        self.fail(f"unexpected {val!r}", pos)


def _check_arity(parser, name, n, pos):
    if name in ("abs", "log1p") and n != 1:
        parser.fail(f"{name}() takes one argument, got {n}", pos)
    if name in ("min", "max", "coalesce") and n < 2:
        parser.fail(f"{name}() takes at least two arguments, got {n}", pos)


def _walk(node):
    yield node
    for v in node.__dict__.values():
        if isinstance(v, Node):
            yield from _walk(v)
        elif isinstance(v, tuple):
            for x in v:
                if isinstance(x, Node):
                    yield from _walk(x)


# --- types ---------------------------------------------------------------------------------------


def infer_kind(dtype) -> str:
    """Map a pandas/numpy dtype (or a contract logical type) to ``num``, ``str``, ``bool`` or ``time``."""
    if isinstance(dtype, str) and dtype in ("int", "float", "id_num"):
        return "num"
    if isinstance(dtype, str) and dtype in ("string", "id"):
        return "str"
    if isinstance(dtype, str) and dtype in ("bool", "timestamp", "num", "str", "time"):
        return {"bool": "bool", "timestamp": "time"}.get(dtype, dtype)
    dt = pd.api.types.pandas_dtype(dtype) if not isinstance(dtype, pd.api.extensions.ExtensionDtype) else dtype
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_numeric_dtype(dt):
        return "num"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "time"
    return "str"


def column_kinds(columns) -> dict[str, str | None]:
    """Normalise ``columns`` (names, a name->dtype mapping or a DataFrame) to name -> kind or None."""
    if columns is None:
        return {}
    if isinstance(columns, pd.DataFrame):
        return {c: infer_kind(t) for c, t in columns.dtypes.items()}
    if isinstance(columns, dict):
        return {c: (None if t is None else infer_kind(t)) for c, t in columns.items()}
    return {c: None for c in columns}


def typecheck(node: Node, kinds: dict, *, rule_id=None, text="") -> str | None:
    """Return the kind of ``node`` (``num``, ``str``, ``bool``, ``time``, ``null`` or None when unknown).

    Raises :class:`RuleError` on arithmetic over strings, comparisons of
    strings with numbers and unknown columns (when ``kinds`` is non-empty).
    """

    def fail(msg, pos):
        raise RuleError(f"rule {rule_id or '?'}: {msg} at position {pos} in {_show(text)}")

    def lit_kind(v):
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "bool"
        return "num" if isinstance(v, (int, float)) else "str"

    def compatible(a, b, pos, what):
        if a in (None, "null") or b in (None, "null") or a == b:
            return
        if {a, b} == {"time", "str"}:
            return
        if {a, b} == {"num", "bool"}:
            return
        fail(f"cannot {what} a {_KIND_NAMES[a]} with a {_KIND_NAMES[b]}", pos)

    def rec(n):
        if isinstance(n, Literal):
            return lit_kind(n.value)
        if isinstance(n, Column):
            if kinds and n.name not in kinds:
                near = ", ".join(sorted(kinds)[:12])
                fail(f"unknown column {n.name!r} (columns include: {near})", n.pos)
            return kinds.get(n.name)
        if isinstance(n, Unary):
            k = rec(n.operand)
            if k in ("str", "time", "bool"):
                fail(f"cannot negate a {_KIND_NAMES[k]}", n.pos)
            return "num"
        if isinstance(n, Binary):
            a, b = rec(n.left), rec(n.right)
            for k in (a, b):
                if k in ("str", "time", "bool"):
                    fail(f"arithmetic '{n.op}' on a {_KIND_NAMES[k]}", n.pos)
            return "num"
        if isinstance(n, Compare):
            compatible(rec(n.left), rec(n.right), n.pos, f"compare ({n.op})")
            return "bool"
        if isinstance(n, BoolOp):
            for o in n.operands:
                k = rec(o)
                if k in ("str", "time"):
                    fail(f"'{n.op}' needs true/false operands, got a {_KIND_NAMES[k]}", o.pos)
            return "bool"
        if isinstance(n, Not):
            k = rec(n.operand)
            if k in ("str", "time"):
                fail(f"'not' needs a true/false operand, got a {_KIND_NAMES[k]}", n.pos)
            return "bool"
        if isinstance(n, InValues):
            k = rec(n.operand)
            for v in n.values:
                compatible(k, lit_kind(v), n.pos, "test membership of")
            return "bool"
        if isinstance(n, InList):
            rec(n.operand)
            return "bool"
        if isinstance(n, Between):
            k = rec(n.operand)
            compatible(k, rec(n.low), n.pos, "compare (between)")
            compatible(k, rec(n.high), n.pos, "compare (between)")
            return "bool"
        if isinstance(n, IsNull):
            rec(n.operand)
            return "bool"
        if isinstance(n, Call):
            ks = [rec(a) for a in n.args]
            if n.name in ("abs", "log1p", "min", "max"):
                for k, a in zip(ks, n.args):
                    if k in ("str", "bool") or (k == "time" and n.name in ("abs", "log1p")):
                        fail(f"{n.name}() needs numbers, got a {_KIND_NAMES[k]}", a.pos)
                return "num" if n.name != "min" and n.name != "max" else next((k for k in ks if k), "num")
            known = [k for k in ks if k not in (None, "null")]
            for k in known[1:]:
                compatible(known[0], k, n.pos, "coalesce")
            return known[0] if known else None
        raise RuleError(f"rule {rule_id or '?'}: unsupported node {type(n).__name__}")  # pragma: no cover

    return rec(node)


_KIND_NAMES = {"num": "number", "str": "string", "bool": "boolean", "time": "timestamp", "null": "null"}


# --- vectorised evaluation ----------------------------------------------------------------------


class _Ctx:
    """Per-evaluation state: the frame, a column cache, list lookups."""

    def __init__(self, frame, lists, list_scope, as_of):
        self.frame, self.lists, self.list_scope, self.as_of = frame, lists, list_scope, as_of
        self.n = len(frame)
        self.cache = {}

    def column(self, name):
        hit = self.cache.get(name)
        if hit is None:
            hit = _column_values(self.frame, name)
            self.cache[name] = hit
        return hit


def _column_values(frame, name):
    """(values, null mask, kind) for one column; numbers as float64 with NaN for null."""
    try:
        s = frame[name]
    except KeyError:
        raise RuleError(f"column {name!r} is not in the frame; columns: {', '.join(map(str, frame.columns[:20]))}")
    kind = infer_kind(s.dtype)
    if kind == "num":
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        return v, np.isnan(v), kind
    if kind == "bool":
        null = s.isna().to_numpy()
        v = s.to_numpy(dtype=bool, na_value=False) if null.any() else s.to_numpy(dtype=bool)
        return v, null, kind
    if kind == "time":
        v = s.to_numpy(dtype="datetime64[ns]")
        return v, np.isnat(v), kind
    return s, s.isna().to_numpy(), kind


class _Val:
    """A column value (array + null mask) or a scalar (null when ``value is None``)."""

    __slots__ = ("v", "null", "kind", "scalar")

    def __init__(self, v, null, kind, scalar=False):
        self.v, self.null, self.kind, self.scalar = v, null, kind, scalar


def _scalar(v):
    if v is None:
        return _Val(None, True, "null", True)
    if isinstance(v, bool):
        return _Val(v, False, "bool", True)
    if isinstance(v, (int, float)):
        return _Val(float(v), False, "num", True)
    return _Val(v, False, "str", True)


def _or_null(a, b):
    if isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)):
        return bool(a or b)
    return np.logical_or(a, b)


def compile_expression(node: Node) -> Callable:
    """Compile an AST to ``f(frame, lists=None, scope=None, as_of=None) -> bool ndarray``.

    The returned function is vectorised: each AST node becomes one numpy (or
    pandas ``isin``) operation over whole columns. A null result is False.

    Examples
    --------
    >>> import pandas as pd
    >>> f = compile_expression(parse("x > 1 and not (y == 'a')"))
    >>> f(pd.DataFrame({"x": [0, 2, 3, None], "y": ["a", "b", None, "b"]})).tolist()
    [False, True, False, False]
    """
    def run(frame, lists=None, scope=None, as_of=None):
        ctx = _Ctx(frame, lists, scope, as_of)
        return _truth(_eval(node, ctx), ctx.n)

    run.node = node
    return run


def evaluate(node: Node, ctx_or_frame, *, lists=None, scope=None, as_of=None, cache=None) -> np.ndarray:
    """Evaluate a parsed condition over a frame; ``cache`` (a dict) is shared across conditions."""
    ctx = _Ctx(ctx_or_frame, lists, scope, as_of)
    if cache is not None:
        ctx.cache = cache
    return _truth(_eval(node, ctx), ctx.n)


def _truth(val, n):
    if val.kind not in ("bool", "null", None) and val.kind != "num":
        raise RuleError(f"the condition yields a {_KIND_NAMES.get(val.kind, val.kind)}, not true/false")
    if val.scalar:
        return np.full(n, bool(val.v) and not val.null)
    v = np.asarray(val.v)
    if v.dtype != bool:
        v = np.nan_to_num(v.astype(float), nan=0.0) != 0
    return v & ~np.asarray(val.null, dtype=bool)


def _as_num(val):
    if val.scalar:
        return val
    if val.kind == "bool":
        return _Val(np.asarray(val.v, dtype=float), val.null, "num")
    return val


def _eval(n, ctx):  # noqa: C901 - one dispatch over node types
    if isinstance(n, Literal):
        return _scalar(n.value)
    if isinstance(n, Column):
        v, null, kind = ctx.column(n.name)
        return _Val(v, null, kind)
    if isinstance(n, Unary):
        a = _as_num(_eval(n.operand, ctx))
        return _Val(None if a.null is True else -a.v, a.null, "num", a.scalar)
    if isinstance(n, Binary):
        return _arith(n.op, _as_num(_eval(n.left, ctx)), _as_num(_eval(n.right, ctx)))
    if isinstance(n, Compare):
        return _compare(n.op, _eval(n.left, ctx), _eval(n.right, ctx))
    if isinstance(n, BoolOp):
        return _boolop(n.op, [_eval(o, ctx) for o in n.operands], ctx.n)
    if isinstance(n, Not):
        a = _eval(n.operand, ctx)
        if a.scalar:
            return _Val(None if a.null else not a.v, a.null, "bool", True)
        return _Val(~_bool_values(a), a.null, "bool")
    if isinstance(n, InValues):
        return _in_values(_eval(n.operand, ctx), n.values, n.negate, ctx.n)
    if isinstance(n, InList):
        return _in_list(n, _eval(n.operand, ctx), ctx)
    if isinstance(n, Between):
        a = _eval(n.operand, ctx)
        lo = _compare(">=", a, _eval(n.low, ctx))
        hi = _compare("<=", a, _eval(n.high, ctx))
        r = _boolop("and", [lo, hi], ctx.n)
        return _Val(~_bool_values(r), r.null, "bool", r.scalar) if n.negate else r
    if isinstance(n, IsNull):
        a = _eval(n.operand, ctx)
        null = np.full(ctx.n, a.null) if a.scalar else np.asarray(a.null, dtype=bool)
        return _Val(~null if n.negate else null, np.zeros(ctx.n, bool), "bool")
    if isinstance(n, Call):
        return _call(n.name, [_eval(a, ctx) for a in n.args], ctx.n)
    raise RuleError(f"unsupported node {type(n).__name__}")  # pragma: no cover


def _bool_values(a):
    v = a.v
    if a.scalar:
        return bool(v)
    v = np.asarray(v)
    return v if v.dtype == bool else np.nan_to_num(v.astype(float), nan=0.0) != 0


def _arith(op, a, b):
    if (a.scalar and a.null) or (b.scalar and b.null):
        return _Val(None, True, "num", True)
    with np.errstate(divide="ignore", invalid="ignore"):
        if op == "+":
            v = a.v + b.v
        elif op == "-":
            v = a.v - b.v
        elif op == "*":
            v = a.v * b.v
        else:
            if a.scalar and b.scalar:
                v = a.v / b.v if b.v != 0 else math.nan
            else:
                v = np.divide(a.v, b.v)
                v = np.where(np.isfinite(v), v, np.nan)
    if a.scalar and b.scalar:
        return _Val(v, isinstance(v, float) and math.isnan(v), "num", True)
    v = np.asarray(v, dtype=float)
    return _Val(v, np.isnan(v), "num")


_NP_CMP = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
           ">=": np.greater_equal}


def _coerce_pair(a, b):
    """Bring two operands to comparable numpy/pandas values."""
    av, bv = a.v, b.v
    if a.kind == "time" and b.scalar and b.kind == "str":
        bv = np.datetime64(pd.Timestamp(b.v).to_datetime64(), "ns")
    elif b.kind == "time" and a.scalar and a.kind == "str":
        av = np.datetime64(pd.Timestamp(a.v).to_datetime64(), "ns")
    elif a.kind == "str" and not a.scalar:
        av = a.v
    if a.kind == "bool" and b.kind == "num":
        av = np.asarray(av, dtype=float) if not a.scalar else float(av)
    if b.kind == "bool" and a.kind == "num":
        bv = np.asarray(bv, dtype=float) if not b.scalar else float(bv)
    return av, bv


def _compare(op, a, b):
    if (a.scalar and a.null) or (b.scalar and b.null):
        return _Val(None, True, "bool", True)
    av, bv = _coerce_pair(a, b)
    if a.scalar and b.scalar:
        return _Val(bool(_NP_CMP[op](av, bv)), False, "bool", True)
    if (a.kind == "str" or b.kind == "str") and "time" not in (a.kind, b.kind):
        # pandas compares object columns element-wise and fast for ==/!=; nulls are masked below
        left = av if not a.scalar else bv
        right = bv if not a.scalar else av
        flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op) if a.scalar else op
        left = pd.Series(left) if not isinstance(left, pd.Series) else left
        null = np.zeros(len(left), bool)
        for x in (a, b):
            if not x.scalar:
                null |= np.asarray(x.null, dtype=bool)
        filled = left.where(~null, "") if null.any() else left
        if isinstance(right, pd.Series):
            right = right.where(~null, "") if null.any() else right
            right = right.to_numpy()
        try:
            res = _pd_cmp(filled, flip, right)
        except TypeError as e:
            raise RuleError(f"cannot compare these values with {op}: {e}") from None
        return _Val(res, null, "bool")
    res = _NP_CMP[op](av, bv)
    null = (a.null if not a.scalar else False) | (b.null if not b.scalar else False)
    return _Val(np.asarray(res, dtype=bool), np.asarray(null, dtype=bool) | np.zeros(len(res), bool), "bool")


def _pd_cmp(s, op, right):
    import operator

    f = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
         ">=": operator.ge}[op]
    return np.asarray(f(s, right), dtype=bool)


def _boolop(op, vals, n):
    # Kleene logic: and -> False dominates, or -> True dominates
    value = np.full(n, op == "and")
    null = np.zeros(n, bool)
    for a in vals:
        av = _bool_values(a)
        an = a.null
        if op == "and":
            known_false = ~np.asarray(av, dtype=bool) & ~np.asarray(an, dtype=bool)
            value = value & ~known_false
            null = (null | an) & value
        else:
            known_true = np.asarray(av, dtype=bool) & ~np.asarray(an, dtype=bool)
            value = value | known_true
            null = (null | an) & ~value
    if op == "and":
        value = value & ~null
    return _Val(value, null, "bool")


def _in_values(a, values, negate, n):
    if a.scalar:
        hit = (a.v in values) if not a.null else None
        if hit is None:
            return _Val(None, True, "bool", True)
        return _Val(hit != negate, False, "bool", True)
    if a.kind in ("num", "bool"):
        nums = [float(v) for v in values if isinstance(v, (int, float))]
        hit = np.isin(np.asarray(a.v, dtype=float), nums)
    else:
        hit = pd.Series(a.v).isin([v for v in values]).to_numpy()
    if negate:
        hit = ~hit
    return _Val(hit, np.asarray(a.null, dtype=bool), "bool")


def _in_list(node, a, ctx):
    lists = ctx.lists
    if lists is None:
        raise RuleError(f"the condition looks up {node.kind}({node.name!r}) but no lists were given; "
                        "pass lists=ListStore(...) or a dict name -> values")
    values = np.full(ctx.n, a.v, dtype=object) if a.scalar else a.v
    list_type = None if node.kind == "list" else node.kind
    if hasattr(lists, "contains"):
        hit = lists.contains(node.name, values, list_type=list_type, scope=ctx.list_scope, as_of=ctx.as_of)
    else:
        if node.name not in lists:
            raise RuleError(f"unknown list {node.name!r}; lists given: {', '.join(sorted(lists)) or 'none'}")
        hit = pd.Series(values).isin(list(lists[node.name])).to_numpy()
    hit = np.asarray(hit, dtype=bool)
    null = np.full(ctx.n, bool(a.null)) if a.scalar else np.asarray(a.null, dtype=bool)
    hit = hit & ~null
    return _Val(~hit & ~null if node.negate else hit, null, "bool")


def _call(name, args, n):
    if name == "coalesce":
        out = args[0]
        for b in args[1:]:
            out = _coalesce(out, b, n)
        return out
    args = [_as_num(a) for a in args]
    if name in ("abs", "log1p"):
        a = args[0]
        if a.scalar:
            if a.null:
                return a
            v = abs(a.v) if name == "abs" else (math.log1p(a.v) if a.v > -1 else math.nan)
            return _Val(v, isinstance(v, float) and math.isnan(v), "num", True)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.abs(a.v) if name == "abs" else np.log1p(a.v)
        v = np.where(np.isfinite(v), v, np.nan) if name == "log1p" else v
        return _Val(v, np.isnan(v), "num")
    # min / max: any null argument makes the result null (SQL semantics)
    f = np.fmin if name == "min" else np.fmax
    arrays = [np.full(n, np.nan if a.null else a.v, dtype=float) if a.scalar else np.asarray(a.v, dtype=float)
              for a in args]
    nulls = [np.full(n, bool(a.null)) if a.scalar else np.asarray(a.null, dtype=bool) for a in args]
    v = arrays[0]
    for x in arrays[1:]:
        v = f(v, x)
    null = np.logical_or.reduce(nulls)
    v = np.where(null, np.nan, v)
    return _Val(v, null, "num")


def _coalesce(a, b, n):
    if a.scalar and not a.null:
        return a
    if a.scalar:
        return b
    an = np.asarray(a.null, dtype=bool)
    if b.scalar:
        if b.null:
            return a
        if a.kind == "str":
            v = pd.Series(a.v).where(~an, b.v)
        else:
            v = np.where(an, b.v, a.v)
        return _Val(v, np.zeros(n, bool), a.kind)
    bn = np.asarray(b.null, dtype=bool)
    if a.kind == "str" or b.kind == "str":
        v = pd.Series(a.v).where(~an, pd.Series(np.asarray(b.v, dtype=object)))
    else:
        v = np.where(an, b.v, a.v)
    return _Val(v, an & bn, a.kind if a.kind != "null" else b.kind)


def _show(text: str, limit: int = 120) -> str:
    """``repr`` of a condition for an error message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def _check_nesting(toks, text, rule_id) -> None:
    """Refuse nesting deeper than :data:`MAX_NESTING` before the recursive parser meets it."""
    depth = run = 0
    for kind, value, pos in toks:
        if kind == "op" and value == "(":
            depth += 1
        elif kind == "op" and value == ")":
            depth -= 1
        prefix = (kind == "kw" and value == "not") or (kind == "op" and value in ("-", "+"))
        run = run + 1 if prefix else 0
        if depth > MAX_NESTING or run > MAX_NESTING:
            raise RuleError(f"rule {rule_id or '?'}: nesting deeper than {MAX_NESTING} at position {pos} in "
                            f"{_show(text)}; simplify the condition")
