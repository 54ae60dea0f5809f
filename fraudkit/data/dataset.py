"""Load and validate a dataset folder: :func:`load_dataset`, :func:`validate_dataset`, :class:`Dataset`.

A dataset is a folder with one file per contract table (:mod:`fraudkit.data.contract`):
``<table>.parquet``, ``<table>.csv`` (or ``.csv.gz``), or a folder ``<table>/`` of
Parquet (or CSV) parts. Other files are ignored; extra columns are kept.

Nothing is loaded into pandas: every table becomes a typed DuckDB view over
its files (``read_parquet`` / ``read_csv``), checked by
:mod:`fraudkit.data.validation`, and exposed as an ibis table expression. So a
20M-row interactions table costs a few scans at load time and no memory.

With ``engine="spark"`` (or :meth:`Dataset.from_spark` for tables already in Spark) the same checks run on a
SparkSession and the typed views are Spark temporary views (:mod:`fraudkit.data.engine`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from fraudkit.data.connection import QUERY_LOCK, ibis_connection
from fraudkit.data.contract import LABEL_TABLE, TABLES
from fraudkit.data.engine import DuckDBEngine, SparkEngine, open_engine, quote
from fraudkit.data.validation import CheckedTables, TableSource, ValidationReport, check_tables
from fraudkit.errors import DataValidationError, FraudkitError, MissingInputError, ValidationIssue

__all__ = ["Dataset", "load_dataset", "validate_dataset", "read_table", "table_path", "find_table_files",
           "dataset_fingerprint", "canonical_sort_keys", "sort_canonical", "transform_engine"]

_ALL_TABLES = (*TABLES, LABEL_TABLE.name)


def read_table(data, name, columns=None, *, required=False):
    """One table as pandas, from a dataset folder, a :class:`Dataset` or a dict of DataFrames; ``None``
    when the table is absent. The one reader of dataset tables.

    Parameters
    ----------
    data : path-like, Dataset or dict of str to DataFrame
        A folder is read by the loader itself (:func:`load_dataset` with
        ``validate=False``, this table only): the same file, delimiter, null
        tokens and column types as every command, so the same bytes mean the
        same thing in a notebook; a dict's frames are not copied unless
        ``columns`` selects some.
    name : str
        Table name.
    columns : list of str or None, default=None
        Columns to return (all when None). Without ``required``, only those
        the table has are kept, so that a dataset lacking an optional column
        still runs (partial data).
    required : bool, default=False
        Raise when the table exists but lacks one of ``columns``.

    Returns
    -------
    pandas.DataFrame or None

    Raises
    ------
    MissingInputError
        ``required=True`` and a listed column is missing (names the table and the columns).
    DataValidationError
        The folder's file for the table cannot be read as a table (names the file and the fix).

    Examples
    --------
    >>> import pandas as pd
    >>> read_table({"orders": pd.DataFrame({"order_id": [1], "ts": [0]})}, "orders", ["order_id", "ip"]).columns.tolist()
    ['order_id']
    >>> read_table({}, "orders", ["order_id"]) is None
    True
    >>> read_table({"orders": pd.DataFrame({"order_id": [1]})}, "orders", ["order_id", "ip"], required=True)
    Traceback (most recent call last):
    ...
    fraudkit.errors.MissingInputError: orders: missing column(s) ip; got order_id. Fix: pass a table with those columns (see fraudkit.data.contract).
    """
    if isinstance(data, (str, os.PathLike)):
        return _read_folder_table(Path(data), name, columns, required)
    if isinstance(data, dict):
        t = data.get(name)
        have = None if t is None else list(t.columns)
    else:
        t = None
        have = list(data.table(name).columns) if data.has(name) else None
    if have is None:
        return None
    keep = _kept_columns(name, have, columns, required)
    if t is None:  # a Dataset: read only what is kept
        return data.to_pandas(name, columns=keep)
    return t if keep is None else t[keep]


def table_path(data_dir, name: str) -> Path | None:
    """The file of table ``name`` in a dataset folder (``.parquet`` preferred, then ``.csv``), or None."""
    for ext in (".parquet", ".csv"):
        p = Path(data_dir) / f"{name}{ext}"
        if p.exists():
            return p
    d = Path(data_dir) / name  # a partitioned Parquet folder
    return d if d.is_dir() and any(d.glob("*.parquet")) else None


class Dataset:
    """A validated dataset: typed, lazy views of its tables on one DuckDB connection (or one Spark session).

    Build it with :func:`load_dataset` (a folder), :meth:`from_tables`
    (DataFrames in memory) or :meth:`from_spark` (tables or DataFrames of a
    SparkSession). Attributes are read-only.

    Attributes
    ----------
    path : pathlib.Path or None
        The folder (None for in-memory tables).
    fingerprint : str
        16 hex digits identifying the content (see :func:`dataset_fingerprint`).
    tables : tuple of str
        Contract tables present, in contract order (``labels`` included).
    report : ValidationReport
        What validation found (row counts, quarantined rows).
    con : ibis.backends.duckdb.Backend
        The ibis DuckDB backend; ``con.con`` is the raw DuckDB connection (DuckDB datasets only).
    engine : fraudkit.data.engine.Engine
        Where the views live: ``engine.name`` is ``"duckdb"`` or ``"spark"``; SQL in DuckDB's dialect runs on
        either through it.

    Examples
    --------
    >>> import pandas as pd
    >>> ds = Dataset.from_tables({
    ...     "accounts": pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                               "register_channel": ["app", "web"], "phone": [None, "13812345678"]}),
    ...     "interactions": pd.DataFrame({"event_id": [10], "ts": pd.to_datetime(["2024-01-02 08:00"]),
    ...                                   "account_id": [1], "device_id": [None], "ip": ["10.0.0.1"],
    ...                                   "action": ["like"], "target_id": [5]})})
    >>> ds.tables
    ('accounts', 'interactions')
    >>> ds.sql("select count(*) as n from interactions")["n"].tolist()
    [1]
    """

    __slots__ = ("_path", "_fingerprint", "_checked", "_con", "_frames", "_engine", "_ibis_tables", "_memo", "_twin")

    def __init__(self, *, path, fingerprint, checked: CheckedTables, con, frames=None, engine=None, twin=None):
        object.__setattr__(self, "_path", None if path is None else Path(path))
        object.__setattr__(self, "_fingerprint", fingerprint)
        object.__setattr__(self, "_checked", checked)
        object.__setattr__(self, "_con", con)
        object.__setattr__(self, "_frames", frames)  # keeps registered DataFrames alive
        object.__setattr__(self, "_engine", engine if engine is not None else DuckDBEngine(con.con))
        object.__setattr__(self, "_ibis_tables", {})  # name -> ibis table: Ibis asks DuckDB for the schema each time
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_twin", twin)  # the Spark dataset a local copy was made from

    def __setattr__(self, name, value):
        raise AttributeError("a Dataset is read-only; build a new one with load_dataset or Dataset.from_tables")

    @classmethod
    def from_tables(cls, tables, *, validate=True, quarantine=None, now=None, fingerprint=None) -> "Dataset":
        """Build a Dataset from in-memory tables (pandas DataFrames or pyarrow Tables).

        Parameters
        ----------
        tables : dict of str to DataFrame
            Contract table name -> rows. The frames are registered, not copied
            and never modified. ``None`` values are skipped.
        validate, quarantine, now
            As in :func:`load_dataset`.
        fingerprint : str, optional
            What identifies the content, when the caller derives the tables from fingerprinted data (e.g. a
            time slice of a dataset with the analyst's labels); None otherwise.

        Raises
        ------
        FraudkitError
            A key is not a contract table name.
        DataValidationError
            The tables break the contract.
        """
        _check_table_names(tables)
        frames = {n: df for n, df in tables.items() if df is not None}
        con = _connect()
        sources = {}
        for name, df in frames.items():
            con.con.register(f"_df_{name}", df)
            con.con.execute(f'CREATE TABLE "_mem_{name}" AS SELECT * FROM "_df_{name}"')
            con.con.unregister(f"_df_{name}")
            sources[name] = TableSource(name, f"{name} (in memory)", f'"_mem_{name}"')
        checked = check_tables(con.con, sources, path="<memory>", quarantine=quarantine, now=now, validate=validate)
        checked.report.raise_for_issues()
        return cls(path=None, fingerprint=fingerprint, checked=checked, con=con, frames=frames)

    from_frames = from_tables

    @classmethod
    def from_spark(cls, spark, tables, *, validate=True, quarantine=None, now=None, fingerprint=None) -> "Dataset":
        """Build a Dataset from tables that live in Spark: the same contract, checks and typed views, on Spark.

        Parameters
        ----------
        spark : pyspark.sql.SparkSession
            The session holding the tables (never stopped by the Dataset).
        tables : dict of str to (pyspark.sql.DataFrame or str)
            Contract table name -> a Spark DataFrame, or the name of a table in the session's catalog
            (``"warehouse.orders"``). Spark ``TIMESTAMP`` columns are read as wall-clock times of
            ``spark.sql.session.timeZone`` (set it to the platform's local zone). ``None`` values are skipped.
        validate, quarantine, now
            As in :func:`load_dataset` (rejected rows are gathered on the driver and written as Parquet).
        fingerprint : str, optional
            What identifies the content; by default a hash of every table's name, columns, types, row count
            and an order-free sum of row hashes (one more scan, on first use).

        Returns
        -------
        Dataset
            ``ds.engine.name == "spark"``; :meth:`table` gives Spark DataFrames of the typed views,
            :meth:`sql` runs DuckDB-dialect SQL transpiled to Spark SQL, :meth:`to_pandas` gathers a table.

        Raises
        ------
        FraudkitError
            A key is not a contract table name, or a value is neither a DataFrame nor a table name.
        DataValidationError
            The tables break the contract.
        """
        _check_table_names(tables)
        engine = SparkEngine(spark)
        sources = {name: TableSource(name, f"{name} (Spark)", engine.register(f"_mem_{name}", obj))
                   for name, obj in tables.items() if obj is not None}
        checked = check_tables(engine, sources, path="<spark>", quarantine=quarantine, now=now, validate=validate)
        checked.report.raise_for_issues()
        return cls(path=None, fingerprint=fingerprint, checked=checked, con=None, engine=engine)

    @property
    def path(self):
        return self._path

    @property
    def engine(self):
        return self._engine

    @property
    def transform_dataset(self) -> "Dataset":
        """Where this dataset's table transforms run: the Spark dataset a local copy was made from
        (:meth:`to_local`), else the dataset itself. :func:`fraudkit.data.sqlsource.open_source` opens it."""
        return self._twin if self._twin is not None else self

    def to_local(self) -> "Dataset":
        """The same typed tables on an embedded DuckDB connection, for the steps that need them in memory.

        On DuckDB the dataset itself. On Spark, each table's rows are written as Parquet by Spark's tasks (in a
        temporary folder, removed once read) and read into a DuckDB table of the view's name, sorted there in
        their canonical order (:func:`canonical_sort_keys`, so that the copy does not follow Spark's
        partitioning), once; the copy has the same path, fingerprint and validation
        report, and keeps this dataset as :attr:`transform_dataset`, so that the feature SQL
        (:mod:`fraudkit.data.sqlsource`) still runs on Spark while rules, decisions and the steps written
        for DuckDB read the copy.

        Returns
        -------
        Dataset
        """
        if self._con is not None:
            return self
        con = _connect()
        try:
            with tempfile.TemporaryDirectory(prefix="fraudkit-local-") as tmp:
                for name, view in self._checked.views.items():
                    cols = list(self._engine.columns(quote(view)))
                    keys = canonical_sort_keys(name, cols)
                    order = f" ORDER BY {', '.join(quote(k) + ' NULLS LAST' for k in keys)}" if keys else ""
                    # Spark writes the rows as Parquet where they are; DuckDB reads and sorts them (a global
                    # sort on Spark and a gather through the driver cost more and hold the table in the JVM)
                    files = self._engine.export_parquet(f"SELECT * FROM {quote(view)}", Path(tmp) / view)
                    if not files:  # no part file for an empty table: its schema through Arrow
                        con.con.register("_fk_arrow", self._engine.to_arrow(f"SELECT * FROM {quote(view)}"))
                    source = (f"read_parquet([{', '.join(_lit(f) for f in files)}])" if files else "_fk_arrow")
                    con.con.execute(f"CREATE TABLE {quote(view)} AS SELECT * FROM {source}{order}")
                    if not files:
                        con.con.unregister("_fk_arrow")
                    shutil.rmtree(Path(tmp) / view, ignore_errors=True)
                    if view != name:  # ds.sql("... FROM accounts") reads the table by its name, as on DuckDB
                        con.con.execute(f"CREATE VIEW {quote(name)} AS SELECT * FROM {quote(view)}")
        except BaseException:
            con.disconnect()
            raise
        return Dataset(path=self._path, fingerprint=self.fingerprint, checked=self._checked, con=con, twin=self)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:  # in-memory tables: hashed on first use, not at load time
            fp = (_frames_fingerprint(self._frames) if self._engine.name == "duckdb"
                  else _spark_fingerprint(self._engine, self._checked.views))
            object.__setattr__(self, "_fingerprint", fp)
        return self._fingerprint

    @property
    def memo(self) -> dict:
        """Results derived from the tables alone, kept for the dataset's life (its views never change): a run's
        stages that need the same derived table (e.g. how each shared IP is used) compute it once. Keys name
        the function and its parameters; values are never handed out to be modified."""
        return self._memo

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(n for n in _ALL_TABLES if n in self._checked.views)

    @property
    def report(self) -> ValidationReport:
        return self._checked.report

    @property
    def con(self):
        if self._con is None:
            raise FraudkitError("this dataset lives in Spark: it has no DuckDB connection; use ds.engine, "
                                "ds.sql(...) or ds.table(name) (a Spark DataFrame)")
        return self._con

    @property
    def labels(self):
        """The labels table as pandas, or None. Only evaluation may read it."""
        return self.to_pandas(LABEL_TABLE.name) if self.has(LABEL_TABLE.name) else None

    def has(self, name: str) -> bool:
        """Whether the table is present."""
        return name in self._checked.views

    def table(self, name: str):
        """The table as a lazy ibis expression (typed, clean rows only); a Spark DataFrame on Spark.

        Raises
        ------
        MissingInputError
            The table is not in the dataset.
        """
        if not self.has(name):
            raise MissingInputError(f"the dataset {self._where()} has no {name!r} table "
                                    f"(present: {', '.join(self.tables) or 'none'}); add {name}.parquet to use it")
        if self._con is None:
            return self._engine.spark.table(self._checked.views[name])
        cached = self._ibis_tables.get(name)
        if cached is None:  # an ibis table is an immutable expression over a view that never changes: build it once
            with QUERY_LOCK:  # Ibis asks the connection for the view's schema
                cached = self._ibis_tables[name] = self._con.table(self._checked.views[name])
        return cached

    def count(self, name: str) -> int:
        """Rows in the table's view (after quarantine)."""
        if self._con is None:
            return int(self._engine.row(f"SELECT count(*) FROM {quote(self.view(name))}")[0])
        expr = self.table(name).count()
        with QUERY_LOCK:
            return int(expr.execute())

    def schema(self, name: str) -> dict:
        """Column -> type of the table's view (ibis type names on DuckDB; DuckDB type names on Spark)."""
        if self._con is None:
            return self._engine.columns(quote(self.view(name)))
        return {k: str(v) for k, v in self.table(name).schema().items()}  # the cached table's: no query

    def to_pandas(self, name: str, columns=None):
        """Materialise a table (or some of its columns) as a pandas DataFrame.

        Parameters
        ----------
        name : str
            Table name.
        columns : list of str or None, default=None
            Columns to read (all when None).

        Rows come in one canonical order whatever the order of the file: by the table's time column, then
        by every other column read (rows equal in all of them are interchangeable), so no result follows
        the order in which an export happened to write its rows.
        """
        t = self.table(name)
        have = list(t.columns)
        if columns is not None:
            missing = [c for c in columns if c not in have]
            if missing:
                raise MissingInputError(f"table {name!r} of {self._where()} has no column(s) "
                                        f"{', '.join(map(repr, missing))}; columns: {', '.join(have)}")
        if self._con is None:
            cols = list(columns) if columns is not None else have
            keys = canonical_sort_keys(name, cols)
            order = f" ORDER BY {', '.join(quote(k) + ' NULLS LAST' for k in keys)}" if keys else ""
            return self._engine.to_pandas(f"SELECT {', '.join(quote(c) for c in cols)} "
                                          f"FROM {quote(self.view(name))}{order}")
        if columns is not None:
            t = t.select(list(columns))
        keys = canonical_sort_keys(name, list(t.columns))
        with QUERY_LOCK:
            frame = t.order_by(keys).to_pandas() if keys else t.to_pandas()
        return ns_timestamps(frame)

    def sql(self, query: str):
        """Run SQL in DuckDB's dialect on the dataset (tables are views by name; transpiled on Spark); pandas."""
        if self._con is None:
            return self._engine.to_pandas(query)
        with QUERY_LOCK:
            frame = self._con.sql(query).to_pandas()
        return ns_timestamps(frame)

    def view(self, name: str) -> str:
        """Name of the typed DuckDB view of a table on :attr:`con` (for SQL that transforms the table)."""
        if not self.has(name):
            raise MissingInputError(f"the dataset {self._where()} has no {name!r} table")
        return self._checked.views[name]

    def with_views(self, views: dict) -> "Dataset":
        """The same dataset with some tables read from other views of its connection (e.g. resolved keys).

        ``views`` maps a table name to the name of a view or table on :attr:`con` with the table's columns;
        the new Dataset shares the connection, the validation report and the fingerprint (the caller derives
        the views from the data deterministically).
        """
        unknown = [n for n in views if not self.has(n)]
        if unknown:
            raise MissingInputError(f"with_views: the dataset has no {', '.join(map(repr, unknown))} table")
        checked = CheckedTables(report=self._checked.report, views={**self._checked.views, **views},
                                types=self._checked.types)
        # a local copy's new views are not on its Spark dataset: its transforms then run on the copy
        return Dataset(path=self._path, fingerprint=self.fingerprint, checked=checked, con=self._con,
                       frames=self._frames, engine=self._engine)

    def close(self) -> None:
        """Close the DuckDB connection (a Spark session is left running: it may be the caller's)."""
        if self._con is not None:
            self._con.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        counts = self.report.counts
        parts = ", ".join(f"{t}={counts.get(t, 0) - self.report.rejected.get(t, 0):,}" for t in self.tables)
        return f"Dataset({self._where()}, fingerprint={self.fingerprint}, {parts})"

    def _where(self) -> str:
        return str(self._path) if self._path is not None else "<memory>"


def transform_engine(data) -> str | None:
    """``"duckdb"`` or ``"spark"``: where a dataset's table transforms run (its :attr:`Dataset.transform_dataset`'s
    engine); ``None`` for a dict of frames.

    Examples
    --------
    >>> transform_engine({}) is None
    True
    """
    return getattr(getattr(getattr(data, "transform_dataset", None), "engine", None), "name", None)


def canonical_sort_keys(name: str, columns) -> list:
    """The columns that put a table's rows in their canonical order: its time column, then the others.

    Every reader of dataset tables sorts by these, so results never follow the order of the rows in a file.

    Examples
    --------
    >>> canonical_sort_keys("interactions", ["account_id", "ts", "action"])
    ['ts', 'account_id', 'action']
    """
    spec = LABEL_TABLE if name == LABEL_TABLE.name else TABLES.get(name)
    first = [spec.time_column] if spec is not None and spec.time_column in columns else []
    return first + [c for c in columns if c not in first]


def sort_canonical(df, name: str):
    """A frame's rows in the canonical order of :func:`canonical_sort_keys`, as :meth:`Dataset.to_pandas` gives.

    For tables held as frames (a dict of DataFrames), so that they run exactly as the same rows loaded from a
    folder. Nulls sort last; categorical columns sort by value, not by category order.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"account_id": ["b", "a", "a"], "ts": pd.to_datetime(["2024-01-02", "2024-01-02",
    ...                   "2024-01-01"])})
    >>> sort_canonical(f, "interactions")["account_id"].tolist()
    ['a', 'a', 'b']
    """
    import pandas as pd

    keys = canonical_sort_keys(name, list(df.columns))
    if not keys or len(df) < 2:
        return df

    def plain(c):
        return c.astype(object) if isinstance(c.dtype, pd.CategoricalDtype) else c

    return df.sort_values(keys, kind="stable", na_position="last", key=plain, ignore_index=True)


def load_dataset(path, *, validate=True, quarantine=None, tables=None, now=None, engine="duckdb",
                 spark=None) -> Dataset:
    """Open a dataset folder, check it against the contract, return a :class:`Dataset`.

    Parameters
    ----------
    path : path-like
        Folder with one file (or Parquet folder) per table.
    validate : bool, default=True
        Run the row-level checks (types, nulls, keys, references, ranges).
        ``False`` checks only the files and their schema; the views then use
        strict casts, so bad values fail loudly when queried.
    quarantine : path-like or None, default=None
        Without it any problem raises. With it, rows that break a row-level
        rule are written to ``<quarantine>/<table>.parquet`` (``_reason``
        column) and left out of the views; table- and column-level problems
        still raise.
    tables : list of str or None, default=None
        Load only these tables (foreign keys into tables not loaded are not checked).
    now : datetime or None, default=None
        Wall clock for the timestamp range rule (default: now).
    engine : {"duckdb", "spark"} or Engine, default="duckdb"
        Where the checks run and the views live; ``"spark"`` uses ``spark`` or a local session
        (:func:`fraudkit.data.engine.spark_session`).
    spark : pyspark.sql.SparkSession or None, default=None
        The session for ``engine="spark"``.

    Returns
    -------
    Dataset

    Raises
    ------
    DataValidationError
        Lists every problem found: file, column, example value, row count, fix.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> pd.DataFrame({"account_id": [1], "registered_at": ["2024-01-01 09:00:00"],
    ...               "register_channel": ["app"], "phone": [""]}).to_csv(f"{d}/accounts.csv", index=False)
    >>> pd.DataFrame({"event_id": [1], "ts": ["2024-01-02 10:00:00"], "account_id": [1], "device_id": [""],
    ...               "ip": ["10.0.0.1"], "action": ["like"], "target_id": [7]}).to_csv(f"{d}/interactions.csv",
    ...                                                                               index=False)
    >>> ds = load_dataset(d)
    >>> ds.schema("interactions")["ts"], ds.schema("interactions")["event_id"]
    ('timestamp(6)', 'int64')
    """
    path = Path(path)
    if engine != "duckdb":
        eng = open_engine(engine, spark=spark)
        if isinstance(eng, SparkEngine):
            # the dataset's views are named by table: in a session of its own, a second dataset loaded in the
            # same process (the training data of a run) cannot replace them (one SparkContext, shared)
            eng = SparkEngine(eng.spark.newSession())
        checked, files = _check_folder(eng, path, validate=validate, quarantine=quarantine, tables=tables, now=now)
        checked.report.raise_for_issues()
        return Dataset(path=path, fingerprint=_files_fingerprint(files, root=path), checked=checked, con=None,
                       engine=eng)
    con = _connect()
    try:
        checked, files = _check_folder(DuckDBEngine(con.con), path, validate=validate, quarantine=quarantine,
                                       tables=tables, now=now)
        checked.report.raise_for_issues()
    except BaseException:
        con.disconnect()
        raise
    return Dataset(path=path, fingerprint=_files_fingerprint(files, root=path), checked=checked, con=con)


def validate_dataset(path, *, quarantine=None, now=None, engine="duckdb", spark=None,
                     master=None) -> ValidationReport:
    """Check a dataset folder against the contract without raising.

    Parameters
    ----------
    path : path-like
        Dataset folder.
    quarantine : path-like or None, default=None
        Write rejected rows here (see :func:`load_dataset`); the report counts them.
    now : datetime or None, default=None
        Wall clock for the timestamp range rule.
    engine : {"duckdb", "spark"} or Engine, default="duckdb"
        Where the checks run: the same SQL, the same findings (``spark`` transpiles it to Spark SQL).
    spark : pyspark.sql.SparkSession or None, default=None
        For ``engine="spark"``: the session; ``None`` starts one (``master``, default ``local[2]``).
    master : str or None, default=None
        For ``engine="spark"`` without ``spark``: the master URL (``spark://host:7077``, ``yarn``...).

    Returns
    -------
    ValidationReport
        ``.ok`` is False when the data cannot be loaded; ``.describe()`` lists
        every problem.

    Examples
    --------
    >>> import tempfile
    >>> report = validate_dataset(tempfile.mkdtemp())
    >>> report.ok, report.issues[0].problem
    (False, 'missing required table accounts')
    """
    if engine != "duckdb":
        eng = open_engine(engine, spark=spark, master=master)
        checked, _ = _check_folder(eng, Path(path), validate=True, quarantine=quarantine, tables=None, now=now)
        return checked.report
    con = _connect()
    try:
        checked, _ = _check_folder(DuckDBEngine(con.con), Path(path), validate=True, quarantine=quarantine,
                                   tables=None, now=now)
    finally:
        con.disconnect()
    return checked.report


def find_table_files(path) -> tuple[dict, list]:
    """Find the file(s) of each contract table in a folder.

    Returns
    -------
    found : dict of str to (TableSource, list of Path)
        Table name -> how to read it and the files it spans.
    issues : list of ValidationIssue
        Tables stored more than once (e.g. both ``orders.parquet`` and ``orders.csv``).
    """
    path = Path(path)
    if not path.is_dir():
        raise FraudkitError(f"{path} is not a folder; a dataset is a folder with one file per table")
    found, issues = {}, []
    for name in _ALL_TABLES:
        options = []
        for suffix, text in ((".parquet", False), (".csv", True), (".csv.gz", True)):
            f = path / f"{name}{suffix}"
            if f.is_file():
                reader = "read_csv" if text else "read_parquet"
                options.append((TableSource(name, f.name, f"{reader}({_lit(f)}{_opts(text)})", text), [f]))
        folder = path / name
        if folder.is_dir():
            parts = _parts(folder, "*.parquet")
            text = not parts
            parts = parts or _parts(folder, "*.csv", "*.csv.gz")
            if parts:
                reader = "read_csv" if text else "read_parquet"
                files = "[" + ", ".join(_lit(p) for p in parts) + "]"
                options.append((TableSource(name, f"{name}/", f"{reader}({files}{_opts(text)})", text), parts))
        if len(options) > 1:
            names = [o[0].file for o in options]
            issues.append(ValidationIssue(names[0], None, f"table {name} is stored more than once",
                                          ", ".join(names), "keep one file per table and remove the others"))
        if options:
            found[name] = options[0]
    return found, issues


def dataset_fingerprint(data, *, root=None) -> str:
    """Short content fingerprint of a dataset, cheap even for gigabytes: the one fingerprint of fraudkit.

    :attr:`Dataset.fingerprint`, run manifests and the report's run id all
    use it. A folder is fingerprinted through its contract table files (as
    :func:`load_dataset` finds them; other files such as ``manifest.json``
    are left out). Each file contributes its name and size with, for Parquet,
    its footer (schema, row counts, column statistics) and, for other files,
    their bytes (the first, middle and last 4 MiB beyond 64 MiB). File times
    are left out, so a copy, or the same scenario simulated again with the
    same seed, has the same fingerprint.

    Parameters
    ----------
    data : path-like or iterable of path-like
        A dataset folder, or the files to hash.
    root : path-like or None, default=None
        For a list of files: names are taken relative to it (default: the
        file names alone). A folder is its own root.

    Returns
    -------
    str
        16 hex digits.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> pd.DataFrame({"account_id": [1]}).to_csv(f"{d}/accounts.csv", index=False)
    >>> fp = dataset_fingerprint(d)
    >>> len(fp), fp == dataset_fingerprint([f"{d}/accounts.csv"], root=d)
    (16, True)
    """
    if isinstance(data, (str, os.PathLike)):
        found, _ = find_table_files(data)
        return _files_fingerprint([f for _, fs in found.values() for f in fs], root=Path(data))
    return _files_fingerprint(data, root=root)


# --- private helpers ---------------------------------------------------------


def _files_fingerprint(files, *, root=None) -> str:
    """sha256 over the files' names, sizes and footers (Parquet) or bytes; see :func:`dataset_fingerprint`."""
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        size = f.stat().st_size
        rel = f.relative_to(root).as_posix() if root is not None else f.name
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if f.suffix == ".parquet" and size >= 12:
                fh.seek(size - 8)
                n = int.from_bytes(fh.read(4), "little")
                fh.seek(max(0, size - 8 - n))
                h.update(fh.read())
            elif size <= 64 << 20:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            else:
                for offset in (0, size // 2, size - (4 << 20)):
                    fh.seek(offset)
                    h.update(fh.read(4 << 20))
    return h.hexdigest()[:16]


def _connect():
    return ibis_connection()


def _lit(p) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def _parts(folder: Path, *patterns) -> list[Path]:
    """Part files under a table folder, skipping hidden and bookkeeping files (``.x``, ``_SUCCESS``, ``_temporary/``)."""
    rel = lambda p: p.relative_to(folder).parts  # noqa: E731
    return sorted(p for pat in patterns for p in folder.rglob(pat)
                  if p.is_file() and not any(part.startswith((".", "_")) for part in rel(p)))


def _opts(text: bool) -> str:
    return ", header=true, all_varchar=true" if text else ", union_by_name=true"


def _check_folder(engine, path: Path, *, validate, quarantine, tables, now):
    found, issues = find_table_files(path)
    every = found
    if tables is not None:
        unknown = [t for t in tables if t not in _ALL_TABLES]
        if unknown:
            raise FraudkitError(f"unknown table(s) {', '.join(map(repr, unknown))}; "
                                f"contract tables: {', '.join(_ALL_TABLES)}")
        found = {n: v for n, v in found.items() if n in tables}
        required = [n for n in tables if n in TABLES and TABLES[n].required]
    else:
        required = None
    sources = {}
    for n, (src, fs) in found.items():
        sources[n], problem = _csv_source(engine, src, fs)
        issues = issues + ([problem] if problem else [])
    # tables not loaded still decide whether each entity's ids are integers or text
    peers = {n: _csv_source(engine, src, fs, materialise=False)[0] for n, (src, fs) in every.items()
             if n not in found}
    checked = check_tables(engine, sources, path=path, quarantine=quarantine, now=now, validate=validate,
                           required=required, issues=issues, peers=peers)
    files = [f for _, fs in found.values() for f in fs]
    return checked, files


def ns_timestamps(df):
    """Timestamps as datetime64[ns] whatever unit the backend returned (a new frame when needed)."""
    odd = [c for c, t in df.dtypes.items() if str(t).startswith("datetime64[") and str(t) != "datetime64[ns]"]
    return df.astype({c: "datetime64[ns]" for c in odd}) if odd else df


def _csv_source(engine, src: TableSource, files, *, materialise=True):
    """Read a CSV table with a pinned dialect, once, into a DuckDB temporary table of raw text.

    Returns the source and the problem of its header (a column named twice), or None.

    The header is the first line of the (first) file and the delimiter the
    most frequent of ``, ; TAB |`` in it. DuckDB's own sniffer is not used: on
    a ragged file it may pick a later line as the header and silently skip
    the rows above it; a pinned reader fails on the ragged row instead, and
    the validator reports it. The rows stay text so the validator can quote
    bad values and the quarantine keeps them as written. Each check and query
    would otherwise parse the file again; DuckDB spills the table to disk when
    memory runs short (for tens of millions of rows, Parquet is still the
    better input).
    """
    if not src.text:
        if engine.name == "duckdb":
            return src, None
        return TableSource(src.name, src.file, engine.parquet_relation(src.name, files)), None
    try:
        opener = gzip.open if files[0].name.endswith(".gz") else open
        with opener(files[0], "rt", encoding="utf-8-sig", newline="") as fh:
            line = fh.readline(1 << 20)
    except (OSError, UnicodeDecodeError):
        return src, None  # the validator reports the reader's own message
    delim = max(",;\t|", key=line.count)
    names = next(csv.reader([line.rstrip("\r\n")], delimiter=delim), [])
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return src, ValidationIssue(
            src.file, twice[0], f"the header names the column {twice[0]!r} {names.count(twice[0])} times",
            line.rstrip("\r\n")[:200], "keep one column of each name (rename or remove the copies)")
    if not names:
        return src, None
    relation = engine.csv_relation(src.name, files, delimiter=delim, names=names, materialise=materialise)
    return TableSource(src.name, src.file, relation, True), None


def _spark_fingerprint(engine, views) -> str:
    """sha256 over each Spark view's name, columns, types, row count and an order-free sum of row hashes."""
    h = hashlib.sha256()
    for name in sorted(views):
        view = views[name]
        n, total = engine.spark.sql(f"SELECT count(*), sum(CAST(xxhash64(*) AS DECIMAL(38, 0))) "
                                    f"FROM `{view}`").collect()[0]
        h.update(f"{name}\0{sorted(engine.columns(quote(view)).items())}\0{n}\0{total}\0".encode())
    return h.hexdigest()[:16]


def _frames_fingerprint(frames) -> str:
    import pandas as pd

    h = hashlib.sha256()
    for name in sorted(frames):
        df = frames[name]
        if not isinstance(df, pd.DataFrame):
            df = df.to_pandas()
        h.update(f"{name}\0{list(df.columns)}\0{list(map(str, df.dtypes))}\0{len(df)}\0".encode())
        try:
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        except TypeError:  # unhashable cells (lists, dicts): fall back to their text
            h.update(df.astype(str).to_csv(index=False).encode())
    return h.hexdigest()[:16]


def _kept_columns(name, have, columns, required):
    """The listed columns the table has (all when None); with ``required``, every listed one or raise."""
    if required and columns is not None:
        missing = [c for c in columns if c not in have]
        if missing:
            raise MissingInputError(f"{name}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, have))}. "
                                    f"Fix: pass a table with those columns (see fraudkit.data.contract).")
    return None if columns is None else [c for c in columns if c in have]


def _read_folder_table(folder: Path, name, columns, required):
    """One table of a folder through the loader (types, dialect and nulls as load_dataset reads them).

    A missing contract column is not an error here (partial data: the caller asks for the columns it
    needs); a file that cannot be read, or a header naming a column twice, is.
    """
    found, _ = find_table_files(folder)
    if name not in found:
        return None
    con = _connect()
    try:
        checked, _ = _check_folder(DuckDBEngine(con.con), folder, validate=False, quarantine=None, tables=[name],
                                   now=None)
        fatal = [i for i in checked.report.fatal if i.file == found[name][0].file and i.problem != "missing column"]
        if fatal:
            raise DataValidationError(fatal)
        if name not in checked.views:  # an optional table without rows is absent, as load_dataset sees it
            return None
        t = con.table(checked.views[name])
        keep = _kept_columns(name, list(t.columns), columns, required)
        t = t if keep is None else t.select(keep)
        keys = canonical_sort_keys(name, list(t.columns))  # the canonical row order, as Dataset.to_pandas
        return ns_timestamps((t.order_by(keys) if keys else t).to_pandas())
    finally:
        con.disconnect()


def _check_table_names(tables) -> None:
    """Refuse a key that is not a contract table name (naming it and the names allowed)."""
    unknown = [n for n in tables if n not in _ALL_TABLES]
    if unknown:
        raise FraudkitError(f"unknown table(s) {', '.join(map(repr, unknown))}; "
                            f"contract tables: {', '.join(_ALL_TABLES)}")
