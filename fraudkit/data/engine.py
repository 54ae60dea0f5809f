"""The engine a table transform runs on: SQL written once in DuckDB's dialect, run on DuckDB or on Spark.

fraudkit's table transforms are SQL in DuckDB's dialect. An :class:`Engine` runs that SQL where the data is:

* :class:`DuckDBEngine` (the default) runs it as written on an embedded DuckDB connection;
* :class:`SparkEngine` transpiles it to Spark SQL with sqlglot (:func:`to_spark`), runs it on a SparkSession
  over temporary views, and hands Python only what a step needs in memory (a few aggregate rows, or a frame
  through Arrow when asked).

Both offer the same small interface: ``rows`` / ``row`` (fetch), ``to_pandas`` / ``to_arrow``, ``create_view``
/ ``create_table`` / ``drop`` (named relations), ``columns`` (column -> DuckDB type name, whatever the engine),
``register`` (a frame, an Arrow table or a Spark DataFrame under a name), ``parquet_relation`` /
``csv_relation`` (files as a relation), ``write_parquet`` (a query to one Parquet file, atomically) and
``export_parquet`` (a query to Parquet files written where its rows are, nothing gathered).
See ``docs/data-layer.md`` for why SQL and sqlglot rather than Ibis expressions.

pyspark is optional (``pip install 'fraudkit[spark]'``): it is imported only inside the functions that need it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import sqlglot
from sqlglot import exp

from fraudkit.data.atomic import atomic_path
from fraudkit.data.connection import QUERY_LOCK, duckdb_connection, memory_limit_of
from fraudkit.errors import FraudkitError

__all__ = ["Engine", "DuckDBEngine", "SparkEngine", "ENGINES", "open_engine", "spark_session", "to_spark",
           "spark_type_name"]

ENGINES = ("duckdb", "spark")
"""The engines a table transform can run on."""
_POSITION = "_fk_position"
"""Column that carries a Spark row's position through Parquet (:meth:`SparkEngine.to_arrow`)."""


class Engine:
    """What every engine offers (see the module docstring). Subclasses implement each method."""

    name = "engine"

    def rows(self, query: str) -> list[tuple]:
        """Run a query (DuckDB dialect) and return every row as a tuple."""
        raise NotImplementedError

    def row(self, query: str) -> tuple:
        """The first row of a query (a query that returns exactly one, such as an aggregate)."""
        got = self.rows(query)
        return got[0] if got else None

    def execute(self, statement: str) -> None:
        """Run a statement that returns nothing (``CREATE ... VIEW``)."""
        raise NotImplementedError

    def to_arrow(self, query: str):
        """A query's rows as a pyarrow Table, on the driver."""
        raise NotImplementedError

    def to_pandas(self, query: str):
        """A query's rows as pandas, timestamps in nanoseconds (a block per column: no copy of same-typed columns into
        one)."""
        df = self.to_arrow(query).to_pandas(split_blocks=True)
        odd = [c for c, t in df.dtypes.items() if str(t).startswith("datetime64[") and str(t) != "datetime64[ns]"]
        return df.astype({c: "datetime64[ns]" for c in odd}) if odd else df

    def create_view(self, name: str, query: str) -> None:
        """A temporary view ``name`` over ``query`` (replaces one of the same name)."""
        self.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS {query}")

    def create_table(self, name: str, query: str) -> None:
        """A temporary, materialised relation ``name`` holding the rows of ``query``."""
        raise NotImplementedError

    def drop(self, name: str) -> None:
        """Remove a relation made by :meth:`create_table`."""
        raise NotImplementedError

    def columns(self, relation: str) -> dict:
        """Column -> DuckDB type name (``BIGINT``, ``VARCHAR``, ``TIMESTAMP``...) of a relation."""
        raise NotImplementedError

    def register(self, name: str, obj) -> str:
        """Make a frame available as relation ``name``; returns the relation's SQL name."""
        raise NotImplementedError

    def unregister(self, name: str) -> None:
        """Forget a relation made by :meth:`register`."""
        raise NotImplementedError

    def parquet_relation(self, name: str, files) -> str:
        """SQL naming the rows of Parquet ``files`` (columns united by name); ``name`` labels a view if one is made."""
        raise NotImplementedError

    def csv_relation(self, name: str, files, *, delimiter: str, names, materialise: bool = True) -> str:
        """SQL naming the rows of CSV ``files`` read as text, header line skipped, with a pinned dialect."""
        raise NotImplementedError

    def write_parquet(self, query: str, path) -> int:
        """Write a query's rows to one Parquet file at ``path`` (atomically); return the row count."""
        raise NotImplementedError

    def export_parquet(self, query: str, folder) -> list:
        """Write a query's rows as Parquet files in a new ``folder``, without bringing them to the driver, and
        return the files (row order is not kept: a reader sorts)."""
        raise NotImplementedError

    def release_memory(self) -> None:
        """Hand back to the system the memory the engine keeps from finished work (nothing it still holds is
        dropped); the default does nothing."""

    def close(self) -> None:
        """Release what the engine opened (never a session it was given)."""


class DuckDBEngine(Engine):
    """SQL as written, on an embedded DuckDB connection.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection or None, default=None
        A raw DuckDB connection (e.g. a :class:`~fraudkit.data.dataset.Dataset`'s ``con.con``); ``None`` opens
        one with :func:`~fraudkit.data.connection.duckdb_connection`, closed by :meth:`close`.

    Examples
    --------
    >>> e = DuckDBEngine()
    >>> e.row("SELECT count(*) FILTER (WHERE i % 2 = 0) FROM range(10) t(i)")
    (5,)
    >>> e.close()
    """

    name = "duckdb"

    def __init__(self, con=None):
        self._own = con is None
        self.con = duckdb_connection() if con is None else con

    def rows(self, query):
        with QUERY_LOCK:
            return self.con.execute(query).fetchall()

    def execute(self, statement):
        with QUERY_LOCK:
            self.con.execute(statement)

    def to_arrow(self, query):
        with QUERY_LOCK:
            return self.con.execute(query).fetch_arrow_table()

    def create_table(self, name, query):
        with QUERY_LOCK:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS {query}")

    def drop(self, name):
        with QUERY_LOCK:
            self.con.execute(f"DROP TABLE IF EXISTS {quote(name)}")

    def columns(self, relation):
        with QUERY_LOCK:
            return {r[0]: r[1] for r in self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}

    def register(self, name, obj):
        with QUERY_LOCK:
            self.con.register(name, obj)
        return quote(name)

    def unregister(self, name):
        with QUERY_LOCK:
            self.con.unregister(name)

    def parquet_relation(self, name, files):
        return f"read_parquet([{', '.join(literal(str(f)) for f in files)}], union_by_name=true)"

    def csv_relation(self, name, files, *, delimiter, names, materialise=True):
        cols = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in names) + "}"
        paths = "[" + ", ".join(literal(str(f)) for f in files) + "]"
        relation = (f"read_csv({paths}, header=true, skip=0, auto_detect=false, delim={literal(delimiter)}, "
                    f"quote='\"', escape='\"', columns={cols})")
        if not materialise:
            return relation
        table = f"_csv_{name}"
        try:
            self.create_table(table, f"SELECT * FROM {relation}")
        except Exception:  # ragged or malformed: the validator reads it again and reports why
            return relation
        return quote(table)

    def write_parquet(self, query, path):
        with QUERY_LOCK:
            with atomic_path(path) as tmp:
                self.con.execute(f"COPY ({query}) TO {literal(str(tmp))} (FORMAT parquet)")
            return int(self.con.execute(f"SELECT count(*) FROM read_parquet({literal(str(path))})").fetchone()[0])

    def export_parquet(self, query, folder):
        Path(folder).mkdir(parents=True)
        path = Path(folder) / "part-0.parquet"
        with QUERY_LOCK:
            self.con.execute(f"COPY ({query}) TO {literal(str(path))} (FORMAT parquet)")
        return [path]

    def release_memory(self):
        """DuckDB keeps the memory of finished queries for reuse, up to its ``memory_limit`` (measured: 0.34 GB
        after the behaviour features of the 100 k-account world, with 68 MB in use): lowering the limit to what
        it holds and back makes it let that go, without evicting anything (no other statement runs meanwhile:
        :data:`~fraudkit.data.connection.QUERY_LOCK`)."""
        with QUERY_LOCK:
            used = self.con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone()[0]
            limit = memory_limit_of(self.con)  # exactly as it was: the shown text can come back lower
            self.con.execute(f"SET memory_limit = '{(int(used) >> 20) + 64}MiB'")
            self.con.execute(f"SET memory_limit = {literal(limit)}")

    def close(self):
        if self._own:
            self.con.close()


class SparkEngine(Engine):
    """DuckDB-dialect SQL transpiled to Spark SQL and run on a SparkSession over temporary views.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session (a cluster's, or :func:`spark_session` for a local one). Never stopped by the engine.

    Notes
    -----
    Relations are Spark temporary views of the session; :meth:`create_table` materialises its rows as a local
    checkpoint, cut from the plan that made them (Spark has no temporary tables). ``rows``, ``to_arrow`` and
    ``write_parquet`` bring rows to the driver: the kit asks them for aggregates, examples, rejected rows,
    per-entity feature tables and, in ``fraudkit score``, the local copy of the resolved tables
    (:meth:`fraudkit.data.dataset.Dataset.to_local`). Spark timestamps (``TIMESTAMP``, an instant) read from a
    Spark table are wall-clock times of ``spark.sql.session.timeZone``; see :meth:`register`.
    """

    name = "spark"

    def __init__(self, spark):
        self.spark = spark
        self._cached = {}
        self._broken = {}  # relation -> why its files cannot be read (raised where DuckDB would raise)
        # Parquet nanosecond timestamps (pandas' default) are read as longs and converted in parquet_relation
        spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        # instants written to Parquet as microseconds adjusted to UTC (Arrow's type), not as legacy INT96
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):  # the kit reports failures itself
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)

    def rows(self, query):
        return [tuple(r) for r in self._df(query).collect()]

    def execute(self, statement):
        self.spark.sql(to_spark(statement))

    def to_arrow(self, query):
        # through Parquet written by the tasks: toArrow builds each partition's Arrow batches in the JVM heap
        # first (the 1 M-account world's features: java.lang.OutOfMemoryError with a 6g driver); a position
        # column keeps the rows in the order toArrow gives (partition by partition)
        import pyarrow.dataset as pads
        from pyspark.sql import functions as F

        df = self._df(query)
        with tempfile.TemporaryDirectory(prefix="fraudkit-arrow-") as tmp:
            files = self.export_parquet(df.withColumn(_POSITION, F.monotonically_increasing_id()), Path(tmp) / "t")
            if not files:  # no part file for no rows
                return df.toArrow()
            table = pads.dataset([str(f) for f in files], format="parquet").to_table()
            return table.sort_by(_POSITION).drop_columns([_POSITION]).replace_schema_metadata(None)

    def create_table(self, name, query):
        # materialised now, as DuckDB's CREATE TABLE does, and cut from its lineage: a chain of feature tables
        # otherwise carries every earlier plan (a query reading one three times printed gigabytes of plan text)
        df = self._df(query).localCheckpoint(eager=True)
        old = self._cached.pop(name, None)
        df.createOrReplaceTempView(name)
        self._cached[name] = df
        if old is not None:
            old.unpersist()

    def drop(self, name):
        df = self._cached.pop(name, None)
        if df is not None:
            df.unpersist()
        self.spark.catalog.dropTempView(name)

    def columns(self, relation):
        bare = relation.strip('"`')
        if bare in self._broken:
            raise FraudkitError(self._broken[bare])
        df = self.spark.table(quote_spark(bare)) if _is_name(relation) else self._df(f"SELECT * FROM {relation}")
        return {f.name: spark_type_name(f.dataType.simpleString()) for f in df.schema.fields}

    def register(self, name, obj):
        """Register a pandas DataFrame, a pyarrow Table, a Spark DataFrame or a Spark table name as ``name``.

        Spark ``TIMESTAMP`` columns (instants) are read as wall-clock ``TIMESTAMP_NTZ`` in the session time
        zone, as the contract's naive platform-local times.
        """
        import pandas as pd
        import pyarrow as pa

        if isinstance(obj, str):
            df = self.spark.table(obj)
        elif isinstance(obj, (pd.DataFrame, pa.Table)):
            arrow = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
            df = self.spark.createDataFrame(arrow)
        elif hasattr(obj, "createOrReplaceTempView"):
            df = obj
        else:
            raise FraudkitError(f"table {name!r}: expected a Spark DataFrame, a Spark table name, a pandas "
                                f"DataFrame or a pyarrow Table, got {type(obj).__name__}")
        ltz = [f.name for f in df.schema.fields if f.dataType.simpleString() == "timestamp"]
        if ltz:
            from pyspark.sql import functions as F

            df = df.withColumns({c: F.col(c).cast("timestamp_ntz") for c in ltz})
        df.createOrReplaceTempView(name)
        return quote(name)

    def unregister(self, name):
        self.spark.catalog.dropTempView(name)

    def parquet_relation(self, name, files):
        view = f"_file_{name}"
        try:
            df = self.spark.read.option("mergeSchema", "true").parquet(*[str(f) for f in files])
        except Exception as e:  # noqa: BLE001 - reported as unreadable by the validator, as on DuckDB
            self._broken[view] = _first_line(e)
            return quote(view)
        nanos = _nanosecond_columns(files[0])
        if nanos:
            from pyspark.sql import functions as F

            epoch = "TIMESTAMP_NTZ'1970-01-01 00:00:00'"
            df = df.withColumns({c: F.expr(f"timestamp_micros({quote_spark(c)} div 1000)") if tz else
                                 F.expr(f"timestampadd(MICROSECOND, {quote_spark(c)} div 1000, {epoch})")
                                 for c, tz in nanos.items() if c in df.columns})
        df.createOrReplaceTempView(view)
        return quote(view)

    def csv_relation(self, name, files, *, delimiter, names, materialise=True):
        from pyspark.sql.types import StringType, StructField, StructType

        view = f"_csvfile_{name}"
        schema = StructType([StructField(n, StringType()) for n in names])
        df = self.spark.read.csv([str(f) for f in files], schema=schema, header=True, sep=delimiter, quote='"',
                                 escape='"', mode="FAILFAST", enforceSchema=True)
        df.createOrReplaceTempView(view)
        if not materialise:
            return quote(view)
        try:  # parsed once, as on DuckDB; a ragged row fails here
            self.create_table(f"_csv_{name}", f"SELECT * FROM {quote(view)}")
        except Exception as e:  # noqa: BLE001 - ragged or malformed rows: reported as unreadable
            self._broken[view] = _first_line(e)
            return quote(view)
        return quote(f"_csv_{name}")

    def write_parquet(self, query, path):
        import pyarrow.parquet as pq

        table = self.to_arrow(query)  # rejected rows only: a small share of a table, gathered on the driver
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return table.num_rows

    def export_parquet(self, query, folder):
        # written by the tasks where the rows are: nothing is gathered in the driver's JVM
        (self._df(query) if isinstance(query, str) else query).write.parquet(str(folder))
        return sorted(Path(folder).glob("part-*.parquet"))

    def _df(self, query):
        return self.spark.sql(to_spark(query))


def open_engine(engine="duckdb", *, spark=None, master=None, cores=2, memory="2g", config=None):
    """An :class:`Engine` by name.

    Parameters
    ----------
    engine : {"duckdb", "spark"} or Engine, default="duckdb"
        An engine is returned as it is.
    spark : pyspark.sql.SparkSession or None, default=None
        For ``spark``: the session to use; ``None`` starts (or reuses) one with :func:`spark_session`.
    master, cores, memory, config
        Passed to :func:`spark_session` when a session is started.

    Examples
    --------
    >>> e = open_engine()
    >>> e.name, e.row("SELECT 1 + 1")
    ('duckdb', (2,))
    """
    if isinstance(engine, Engine):
        return engine
    if engine == "duckdb":
        return DuckDBEngine()
    if engine == "spark":
        return SparkEngine(spark if spark is not None else spark_session(master=master, cores=cores, memory=memory,
                                                                                config=config))
    raise FraudkitError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def spark_session(app: str = "fraudkit", *, master=None, cores: int = 2, memory: str = "2g", config=None):
    """A SparkSession for the kit: UTC session time, Arrow transfers, quiet logs, the UI off.

    Parameters
    ----------
    app : str, default="fraudkit"
        Application name.
    master : str or None, default=None
        ``None`` runs locally on ``cores`` threads (``local[cores]``); otherwise a master URL
        (``spark://host:7077``, ``yarn``, ``k8s://...``). A session already active in the process (made by
        ``spark-submit`` or a notebook) is returned as it is, with its own configuration.
    cores : int, default=2
        Local threads (local mode only). A ``local[n]`` master gives its own ``n``. Shuffles keep Spark's
        ``spark.sql.shuffle.partitions`` (200), which adaptive query execution merges where they are small.
    memory : str, default="2g"
        Driver memory (the only JVM in local mode; there also the cap of results gathered on the driver,
        ``spark.driver.maxResultSize``).
    config : dict or None, default=None
        Further Spark settings (``{"spark.executor.memory": "8g"}``).

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    FraudkitError
        PySpark is not installed (``pip install 'fraudkit[spark]'``) or Java is missing.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise FraudkitError("the Spark engine needs pyspark: pip install 'fraudkit[spark]' "
                            "(or pip install -r requirements-spark.txt), and Java 17") from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise FraudkitError("the Spark engine needs Java 17: install a JDK (Debian: apt-get install "
                            "openjdk-17-jre-headless) or set JAVA_HOME")
    active = SparkSession.getActiveSession()
    if active is not None:  # spark-submit, a notebook's session: its configuration wins
        return active
    # Python workers (applyInPandas) run the driver's interpreter unless the cluster says otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    local = master is None or str(master).startswith("local")
    if master is not None and re.fullmatch(r"local\[\d+\]", str(master)):
        cores = int(str(master)[6:-1])  # local[n]: n threads
    builder = (SparkSession.builder.master(master or f"local[{int(cores)}]").appName(app)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", memory)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    if local:
        # one JVM does all the work: rows gathered on the driver may take its heap, not Spark's default 1g
        builder = builder.config("spark.driver.maxResultSize", (config or {}).get("spark.driver.memory", memory))
    # each shuffle cut into Spark's 200 partitions, merged again by adaptive execution where they are small: a
    # task then holds a slice that fits the heap whatever the data's size (one partition per core left 19 M of
    # the 1 M-account world's events in one task: its feature SQL ran out of a 6g heap)
    builder = (builder.config("spark.sql.adaptive.enabled", "true")
               .config("spark.sql.adaptive.coalescePartitions.enabled", "true"))
    for key, value in (config or {}).items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def to_spark(query: str) -> str:
    """Transpile one DuckDB-dialect statement to Spark SQL (sqlglot, plus the kit's corrections).

    sqlglot does the dialect work (``TRY_CAST``, ``arg_min`` -> ``MIN_BY``, ``FILTER`` clauses, quoting). The
    corrections keep DuckDB's meaning where sqlglot 29 does not: ``epoch`` of a timestamp or an interval is
    seconds as a double (sqlglot's ``UNIX_TIMESTAMP`` takes no interval and drops the fraction), a number
    written with a decimal point is a DOUBLE (Spark's DECIMAL division rounds to 6 places), ``any_value``
    skips NULLs, ``count(DISTINCT x) OVER (...)`` (no Spark equivalent) is ``size(collect_set(x) OVER (...))``,
    ``list(x)`` is ``collect_list``, ``list_slice`` is ``slice``, ``quantile_cont(x, q)`` is ``percentile``,
    ``concat_ws`` skips NULLs (not ``''``),
    ``isfinite`` / ``isinf`` / ``regexp_full_match`` have no Spark function of that name, and ``row(...)``
    is Spark's ``struct(...)``.

    Examples
    --------
    >>> to_spark('SELECT arg_min("x", k) FILTER (WHERE isinf(x)) FROM t')
    "SELECT MIN_BY(`x`, k) FILTER(WHERE (ABS(x) = CAST('Infinity' AS DOUBLE))) FROM t"
    >>> to_spark("SELECT concat_ws('; ', a, b)")
    "SELECT CONCAT_WS('; ', a, b)"
    """
    tree = sqlglot.parse_one(query, read="duckdb")
    return tree.transform(_spark_fixes).sql("spark")


def spark_type_name(simple: str) -> str:
    """The DuckDB type name the kit's checks expect for a Spark type (``bigint`` -> ``BIGINT``).

    A Spark ``timestamp`` (an instant) maps to DuckDB's ``TIMESTAMP WITH TIME ZONE`` and ``timestamp_ntz`` to
    ``TIMESTAMP``, as the same Parquet column reads on DuckDB.

    Examples
    --------
    >>> spark_type_name("string"), spark_type_name("decimal(10,2)"), spark_type_name("timestamp_ntz")
    ('VARCHAR', 'DECIMAL(10,2)', 'TIMESTAMP')
    """
    s = simple.lower()
    if s.startswith("decimal"):
        return s.upper()
    return _SPARK_TYPES.get(s, s.upper())


def quote(name: str) -> str:
    """A DuckDB identifier (double quotes); :func:`to_spark` turns it into Spark's backticks."""
    return '"' + name.replace('"', '""') + '"'


def quote_spark(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


# --- private helpers ----------------------------------------------------------------------------

_SPARK_TYPES = {
    "string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT", "tinyint": "TINYINT",
    "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP", "date": "DATE", "binary": "BLOB", "void": "NULL",
}

_INF = "CAST('Infinity' AS DOUBLE)"


def _seconds(x):
    """Spark SQL for DuckDB's ``epoch(x)``: seconds (a double) of a timestamp, or of an interval (a difference of
    timestamps, an interval literal); UTC session time, as :func:`spark_session` sets."""
    def micros(t):
        return exp.func("unix_micros", exp.cast(t.copy().transform(_spark_fixes), "timestamp"))

    if isinstance(x, exp.Paren):
        return _seconds(x.this)
    if isinstance(x, exp.Sub) and not isinstance(x.expression, exp.Interval):  # timestamp - timestamp
        diff = exp.Sub(this=micros(x.this), expression=micros(x.expression))
    elif isinstance(x, exp.Interval):
        diff = micros(exp.Add(this=sqlglot.parse_one("TIMESTAMP '1970-01-01 00:00:00'"), expression=x.copy()))
    else:
        diff = micros(x)
    return exp.paren(exp.Div(this=exp.cast(diff, "double"), expression=exp.Literal.number("1000000")))


def _spark_fixes(node):
    if isinstance(node, exp.TimeToUnix):
        return _seconds(node.this)
    if isinstance(node, exp.PercentileCont) and node.expression is not None:  # exact, interpolated, as DuckDB
        return exp.Anonymous(this="percentile", expressions=[node.this.transform(_spark_fixes),
                                                             node.expression.transform(_spark_fixes)])
    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):  # DuckDB's any_value skips NULLs
        return exp.Anonymous(this="any_value", expressions=[node.this.this.transform(_spark_fixes), exp.true()])
    if (isinstance(node, exp.Window) and isinstance(node.this, exp.Count)
            and isinstance(node.this.this, exp.Distinct) and len(node.this.this.expressions) == 1):
        # Spark has no DISTINCT window aggregate: the size of the frame's set (both ignore NULLs)
        window = node.copy()
        window.set("this", exp.func("collect_set", node.this.this.expressions[0].transform(_spark_fixes)))
        return exp.func("size", window)
    if isinstance(node, exp.Literal) and node.is_number and ("." in node.this or "e" in node.this.lower()):
        return exp.cast(node.copy(), "double")  # DuckDB divides by 7.0 in DOUBLE; Spark's DECIMAL rounds at 6 places
    if isinstance(node, exp.ConcatWs):
        node.set("coalesce", False)
        return node
    if isinstance(node, exp.IsInf):
        return sqlglot.parse_one(f"(ABS(x) = {_INF})", read="spark").transform(
            lambda n: node.this.copy() if isinstance(n, exp.Column) and n.name == "x" else n)
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        return exp.RegexpLike(this=node.this.copy(), expression=exp.Literal.string(f"^(?:{node.expression.this})$"))
    if isinstance(node, exp.Anonymous):
        fn = node.name.lower()
        args = node.expressions
        if fn == "isfinite" and len(args) == 1:
            x = args[0]
            return exp.paren(exp.and_(exp.not_(exp.func("isnan", x.copy())),
                                      exp.LT(this=exp.Abs(this=x.copy()), expression=sqlglot.parse_one(_INF))))
        if fn == "row":
            return exp.Struct(expressions=[a.copy() for a in args])
        if fn in ("list_slice", "array_slice") and len(args) == 3:  # 1-based, end included -> start, length
            start, end = args[1].copy(), args[2].copy()
            return exp.func("slice", args[0].copy().transform(_spark_fixes), start,
                            exp.Add(this=exp.Sub(this=end, expression=start.copy()), expression=exp.Literal.number(1)))
    if isinstance(node, exp.List) and len(node.expressions) == 1:  # DuckDB's list(x) aggregate
        return exp.ArrayAgg(this=node.expressions[0].copy())
    return node


def _nanosecond_columns(path) -> dict:
    """Column -> has a time zone, for the nanosecond timestamp columns of a Parquet file (its footer only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(str(path))
    except Exception:  # noqa: BLE001 - not a local file: Spark reports what it cannot read
        return {}
    return {f.name: f.type.tz is not None for f in schema
            if pa.types.is_timestamp(f.type) and f.type.unit == "ns"}


def _is_name(relation: str) -> bool:
    r = relation.strip()
    return (r.startswith('"') and r.endswith('"') and '"' not in r[1:-1]) or r.replace("_", "").isalnum()


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
