"""The one place the kit opens a DuckDB connection: bounded memory and a spill folder, by design.

DuckDB takes 80 % of the machine's memory unless told otherwise, and on a shared machine a large world then
grows until the kernel kills something. Every connection the kit opens — the dataset loader's Ibis backend, the
feature SQL's in-memory source, the backend-neutral data layer — comes from :func:`duckdb_connection` (raw) or
:func:`ibis_connection` (Ibis), with

* ``memory_limit``: ``FRAUDKIT_DUCKDB_MEMORY_LIMIT`` (a DuckDB size such as ``"4GB"``), default a quarter of the
  machine's memory, at least 1 GB and at most 3 GB: the rest of a run (pandas frames, graphs) needs room too
  (on ``large`` the behaviour feature SQL, the run's memory peak, peaked at 7.6 GB with 4 GB and at 6.7 GB with
  3 GB, in 169 s and 175 s);
* ``temp_directory``: ``FRAUDKIT_DUCKDB_TEMP_DIRECTORY``, default ``<system temp>/fraudkit-duckdb``, where DuckDB
  spills what does not fit (joins, aggregates and sorts larger than the limit finish, on disk, instead of
  taking the machine's memory);
* no progress bar of DuckDB's own (``SET enable_progress_bar = false``, a per-connection option): its bar
  (``94% ▕███▋ ▏ (~1 second remaining)``) printed into the kit's progress lines whenever a query ran over two
  seconds, in a pipe or a CI log as much as on a terminal; the kit says what it is doing itself
  (:mod:`fraudkit.pipeline.progress`). Inside a Jupyter kernel DuckDB refuses to change the setting (it wants
  ``ipywidgets`` to draw its bar there) and draws none: the connection is then kept as it is.

Settings change no result: the same SQL gives the same rows whatever the limit.

:data:`QUERY_LOCK` is held by every statement the kit runs on DuckDB, from its call to its last fetched row: two
threads of one run (the group and graph stages side by side, :func:`fraudkit.pipeline.score.score_dataset`)
share one connection, one statement at a time (a DuckDB connection is not for two threads at once), each
statement on all the connection's threads, while the other thread works in Python, NumPy or a Leiden child.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

__all__ = ["duckdb_connection", "ibis_connection", "duckdb_settings", "smaller_memory_limit", "memory_limit_of",
           "MEMORY_LIMIT_ENV", "TEMP_DIRECTORY_ENV", "QUERY_LOCK"]

MEMORY_LIMIT_ENV = "FRAUDKIT_DUCKDB_MEMORY_LIMIT"
"""Environment variable: DuckDB's ``memory_limit`` for every connection of the kit (e.g. ``"4GB"``)."""
TEMP_DIRECTORY_ENV = "FRAUDKIT_DUCKDB_TEMP_DIRECTORY"
"""Environment variable: the folder DuckDB spills to."""
QUERY_LOCK = threading.RLock()
"""Held by each DuckDB statement of the kit with its fetch (:class:`fraudkit.data.engine.DuckDBEngine`, the
:class:`fraudkit.data.dataset.Dataset`'s Ibis reads, :meth:`fraudkit.data.sqlsource.SqlSource.df`): a
connection shared by two threads runs one statement at a time. Re-entrant: a statement's helper may run one."""


def duckdb_settings() -> dict:
    """The settings every connection of the kit gets: ``memory_limit`` and ``temp_directory``.

    Examples
    --------
    >>> sorted(duckdb_settings())
    ['memory_limit', 'temp_directory']
    """
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or _default_limit()
    temp = os.environ.get(TEMP_DIRECTORY_ENV, "").strip() or str(Path(tempfile.gettempdir()) / "fraudkit-duckdb")
    return {"memory_limit": limit, "temp_directory": temp}


def duckdb_connection():
    """A new in-memory DuckDB connection with :func:`duckdb_settings`.

    Examples
    --------
    >>> con = duckdb_connection()
    >>> con.execute("SELECT current_setting('temp_directory') <> ''").fetchone()[0]
    True
    >>> con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    False
    >>> con.close()
    """
    import duckdb

    con = duckdb.connect(":memory:", config=duckdb_settings())
    _no_progress_bar(con.execute)
    return con


def ibis_connection():
    """A new in-memory Ibis DuckDB backend with :func:`duckdb_settings`.

    Examples
    --------
    >>> backend = ibis_connection()
    >>> backend.name, backend.raw_sql("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    ('duckdb', False)
    """
    import ibis

    backend = ibis.duckdb.connect(**duckdb_settings())
    _no_progress_bar(backend.raw_sql)
    return backend


@contextmanager
def smaller_memory_limit(con, share: float):
    """Within the block, ``con`` (a raw DuckDB connection) has ``share`` of its ``memory_limit`` (at least
    256 MiB); the limit is put back after, whatever happens.

    For a query whose result goes to a file while the run's frames are in memory: what does not fit spills to
    ``temp_directory``. Measured on ``large``: the interactions' rule frame (23.7M rows, window functions, two
    sorts) written to Parquet peaked at +3.98 GB with a 4 GiB limit, +1.14 GB with 1.3 GiB, 26 -> 38 s.

    Examples
    --------
    >>> con = duckdb_connection()
    >>> con.execute("SET memory_limit = '3GiB'")  # doctest: +ELLIPSIS
    <...>
    >>> with smaller_memory_limit(con, 1 / 3):
    ...     print(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    1.0 GiB
    >>> con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    '3.0 GiB'
    """
    limit = memory_limit_of(con)
    size = _bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    if size is None:  # a setting this code cannot read: left as it is
        yield
        return
    con.execute(f"SET memory_limit = '{max(256, int(size * share) >> 20)}MiB'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{limit}'")


def memory_limit_of(con) -> str:
    """The ``memory_limit`` of ``con`` as a setting that gives it back exactly: the kit's own
    (:func:`duckdb_settings`) when the connection has it, else the text DuckDB shows (rounded to 0.1 GiB: set
    again, it can come back lower, ``'3.7 GiB'`` as ``3.6 GiB``).

    Examples
    --------
    >>> con = duckdb_connection()
    >>> memory_limit_of(con) == duckdb_settings()["memory_limit"]
    True
    >>> _ = con.execute("SET memory_limit = '2GiB'")
    >>> memory_limit_of(con)
    '2.0 GiB'
    """
    shown = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    kit = duckdb_settings()["memory_limit"]
    try:
        con.execute(f"SET memory_limit = '{kit}'")
        same = con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown
    except Exception:  # noqa: BLE001 - a kit setting DuckDB refuses: the shown text is all there is
        same = False
    con.execute(f"SET memory_limit = '{kit if same else shown}'")
    return kit if same else shown


# --- private helpers ----------------------------------------------------------------------------


_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def _bytes(text: str) -> int | None:
    """DuckDB's text of a size (``'4.0 GiB'``, ``'953.6 MiB'``, ``'1GB'``) in bytes; None when unreadable.

    Examples
    --------
    >>> _bytes("4.0 GiB"), _bytes("1GB"), _bytes("lots")
    (4294967296, 1000000000, None)
    """
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = _UNITS.get(m.group(2).lower()) if m else None
    return None if unit is None else int(float(m.group(1)) * unit)


def _no_progress_bar(run) -> None:
    """Turn DuckDB's own progress bar off through ``run`` (a connection's ``execute``); inside a Jupyter kernel
    without ipywidgets DuckDB refuses the setting, and draws no bar there either."""
    import duckdb

    try:
        run("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass


def _default_limit() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return f"{max(1 << 30, min(3 << 30, total // 4)) >> 20}MiB"
