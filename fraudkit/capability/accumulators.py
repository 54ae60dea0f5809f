"""Accumulation factors: named counters over a key and a trailing window, declared as data.

An :class:`Accumulator` says "sum ``quantity`` of ``orders`` per
(``address``, ``product_id``) over the last 24 hours". :func:`compute` gives,
for every row of the source table, the counter's value over the window that
ends at that row **including the row itself** (and rows with the same
timestamp), so a rule reads ``acc_units_per_address_product_24h > 2`` and a
personalised purchase limit compares the counter with the limit. The work is
one DuckDB window query per table (``RANGE BETWEEN INTERVAL ... PRECEDING AND
CURRENT ROW``), so it scales to millions of orders.

Rows whose key has a missing component (an order without a device) get a
missing counter (NaN): a null device is not one shared device. Rows are never
dropped.

A counter over the whole data window (an account's actions, orders, sessions)
grows with the window's length: a dataset of 30 days holds about twice the
events of one of 14. :func:`observed_days` gives each account's *observed
days*, the denominator that turns such a count into a rate per day that does
not depend on how long the data runs (see
:mod:`fraudkit.capability.features`, ``*_per_day``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from fraudkit.data.contract import EVENT_TABLES, TABLES
from fraudkit.data.engine import quote
from fraudkit.data.sqlsource import open_source
from fraudkit.errors import MissingInputError

__all__ = ["Accumulator", "compute", "compute_by_table", "observed_days", "observed_days_sql",
           "DEFAULT_ACCUMULATORS", "MIN_OBSERVED_DAYS", "parse_window", "window_expr", "row_aggregate", "window_frame",
           "with_accumulators"]

_AGGS = ("sum", "count", "count_distinct")
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)\s*$")
_UNITS = {"s": "SECOND", "m": "MINUTE", "min": "MINUTE", "h": "HOUR", "d": "DAY"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

MIN_OBSERVED_DAYS = 1.0
"""Observed days are at least this: an account seen for an hour has a rate per day, not per hour."""


@dataclass(frozen=True)
class Accumulator:
    """A named counter over a key and a window.

    Parameters
    ----------
    name : str
        Output column (snake_case; by convention ``acc_...``).
    key : tuple of str
        Columns of ``table`` the counter is kept per, e.g. ``("address", "product_id")``.
    value : str or None, default=None
        Column summed (``agg="sum"``) or counted distinct (``"count_distinct"``);
        ignored by ``"count"``.
    window : str or None, default="24h"
        Trailing window ``"<n>s|m|h|d"``; ``None`` means everything before
        (e.g. "per promotion", since promotions are bounded in time).
    table : str, default="orders"
        Source contract table with a time column.
    agg : {"sum", "count", "count_distinct"}, default="count"
    where : dict or None, default=None
        Only rows matching every ``column: value`` (or ``column: [values]``)
        are counted; every row still gets the counter.

    Examples
    --------
    >>> Accumulator("acc_units_per_address_product_24h", key=("address", "product_id"),
    ...             value="quantity", window="24h", agg="sum").window_sql
    'INTERVAL 24 HOUR'
    """

    name: str
    key: tuple
    value: str | None = None
    window: str | None = "24h"
    table: str = "orders"
    agg: str = "count"
    where: dict | None = None

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ValueError(f"accumulator name {self.name!r} must be snake_case (letters, digits, _)")
        if isinstance(self.key, str):
            object.__setattr__(self, "key", (self.key,))
        else:
            object.__setattr__(self, "key", tuple(self.key))
        if self.table not in TABLES or TABLES[self.table].time_column is None:
            timed = [n for n, t in TABLES.items() if t.time_column]
            raise ValueError(f"accumulator {self.name!r}: table {self.table!r} is not a timed contract table; "
                             f"use one of {', '.join(timed)}")
        if self.agg not in _AGGS:
            raise ValueError(f"accumulator {self.name!r}: agg {self.agg!r} is not one of {', '.join(_AGGS)}")
        if self.agg != "count" and not self.value:
            raise ValueError(f"accumulator {self.name!r}: agg {self.agg!r} needs a value column")
        cols = set(TABLES[self.table].column_names)
        used = [*self.key, *([self.value] if self.value else []), *(self.where or {})]
        bad = [c for c in used if c not in cols]
        if bad or not self.key:
            raise ValueError(f"accumulator {self.name!r}: column(s) {bad or ['<no key>']} not in table "
                             f"{self.table!r}; columns: {', '.join(sorted(cols))}")
        parse_window(self.window)

    @property
    def window_sql(self) -> str | None:
        """The window as a DuckDB interval literal, or None for unbounded."""
        return parse_window(self.window)


def parse_window(window) -> str | None:
    """Turn ``"24h"`` / ``"30min"`` / ``"7d"`` / ``None`` into a DuckDB interval literal.

    Examples
    --------
    >>> parse_window("30min"), parse_window(None)
    ('INTERVAL 30 MINUTE', None)
    """
    if window is None:
        return None
    m = _WINDOW_RE.match(str(window))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"window {window!r} is not '<positive int><s|m|min|h|d>' (e.g. '24h') or None")
    return f"INTERVAL {int(m.group(1))} {_UNITS[m.group(2)]}"


DEFAULT_ACCUMULATORS = (
    Accumulator("acc_units_per_address_product_24h", key=("address", "product_id"), value="quantity",
                window="24h", agg="sum"),
    Accumulator("acc_units_per_account_product_24h", key=("account_id", "product_id"), value="quantity",
                window="24h", agg="sum"),
    Accumulator("acc_orders_per_device_promotion", key=("device_id", "promotion_id"), window=None, agg="count"),
    Accumulator("acc_accounts_per_address_promotion", key=("address", "promotion_id"), value="account_id",
                window=None, agg="count_distinct"),
    Accumulator("acc_accounts_per_receiver_phone_24h", key=("receiver_phone",), value="account_id",
                window="24h", agg="count_distinct"),
    Accumulator("acc_accounts_per_ip_1h", key=("ip",), value="account_id", window="1h", agg="count_distinct"),
    Accumulator("acc_coupons_per_device_promotion", key=("device_id", "promotion_id"), window=None, agg="count",
                table="coupon_claims"),
    Accumulator("acc_accounts_per_device_promotion", key=("device_id", "promotion_id"), value="account_id",
                window=None, agg="count_distinct", table="coupon_claims"),
    Accumulator("acc_likes_per_device_1h", key=("device_id",), window="1h", agg="count", table="interactions",
                where={"action": "like"}),
)
"""The default counters: purchase limits, promotion abuse and like bursts."""


def compute(accumulators, data, *, as_of=None) -> pd.DataFrame:
    """Evaluate accumulators on one source table, row by row (window includes the row).

    Parameters
    ----------
    accumulators : sequence of Accumulator
        All on the same ``table``.
    data : Dataset or dict of str to DataFrame
    as_of : timestamp-like, default=None
        Only rows strictly before it.

    Returns
    -------
    pandas.DataFrame
        The table's primary key, ``ts``, then one float column per accumulator;
        one row per source row, ordered by the key.

    Examples
    --------
    >>> import pandas as pd
    >>> orders = pd.DataFrame({"order_id": [1, 2, 3], "address": ["a", "a", "a"], "product_id": [9, 9, 9],
    ...     "quantity": [1, 2, 1], "ts": pd.to_datetime(["2024-01-01 08:00", "2024-01-01 20:00", "2024-01-03 00:00"])})
    >>> acc = Accumulator("acc_u", key=("address", "product_id"), value="quantity", window="24h", agg="sum")
    >>> compute([acc], {"orders": orders})["acc_u"].tolist()
    [1.0, 3.0, 1.0]
    """
    accumulators = tuple(accumulators)
    if not accumulators:
        raise ValueError("compute() needs at least one Accumulator")
    tables = {a.table for a in accumulators}
    if len(tables) != 1:
        raise ValueError(f"accumulators span tables {sorted(tables)}; use compute_by_table()")
    names = [a.name for a in accumulators]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate accumulator names: {sorted({n for n in names if names.count(n) > 1})}")
    table = tables.pop()
    spec = TABLES[table]
    with open_source(_only(data, table), as_of=as_of) as src:
        rel = src.require(table, f"accumulators {', '.join(names)}")
        cols = [window_expr(a, spec.time_column) for a in accumulators]
        pk = ", ".join(spec.primary_key)
        out = src.df(f"SELECT {pk}, {spec.time_column}, {', '.join(cols)} FROM {rel} ORDER BY {pk}")
    for n in names:
        out[n] = out[n].astype(float)
    return out


def compute_by_table(accumulators, data, *, as_of=None) -> dict:
    """:func:`compute` for accumulators over several tables: ``{table: DataFrame}``.

    Tables absent from ``data`` are skipped (not in the result).

    Examples
    --------
    >>> import pandas as pd
    >>> claims = pd.DataFrame({"claim_id": [1], "device_id": ["d"], "promotion_id": [5],
    ...                        "ts": [pd.Timestamp("2024-01-01")], "account_id": [1], "coupon_id": [3]})
    >>> sorted(compute_by_table(DEFAULT_ACCUMULATORS, {"coupon_claims": claims}))
    ['coupon_claims']
    """
    by = {}
    for a in accumulators:
        by.setdefault(a.table, []).append(a)
    out = {}
    with open_source(data, as_of=as_of) as src:
        for table, accs in by.items():
            if src.has(table):
                out[table] = compute(accs, src)
    return out


def observed_days(data, *, as_of=None) -> pd.DataFrame:
    """Each account's observed days: its time inside the data window, the denominator of a rate per day.

    The window runs from the data's first event (interactions, orders, logins, coupon claims) to its
    reference time (``as_of``, else just after the last interaction, order or login: see
    :meth:`fraudkit.data.sqlsource.SqlSource.reference_time`). An account is observed from the later of
    the window's start and its registration, so an account registered years ago counts the whole window
    and one registered yesterday counts one day. Point-in-time correct: with ``as_of`` only time before
    it counts. At least :data:`MIN_OBSERVED_DAYS`.

    Parameters
    ----------
    data : Dataset or dict of str to DataFrame
        Needs ``accounts``, or an event table (accounts are then those with events, observed over the
        whole window).
    as_of : timestamp-like, default=None

    Returns
    -------
    pandas.DataFrame
        ``account_id, observed_days`` ordered by ``account_id``.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2023-01-01", "2024-01-08"]),
    ...                     "register_channel": "app", "phone": None})
    >>> it = pd.DataFrame({"event_id": [1, 2], "account_id": [1, 2], "device_id": None, "ip": None,
    ...                    "action": "view", "target_id": 7, "ts": pd.to_datetime(["2024-01-01", "2024-01-10"])})
    >>> observed_days({"accounts": acc, "interactions": it}, as_of="2024-01-11").observed_days.tolist()
    [10.0, 3.0]
    """
    with open_source(data, as_of=as_of) as src:
        return src.df(f"SELECT * FROM ({observed_days_sql(src)}) ORDER BY account_id")


def observed_days_sql(src) -> str:
    """SQL of :func:`observed_days` on an open :class:`fraudkit.data.sqlsource.SqlSource`: ``account_id, observed_days``."""
    ref = f"TIMESTAMP '{src.reference_time().strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    firsts = [f"SELECT min(ts) AS m FROM {getattr(src.t, t)}" for t in EVENT_TABLES if src.has(t)]
    start = f"(SELECT min(m) FROM ({' UNION ALL '.join(firsts)}))" if firsts else ref
    if src.has("accounts"):
        since, rel = f"greatest({start}, registered_at)", src.t.accounts
    elif firsts:
        since = start
        rel = "(" + " UNION ".join(f"SELECT DISTINCT account_id FROM {getattr(src.t, t)}"
                                   for t in EVENT_TABLES if src.has(t)) + ")"
    else:
        raise MissingInputError("observed days need the accounts table or an event table "
                                f"({', '.join(EVENT_TABLES)})")
    return (f"SELECT account_id, greatest(epoch({ref} - coalesce({since}, {ref})) / 86400.0, {MIN_OBSERVED_DAYS}) "
            f"AS observed_days FROM {rel}")


# --- private ------------------------------------------------------------------


def _only(data, table):
    """A dict input narrowed to the one table needed (avoids registering the rest)."""
    if isinstance(data, dict):
        return {table: data[table]} if table in data else {}
    return data


def _literal(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    raise ValueError(f"where value {v!r} must be a str, int, float or bool")


def row_aggregate(a: Accumulator) -> str:
    """The aggregate of ``a`` over the rows it counts (``count(CASE WHEN action IN ('like') THEN 1 END)``), as
    :func:`window_expr` applies it over each row's window.

    Examples
    --------
    >>> print(row_aggregate(Accumulator("n", key=("device_id",), window="1h", agg="count", table="interactions",
    ...                                 where={"action": "like"})))
    count(CASE WHEN action IN ('like') THEN 1 END)
    """
    conds = []
    for col, val in (a.where or {}).items():
        vals = list(val) if isinstance(val, (list, tuple, set, frozenset)) else [val]
        conds.append(f"{col} IN ({', '.join(_literal(v) for v in vals)})")
    cond = " AND ".join(conds) or "TRUE"
    if a.agg == "count":
        return f"count(CASE WHEN {cond} THEN 1 END)"
    if a.agg == "sum":
        return f"sum(CASE WHEN {cond} THEN {a.value} END)"
    return f"count(DISTINCT CASE WHEN {cond} THEN {a.value} END)"


def window_frame(a: Accumulator) -> str:
    """The frame of :func:`window_expr`'s window: the rows of the key up to ``a``'s window before this one's time
    (all of them without a window), peers included."""
    return ("RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" if a.window_sql is None
            else f"RANGE BETWEEN {a.window_sql} PRECEDING AND CURRENT ROW")


def window_expr(a: Accumulator, time_col: str) -> str:
    """SQL of ``a`` as a column: its aggregate over each row's window of its key (null where a key is null).

    Examples
    --------
    >>> print(window_expr(Accumulator("n", key=("device_id",), window="1h", agg="count", table="interactions"), "ts"))
    ... # doctest: +NORMALIZE_WHITESPACE
    CASE WHEN device_id IS NOT NULL THEN CAST(count(CASE WHEN TRUE THEN 1 END) OVER (PARTITION BY device_id
    ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW) AS DOUBLE) END AS n
    """
    agg, frame = row_aggregate(a), window_frame(a)
    key = ", ".join(a.key)
    notnull = " AND ".join(f"{k} IS NOT NULL" for k in a.key)
    win = f"{agg} OVER (PARTITION BY {key} ORDER BY {time_col} {frame})"
    if a.agg == "sum":
        win = f"coalesce({win}, 0)"
    return f"CASE WHEN {notnull} THEN CAST({win} AS DOUBLE) END AS {a.name}"


def with_accumulators(view: str, columns, accs) -> str:
    """SQL of the rows of ``view`` (its ``columns``) with the accumulators ``accs`` (windows over ``ts``) beside
    them, in no particular order.

    A counter (``agg="count"``) is counted once per (key, second) and summed over its window from there, on
    those columns alone, then joined back by key and time: the same counts (rows of one time are peers in a
    ``RANGE`` frame), without carrying every column of the 23.7M interactions of ``large`` through the window's
    partition and sort (the interaction frame of
    :func:`fraudkit.pipeline.frames.rule_frames`: 24.1 -> 21.8 s). Sums and distinct counts stay windows over the
    rows (a sum of floats summed in another order could differ in its last bit).

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE i AS SELECT * FROM (VALUES (1, 'd', 'like', TIMESTAMP '2024-01-01 10:00'), "
    ...                 "(2, 'd', 'view', TIMESTAMP '2024-01-01 10:30'), (3, 'd', 'like', TIMESTAMP '2024-01-01 10:30'), "
    ...                 "(4, NULL, 'like', TIMESTAMP '2024-01-01 10:40'), (5, 'd', 'like', TIMESTAMP '2024-01-01 12:00')) "
    ...                 "t(event_id, device_id, action, ts)")
    >>> a = Accumulator("n", key=("device_id",), window="1h", agg="count", table="interactions",
    ...                 where={"action": "like"})
    >>> con.execute(with_accumulators("i", ["event_id", "device_id", "action", "ts"], [a])
    ...             + " ORDER BY event_id").fetchall()  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'd', 'like', datetime.datetime(2024, 1, 1, 10, 0), 1.0),
     (2, 'd', 'view', datetime.datetime(2024, 1, 1, 10, 30), 2.0),
     (3, 'd', 'like', datetime.datetime(2024, 1, 1, 10, 30), 2.0),
     (4, None, 'like', datetime.datetime(2024, 1, 1, 10, 40), None),
     (5, 'd', 'like', datetime.datetime(2024, 1, 1, 12, 0), 1.0)]
    """
    counted = [a for a in accs if a.agg == "count"]
    windows = "".join(f", {window_expr(a, 'ts')}" for a in accs if a not in counted)
    if not counted:
        return f"SELECT *{windows} FROM {view}"
    ctes, joins = [], []
    for i, a in enumerate(counted):
        keys = ", ".join(quote(k) for k in a.key)
        not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in a.key)
        ctes.append(f"c{i} AS (SELECT {keys}, ts, CAST(sum(n) OVER (PARTITION BY {keys} ORDER BY ts "
                    f"{window_frame(a)}) AS DOUBLE) AS n FROM (SELECT {keys}, ts, {row_aggregate(a)} AS n "
                    f"FROM {view} WHERE {not_null} GROUP BY ALL))")
        on = " AND ".join([f"v.{quote(k)} = c{i}.{quote(k)}" for k in a.key] + [f"v.ts IS NOT DISTINCT FROM c{i}.ts"])
        joins.append(f"LEFT JOIN c{i} ON {on}")
    picks = [f"c{counted.index(a)}.n AS {quote(a.name)}" if a in counted else f"v.{quote(a.name)}" for a in accs]
    return (f"WITH {', '.join(ctes)} SELECT {', '.join(f'v.{quote(c)}' for c in columns)}, {', '.join(picks)} "
            f"FROM (SELECT *{windows} FROM {view}) v {' '.join(joins)}")
