"""One DuckDB view of the contract tables, for stage-1 feature SQL (private).

Features, sequences and accumulators are computed in DuckDB SQL so that the
``large`` scenario (20M interactions) runs in minutes. :func:`open_source`
takes a :class:`fraudkit.data.dataset.Dataset` (its DuckDB connection is reused; nothing
is copied) or a dict of pandas DataFrames (registered, zero-copy, into a fresh
in-memory connection) and exposes each contract table as a temporary view with

* time columns cast to ``TIMESTAMP`` (so window ``RANGE`` intervals work), and
* contract columns the input lacks added as typed NULLs (recorded in
  ``missing_columns``; a validated Dataset has them all), and
* an optional point-in-time cut: with ``as_of`` every view keeps only rows whose
  time column is strictly before it, and later-known columns (``received_at``,
  list expiry) are nulled when they fall on or after it.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pandas as pd

from fraudkit.data.connection import duckdb_connection
from fraudkit.data.contract import TABLES
from fraudkit.data.engine import quote
from fraudkit.errors import FraudkitError, MissingInputError

__all__ = ["SqlSource", "open_source"]

_counter = itertools.count()
_SQL_TYPES = {"id": "VARCHAR", "string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN",
              "timestamp": "TIMESTAMP"}

# Columns known only later than the row's own time: hidden when they fall at or after as_of.
_LATER_KNOWN = {"orders": ("received_at",), "list_entries": ("expires_at",)}


class SqlSource:
    """Contract tables as DuckDB views; use as a context manager or call :meth:`close`.

    Attributes
    ----------
    con : duckdb.DuckDBPyConnection
    t : SimpleNamespace
        View name of each present contract table (``t.interactions``) and
        :meth:`name` for scratch tables.
    tables : frozenset of str
        Contract tables present.
    as_of : pandas.Timestamp or None
    """

    def __init__(self, con, sources: dict, *, as_of=None, own=False, columns=None):
        self.con = con
        self.as_of = None if as_of is None else pd.Timestamp(as_of)
        self._own = own
        self._prefix = f"fk{next(_counter)}_"
        self._created: list[tuple[str, str]] = []
        self.cache: dict = {}  # results computed on this source (e.g. account features reused by orders)
        names = {}
        self.missing_columns: dict[str, tuple] = {}
        for name, rel in sources.items():
            spec = TABLES[name]
            cols = None if columns is None else columns.get(("columns", rel))
            if cols is None:
                cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
                if columns is not None:
                    columns[("columns", rel)] = cols
            missing = [c for c in spec.column_names if c not in cols]
            if spec.time_column in missing:
                raise MissingInputError(
                    f"table {name!r} lacks its time column {spec.time_column!r}; the data contract "
                    f"(fraudkit.data.contract) requires it. Fix: add it or validate the dataset first.")
            self.missing_columns[name] = tuple(missing)
            repl = []
            for c in spec.columns:
                if c.dtype != "timestamp":
                    continue
                expr = f"CAST({c.name} AS TIMESTAMP)"
                if self.as_of is not None and c.name in _LATER_KNOWN.get(name, ()):
                    expr = f"CASE WHEN {expr} < {self.ts_literal} THEN {expr} END"
                repl.append(f"{expr} AS {c.name}")
            repl = [r for r in repl if r.rsplit(" AS ", 1)[1] not in missing]
            extra = "".join(f", CAST(NULL AS {_SQL_TYPES[spec.column(c).dtype]}) AS {c}" for c in missing)
            select = (f"SELECT * REPLACE ({', '.join(repl)}){extra} FROM {rel}" if repl
                      else f"SELECT *{extra} FROM {rel}")
            if self.as_of is not None and spec.time_column is not None and name != "promotions":
                select += f" WHERE CAST({spec.time_column} AS TIMESTAMP) < {self.ts_literal}"
            view = self._prefix + name
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {select}")
            self._created.append(("VIEW", view))
            names[name] = view
        self.tables = frozenset(names)
        self.t = SimpleNamespace(**names)

    @property
    def ts_literal(self) -> str:
        """``as_of`` as a SQL timestamp literal (built from a Timestamp, never from user text)."""
        return f"TIMESTAMP '{self.as_of.strftime('%Y-%m-%d %H:%M:%S.%f')}'"

    def has(self, name: str) -> bool:
        return name in self.tables

    def require(self, name: str, why: str) -> str:
        if name not in self.tables:
            raise MissingInputError(f"{why} needs the {name!r} table, which the dataset does not have.")
        return getattr(self.t, name)

    def name(self, stem: str) -> str:
        """A scratch table name unique to this source."""
        return self._prefix + stem

    def temp_table(self, stem: str, sql: str) -> str:
        """Materialise ``sql`` as a temporary table; return its name."""
        name = self.name(stem)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self._created.append(("TABLE", name))
        return name

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def scalar(self, sql: str):
        return self.con.execute(sql).fetchone()[0]

    def reference_time(self) -> pd.Timestamp:
        """``as_of``, or just after the last interaction / order (the data's end)."""
        if self.as_of is not None:
            return self.as_of
        parts = [f"SELECT max(ts) AS m FROM {getattr(self.t, n)}" for n in ("interactions", "orders", "logins")
                 if self.has(n)]
        m = self.scalar(f"SELECT max(m) FROM ({' UNION ALL '.join(parts)})") if parts else None
        return pd.Timestamp(m) + pd.Timedelta(seconds=1) if m is not None else pd.Timestamp("1970-01-01")

    def close(self) -> None:
        for kind, name in reversed(self._created):
            try:
                self.con.execute(f"DROP {kind} IF EXISTS {name}")
            except Exception:  # pragma: no cover - connection already closed
                pass
        self._created.clear()
        if self._own:
            self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(data, *, as_of=None) -> SqlSource:
    """Open ``data`` (Dataset, dict of DataFrames or SqlSource) as a :class:`SqlSource`.

    A SqlSource passed in is returned as it is when ``as_of`` matches (the
    caller keeps ownership); otherwise a new one is opened on its connection.
    """
    if isinstance(data, SqlSource):
        if as_of is None or (data.as_of is not None and pd.Timestamp(as_of) == data.as_of):
            return _Borrowed(data)
        raise FraudkitError("open the SqlSource with the as_of you need; it cannot be re-cut")
    if isinstance(data, dict):
        con = duckdb_connection()
        con.execute("SET preserve_insertion_order=false")
        sources = {}
        for name, df in data.items():
            if name in TABLES and df is not None:
                rel = f"src_{name}"
                con.register(rel, df)
                sources[name] = rel
        return SqlSource(con, sources, as_of=as_of, own=True)
    if hasattr(data, "table") and hasattr(data, "has"):
        raw = getattr(getattr(data, "con", None), "con", None)
        sources = {}
        if raw is not None:
            for name in TABLES:
                if data.has(name):
                    sources[name] = quote(data.view(name))
            return SqlSource(raw, sources, as_of=as_of, own=False, columns=getattr(data, "memo", None))
        frames = {name: data.to_pandas(name) for name in TABLES if data.has(name)}
        return open_source(frames, as_of=as_of)
    raise TypeError(f"expected a fraudkit Dataset or a dict of DataFrames, got {type(data).__name__}")


class _Borrowed(SqlSource):
    """A SqlSource handed to a function by its owner: closing it is a no-op."""

    def __init__(self, inner: SqlSource):  # noqa: D107 - share state, do not re-create views
        self.__dict__.update(inner.__dict__)
        self._inner = inner

    def temp_table(self, stem, sql):
        return self._inner.temp_table(stem, sql)

    def close(self):
        pass
