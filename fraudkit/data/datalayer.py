"""Two ibis transforms (daily counts, distinct counts) run on DuckDB or on Spark through ibis's Spark backend.

The kit's own transforms are SQL in DuckDB's dialect run through :mod:`fraudkit.data.engine` (transpiled to
Spark SQL by sqlglot); this module keeps the ibis route for analysts who write ibis expressions.

DuckDB is embedded and handles the ``large`` scenario (20M interactions) on
one machine; when data outgrows one machine the same ibis expressions run on
a Spark cluster. See ``docs/data-layer.md`` for the design and the version pins.

Typical use::

    con = connect()                                  # DuckDB, in memory
    t = register(con, {"interactions": "data/interactions.parquet"})
    execute(daily_counts(t["interactions"]))          # pandas

    con = connect("spark", spark=spark_session())    # the same on Spark
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraudkit.data.connection import ibis_connection
from fraudkit.data.engine import spark_session  # re-exported: the one way the kit starts a local session
from fraudkit.errors import FraudkitError, MissingInputError

__all__ = ["connect", "register", "daily_counts", "distinct_counts", "execute", "spark_session", "window_seconds"]

_BACKENDS = ("duckdb", "spark")


def connect(backend: str = "duckdb", *, spark=None):
    """Open an ibis backend.

    Parameters
    ----------
    backend : {"duckdb", "spark"}, default="duckdb"
        ``duckdb`` is an in-memory embedded database; ``spark`` wraps a
        SparkSession (``spark`` or a new local one from :func:`spark_session`).
    spark : pyspark.sql.SparkSession or None, default=None
        Session to use for the Spark backend.

    Returns
    -------
    ibis.BaseBackend

    Examples
    --------
    >>> connect().name
    'duckdb'
    """
    import ibis

    if backend == "duckdb":
        if spark is not None:
            raise FraudkitError("spark= is only used with backend='spark'")
        return ibis_connection()
    if backend == "spark":
        return ibis.pyspark.connect(spark if spark is not None else spark_session())
    raise FraudkitError(f"unknown backend {backend!r}; choose one of {', '.join(_BACKENDS)}")


def register(con, tables) -> dict:
    """Make tables available on a backend; return ibis table expressions by name.

    Parameters
    ----------
    con : ibis.BaseBackend
        From :func:`connect`.
    tables : dict of str to (pandas.DataFrame, pyarrow.Table, path-like or ibis.Table)
        In-memory frames are registered without copying on DuckDB and sent
        through Arrow on Spark (which keeps nullable integer columns intact);
        a path to ``.parquet`` / ``.csv`` (or a folder of Parquet parts) is
        read lazily by the backend; an ibis table is passed through.

    Returns
    -------
    dict of str to ibis.Table

    Examples
    --------
    >>> con = connect()
    >>> t = register(con, {"x": pd.DataFrame({"a": [1, 2]})})
    >>> int(t["x"].count().execute())
    2
    """
    import ibis
    import pyarrow as pa

    out = {}
    for name, obj in tables.items():
        if isinstance(obj, ibis.Table):
            out[name] = obj
        elif isinstance(obj, (str, Path)):
            out[name] = _read_path(con, name, Path(obj))
        elif isinstance(obj, (pd.DataFrame, pa.Table)):
            if con.name == "duckdb":
                con.con.register(name, obj)
            elif con.name == "pyspark":
                arrow = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
                con._session.createDataFrame(arrow).createOrReplaceTempView(name)
            else:
                con.create_table(name, obj, overwrite=True)
            out[name] = con.table(name)
        else:
            raise FraudkitError(f"table {name!r}: expected a DataFrame, a pyarrow Table, a path or an ibis "
                                f"table, got {type(obj).__name__}")
    return out


def daily_counts(interactions, *, key: str = "account_id", by: str = "action", time_column: str = "ts"):
    """Actions per entity and calendar day: the base of rhythm and burst features.

    Parameters
    ----------
    interactions : ibis.Table
        Any event table with ``key``, ``by`` and ``time_column``.
    key : str, default="account_id"
        Entity column.
    by : str or None, default="action"
        Category column counted separately; ``None`` counts all events.
    time_column : str, default="ts"
        Event time (naive platform-local timestamp).

    Returns
    -------
    ibis.Table
        Columns ``key``, ``day`` (date), ``by`` (when given), ``n`` (int64).
        Rows whose ``key`` is null have no entity and are not counted.

    Examples
    --------
    >>> con = connect()
    >>> t = register(con, {"i": pd.DataFrame({"account_id": [1, 1, 2], "action": ["like"] * 3,
    ...                                       "ts": pd.to_datetime(["2024-03-01 08:00", "2024-03-01 23:00",
    ...                                                             "2024-03-02 01:00"])})})["i"]
    >>> execute(daily_counts(t))["n"].tolist()
    [2, 1]
    """
    _require(interactions, [key, time_column] + ([by] if by else []), "daily_counts")
    t = interactions.filter(interactions[key].notnull())
    groups = [t[key], t[time_column].date().name("day")] + ([t[by]] if by else [])
    return t.group_by(groups).agg(n=t.count())


def distinct_counts(table, key: str, other: str, *, window=None, time_column: str = "ts"):
    """Distinct ``other`` values per ``key`` (accounts per device, devices per account, accounts per IP...).

    Parameters
    ----------
    table : ibis.Table
        Event table (interactions, logins, orders, coupon claims).
    key : str
        Entity column counted for, e.g. ``"device_id"``.
    other : str
        Column whose distinct values are counted, e.g. ``"account_id"``.
    window : str, pandas.Timedelta, int or None, default=None
        ``None`` counts over the whole table; otherwise tumbling windows
        aligned on the Unix epoch (``"1D"``, ``"1h"``, ``"7D"``; an int is days).
    time_column : str, default="ts"
        Event time, used with ``window``.

    Returns
    -------
    ibis.Table
        Columns ``key``, ``window_start`` (timestamp, with ``window``),
        ``n_<other>`` (int64). Rows with a null ``key`` are not counted (no
        entity); null ``other`` values are not a distinct value.

    Examples
    --------
    >>> con = connect()
    >>> t = register(con, {"l": pd.DataFrame({"device_id": [7, 7, 7, 8], "account_id": [1, 2, 2, 3]})})["l"]
    >>> execute(distinct_counts(t, "device_id", "account_id")).values.tolist()
    [[7, 2], [8, 1]]
    """
    _require(table, [key, other] + ([time_column] if window is not None else []), "distinct_counts")
    t = table.filter(table[key].notnull())
    groups = [t[key]]
    if window is not None:
        width = window_seconds(window)
        start = ((t[time_column].epoch_seconds() // width) * width).as_timestamp("s").cast("timestamp")
        groups.append(start.name("window_start"))
    return t.group_by(groups).agg(**{f"n_{other}": t[other].nunique()})


def execute(expr, *, sort: bool = True, limit: int | None = None) -> pd.DataFrame:
    """Run an ibis expression and return pandas with the same dtypes on every backend.

    Parameters
    ----------
    expr : ibis.Table
    sort : bool, default=True
        Sort rows by every column (backends return groups in any order) and
        reset the index, so results compare equal across backends.
    limit : int or None, default=None
        At most this many rows.

    Returns
    -------
    pandas.DataFrame
        Dates and timestamps as ``datetime64[ns]``.
    """
    df = (expr.limit(limit) if limit is not None else expr).to_pandas()
    odd = [c for c, t in df.dtypes.items() if str(t).startswith("datetime64") and str(t) != "datetime64[ns]"]
    if odd:
        df = df.astype({c: "datetime64[ns]" for c in odd})
    if sort and len(df.columns):
        df = df.sort_values(list(df.columns), kind="stable").reset_index(drop=True)
    return df


def window_seconds(window) -> int:
    """Width of a window in whole seconds (``"1D"``, ``"6h"``, ``pd.Timedelta`` or an int of days).

    Examples
    --------
    >>> window_seconds("1D"), window_seconds("6h"), window_seconds(7)
    (86400, 21600, 604800)
    """
    if isinstance(window, bool):
        raise FraudkitError(f"window must be a duration such as '1D', got {window!r}")
    if isinstance(window, int):
        width = pd.Timedelta(days=window)
    else:
        try:
            width = pd.Timedelta(window)
        except (ValueError, TypeError):
            raise FraudkitError(f"window must be a duration such as '1D', '6h' or 7 (days), got {window!r}") from None
    seconds = width.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise FraudkitError(f"window must be a positive whole number of seconds, got {window!r}")
    return int(seconds)


# --- private helpers ---------------------------------------------------------


def _require(table, columns, what) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MissingInputError(f"{what} needs column(s) {', '.join(map(repr, missing))}; "
                                f"the table has {', '.join(table.columns)}")


def _read_path(con, name: str, path: Path):
    if not path.exists():
        raise FraudkitError(f"table {name!r}: {path} does not exist")
    parts = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not parts:
        raise FraudkitError(f"table {name!r}: the folder {path} holds no .parquet files")
    if path.suffix == ".csv" or path.name.endswith(".csv.gz"):
        return con.read_csv(str(path), table_name=name)
    if path.suffix == ".parquet" or path.is_dir():
        return con.read_parquet(str(path), table_name=name)
    raise FraudkitError(f"table {name!r}: {path.name} is neither .parquet, .csv nor a folder of Parquet parts")
