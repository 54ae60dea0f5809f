import math

import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import RuleError
from fraudkit.identification.expressions import (
    Between,
    Binary,
    BoolOp,
    Call,
    Column,
    Compare,
    InList,
    InValues,
    IsNull,
    Literal,
    Not,
    Unary,
    column_kinds,
    columns_of,
    compile_expression,
    lists_of,
    parse,
    typecheck,
)
from fraudkit.randomness import check_random_state


def ev(expr, df, **kw):
    return compile_expression(parse(expr))(df, **kw).tolist()


# --- parsing ---------------------------------------------------------------------------------------


def test_precedence_arithmetic_and_boolean():
    n = parse("a + b * c > 1 or not d and e")
    assert isinstance(n, BoolOp) and n.op == "or"
    left, right = n.operands
    assert isinstance(left, Compare) and left.op == ">"
    assert isinstance(left.left, Binary) and left.left.op == "+"
    assert isinstance(left.left.right, Binary) and left.left.right.op == "*"
    assert isinstance(right, BoolOp) and right.op == "and"
    assert isinstance(right.operands[0], Not)


def test_parentheses_and_unary_minus():
    n = parse("-(a - 1) * 2 >= -3")
    assert isinstance(n.left, Binary) and n.left.op == "*"
    assert isinstance(n.left.left, Unary)
    assert isinstance(n.right, Unary) and n.right.operand.value == 3


def test_every_node_type_parses():
    n = parse("x in (1, 2) and y not in ('a') and z between 1 and 2 and w is not null "
              "and v in blacklist('bad') and coalesce(u, 0) = 1 and t <> 2 and true")
    kinds = {type(o) for o in n.operands}
    assert {InValues, Between, IsNull, InList, Compare, Literal} <= kinds
    assert columns_of(n) == {"x", "y", "z", "w", "v", "u", "t"}
    assert lists_of(n) == {("blacklist", "bad")}
    assert any(isinstance(o, Compare) and o.op == "!=" for o in n.operands)
    assert any(isinstance(o, Compare) and isinstance(o.left, Call) for o in n.operands)


def test_string_escape_and_numbers():
    n = parse(r"name == 'it\'s' and x > 1.5e2")
    assert n.operands[0].right.value == "it's"
    assert n.operands[1].right.value == 150.0


@pytest.mark.parametrize("text, needle", [
    ("__import__('os')", "unsafe name '__import__' at position 0"),
    ("x.__class__", "attribute access"),
    ("a.b > 1", "attribute access is not allowed at position 1"),
    ("a[0] > 1", "subscripts are not allowed at position 1"),
    ("foo(x) > 1", "unknown function 'foo'"),
    ("1 if x else 2", "unsafe construct 'if' at position 2"),
    ("lambda: 1", "unsafe construct 'lambda'"),
    ("eval('1')", "unsafe construct 'eval'"),
    ("x > 1; y", "only one expression"),
    ("x > ", "unexpected 'end of condition'"),
    ("x in list(1)", "quoted list name"),
    ("list('a') > 1", "can only follow 'in'"),
    ("abs(x, y) > 1", "abs() takes one argument"),
    ("x in (y)", "literal values only"),
    ("'open", "unterminated string"),
    ("", "empty"),
])
def test_unsafe_or_bad_syntax_rejected(text, needle):
    with pytest.raises(RuleError) as e:
        parse(text, rule_id="R9")
    assert "rule R9" in str(e.value) or text == ""
    assert needle in str(e.value)


# --- type checks -----------------------------------------------------------------------------------


def test_typecheck_rejects_string_vs_number_and_string_arithmetic():
    kinds = column_kinds({"s": "object", "x": "float64", "b": "bool"})
    with pytest.raises(RuleError, match="cannot compare .* a string with a number"):
        typecheck(parse("s > 1"), kinds, rule_id="r")
    with pytest.raises(RuleError, match="arithmetic '\\+' on a string"):
        typecheck(parse("s + 1 > 2"), kinds, rule_id="r")
    with pytest.raises(RuleError, match="unknown column 'nope'"):
        typecheck(parse("nope > 1"), kinds, rule_id="r")
    assert typecheck(parse("s == 'a' and x > 1 and b"), kinds) == "bool"


# --- evaluation ------------------------------------------------------------------------------------


@pytest.fixture
def df():
    return pd.DataFrame({
        "x": [0.0, 2.0, 3.0, np.nan],
        "y": ["a", "b", None, "b"],
        "b": [True, False, True, False],
        "t": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
    })


def test_each_operator(df):
    assert ev("x > 1", df) == [False, True, True, False]
    assert ev("x >= 2", df) == [False, True, True, False]
    assert ev("x < 2", df) == [True, False, False, False]
    assert ev("x <= 2", df) == [True, True, False, False]
    assert ev("x == 2", df) == [False, True, False, False]
    assert ev("x != 2", df) == [True, False, True, False]
    assert ev("x + 1 == 3", df) == [False, True, False, False]
    assert ev("x - 1 == 1", df) == [False, True, False, False]
    assert ev("x * 2 == 6", df) == [False, False, True, False]
    assert ev("x / 2 == 1", df) == [False, True, False, False]
    assert ev("x / 0 > -1", df) == [False, False, False, False]  # division by zero is null
    assert ev("x between 1 and 2", df) == [False, True, False, False]
    assert ev("x not between 1 and 2", df) == [True, False, True, False]
    assert ev("x in (0, 3)", df) == [True, False, True, False]
    assert ev("y in ('a')", df) == [True, False, False, False]
    assert ev("y not in ('a')", df) == [False, True, False, True]
    assert ev("y is null", df) == [False, False, True, False]
    assert ev("x is not null", df) == [True, True, True, False]
    assert ev("b", df) == [True, False, True, False]
    assert ev("not b", df) == [False, True, False, True]
    assert ev("t > '2024-01-15'", df) == [False, True, False, True]
    assert ev("abs(x - 2) == 1", df) == [False, False, True, False]
    assert ev("log1p(x) > 1", df) == [False, True, True, False]
    assert ev("min(x, 1) == 1", df) == [False, True, True, False]
    assert ev("max(x, 1) == 1", df) == [True, False, False, False]
    assert ev("coalesce(x, 9) == 9", df) == [False, False, False, True]
    assert ev("coalesce(y, 'z') == 'z'", df) == [False, False, True, False]
    assert ev("y < 'b'", df) == [True, False, False, False]


def test_null_three_valued_logic(df):
    # x is null in row 3: 'not (x > 1)' stays null -> False; 'x > 1 or b' is null or False -> False
    assert ev("not (x > 1)", df) == [True, False, False, False]
    assert ev("x > 1 or true", df) == [True, True, True, True]
    assert ev("x > 1 and false", df) == [False, False, False, False]
    assert ev("y == 'b' or x > 1", df) == [False, True, True, True]


def test_list_lookup_with_dict(df):
    assert ev("y in list('l')", df, lists={"l": ["b"]}) == [False, True, False, True]
    assert ev("y not in list('l')", df, lists={"l": ["b"]}) == [True, False, False, False]
    with pytest.raises(RuleError, match="no lists were given"):
        ev("y in list('l')", df)
    with pytest.raises(RuleError, match="unknown list 'm'"):
        ev("y in list('m')", df, lists={"l": []})


def test_missing_column_at_evaluation(df):
    with pytest.raises(RuleError, match="column 'zz' is not in the frame"):
        ev("zz > 1", df)


# --- vectorised == row-by-row reference on random frames -------------------------------------------


def _ref(node, row):
    """A scalar interpreter, independent of the vectorised one: None is null."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Column):
        v = row[node.name]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    if isinstance(node, Unary):
        a = _ref(node.operand, row)
        return None if a is None else -a
    if isinstance(node, Binary):
        a, b = _ref(node.left, row), _ref(node.right, row)
        if a is None or b is None:
            return None
        if node.op == "/":
            return None if b == 0 else a / b
        return {"+": a + b, "-": a - b, "*": a * b}[node.op]
    if isinstance(node, Compare):
        a, b = _ref(node.left, row), _ref(node.right, row)
        if a is None or b is None:
            return None
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[node.op]
    if isinstance(node, BoolOp):
        vals = [_ref(o, row) for o in node.operands]
        if node.op == "and":
            if any(v is False for v in vals):
                return False
            return None if any(v is None for v in vals) else True
        if any(v is True for v in vals):
            return True
        return None if any(v is None for v in vals) else False
    if isinstance(node, Not):
        a = _ref(node.operand, row)
        return None if a is None else not a
    if isinstance(node, InValues):
        a = _ref(node.operand, row)
        return None if a is None else ((a in node.values) != node.negate)
    if isinstance(node, Between):
        a, lo, hi = _ref(node.operand, row), _ref(node.low, row), _ref(node.high, row)
        if a is None or lo is None or hi is None:
            return None
        return (lo <= a <= hi) != node.negate
    if isinstance(node, IsNull):
        return (_ref(node.operand, row) is None) != node.negate
    if isinstance(node, Call):
        args = [_ref(a, row) for a in node.args]
        if node.name == "coalesce":
            return next((a for a in args if a is not None), None)
        if any(a is None for a in args):
            return None
        if node.name == "abs":
            return abs(args[0])
        if node.name == "log1p":
            return math.log1p(args[0]) if args[0] > -1 else None
        return min(args) if node.name == "min" else max(args)
    raise AssertionError(type(node))


def _random_expr(rng, depth=0):
    num_cols, str_col = ["x", "y", "z"], "s"
    if depth > 2 or rng.random() < 0.3:
        choice = rng.integers(6)
        c = num_cols[rng.integers(3)]
        k = int(rng.integers(-2, 4))
        if choice == 0:
            return f"{c} {['>', '>=', '<', '<=', '==', '!='][rng.integers(6)]} {k}"
        if choice == 1:
            return f"{c} between {k} and {k + int(rng.integers(0, 3))}"
        if choice == 2:
            return f"{str_col} {'not ' if rng.random() < 0.5 else ''}in ('a', 'c')"
        if choice == 3:
            return f"{c} is {'not ' if rng.random() < 0.5 else ''}null"
        if choice == 4:
            fn = ["abs", "log1p"][rng.integers(2)]
            return f"{fn}({c}) > {k / 2}"
        other = num_cols[rng.integers(3)]
        op = ["+", "-", "*", "/"][rng.integers(4)]
        return f"{['min', 'max', 'coalesce'][rng.integers(3)]}({c} {op} {other}, {k}) >= {k}"
    op = ["and", "or"][rng.integers(2)]
    left, right = _random_expr(rng, depth + 1), _random_expr(rng, depth + 1)
    expr = f"({left}) {op} ({right})"
    return f"not ({expr})" if rng.random() < 0.2 else expr


def test_vectorised_equals_row_by_row_reference():
    rng = check_random_state(42)
    n = 200
    x = rng.integers(-3, 4, n).astype(float)
    x[rng.random(n) < 0.15] = np.nan
    y = rng.integers(-3, 4, n).astype(float)
    y[rng.random(n) < 0.15] = np.nan
    z = rng.integers(-3, 4, n).astype(float)
    s = np.array(["a", "b", "c", None], dtype=object)[rng.integers(0, 4, n)]
    df = pd.DataFrame({"x": x, "y": y, "z": z, "s": s})
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    n_true = 0
    for _ in range(150):
        text = _random_expr(rng)
        node = parse(text)
        vec = compile_expression(node)(df)
        ref = np.array([_ref(node, r) is True for r in records])
        assert (vec == ref).all(), text
        n_true += int(vec.sum())
    assert 0 < n_true < 150 * n  # the random conditions are neither all-true nor all-false
