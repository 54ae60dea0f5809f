"""The frames rules are evaluated on, and what a dataset lacks.

Feature tables per entity (``account``, ``device``, ``ip``, ``order``) and the interactions table with
only the columns its rules read; the inputs a partial dataset is missing, so rules that need them are
switched off; the dataset's list store; checking a rule set against a dataset's columns.

A run's events (orders, interactions) are never whole in pandas: the interactions with their accumulators
are a DuckDB table of the dataset's connection (:class:`EventFrame`), the rules are evaluated
:data:`EVENT_CHUNK` events at a time and their per-row results written to another table
(:class:`EventRules`), read back chunk by chunk by the decisions and the score table; only the hits and
each account's rollup are kept (:func:`evaluate_rules`).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraudkit.capability.accumulators import DEFAULT_ACCUMULATORS, compute, with_accumulators
from fraudkit.capability.features import entity_features
from fraudkit.capability.lists import ListStore
from fraudkit.data.atomic import ParquetStream, atomic_path, write_parquet
from fraudkit.data.connection import QUERY_LOCK, duckdb_settings, smaller_memory_limit
from fraudkit.data.contract import TABLES
from fraudkit.data.dataset import canonical_sort_keys, load_dataset, ns_timestamps
from fraudkit.data.engine import quote
from fraudkit.identification.base import score_frame
from fraudkit.identification.expressions import lists_of
from fraudkit.identification.rules import TIME_OF_DAY, RuleResult, RuleSet, load_ruleset

__all__ = ["feature_tables", "missing_inputs", "list_store_for", "rule_columns", "rule_frames", "check_ruleset",
           "RuleEvaluation", "evaluate_rules", "data_end", "EventFrame", "EventRules", "EVENT_CHUNK", "FeatureTables",
           "ParkedTable", "parking_folder", "remove_stale_parking", "release_memory", "read_rows", "parked_if_large",
           "PARK_MIN_ROWS", "worth_parking", "arrow_text"]

EVENT_CHUNK = 2_000_000
"""Events (orders, interactions) read, evaluated and decided at a time: the frame a large world's rules read
(23.7M interactions with their joined features) and its rule results never sit in memory whole."""
RULE_FRAME_MEMORY = 2 / 3
"""Share of the connection's ``memory_limit`` the interactions' rule frame is computed with (the rest spills):
it is written to a file while the feature tables are in memory (:func:`fraudkit.data.connection.smaller_memory_limit`).
On ``large`` (23.7M interactions) alone, a third, two thirds and all of the 2.8 GiB limit took 45.9, 36.1 and
31.5 s and rose 0.54, 1.47 and 2.6 GiB over the 3.1 GiB held; in a run the rules step starts near 4.3 GB and the
run peaks at 7.2 GB elsewhere."""

PARK_MIN_ROWS = 1_000_000
"""Event rows (or feature-table rows) from which a run's rule evaluation and feature tables are moved out of memory
to Parquet until the end of the run reads them again (:func:`worth_parking`); smaller ones stay in memory."""

_ENTITY_KEYS = {"account": "account_id", "device": "device_id", "ip": "ip", "order": "order_id",
                "interaction": "event_id"}
_HIT_COLUMNS = ["rule_id", "status", "entity", "action", "score", "hits", "hit_rate"]
_EVENTS = ("order", "interaction")
_ROW_COLUMNS = ["score", "action", "flagged", "matched", "shadow_matched"]
_ids = itertools.count()
_ROWS_SCHEMA = pa.schema([("score", pa.float64()), ("action", pa.string()), ("flagged", pa.bool_()),
                         ("matched", pa.string()), ("shadow_matched", pa.string())])
_ROWS_GROUP = 262_144  # rows per row group of an event entity's rule results (a chunk reads its own groups)
_PARKED = "fraudkit-parked-"


@dataclass(frozen=True)
class RuleEvaluation:
    """The rule set evaluated once on a dataset: what the behaviour stage, the rules step and decisions share.

    Parameters
    ----------
    frames : dict of str to DataFrame or EventFrame
        Per entity, the frame the rules were evaluated on (:func:`rule_frames`); orders and interactions as an
        :class:`EventFrame`, read a chunk at a time.
    results : dict
        Per entity, the :class:`~fraudkit.identification.rules.RuleSet` result on that frame (``rows``
        aligned with the frame, ``hits``); for orders and interactions an :class:`EventRules` (the per-row
        results written chunk by chunk, read back a chunk at a time).
    hits : pandas.DataFrame
        Per rule: hits and hit rate (``RUN/rules/hits.parquet``).
    scores : pandas.DataFrame
        Score table rows, stage ``rules``, method ``RuleSet``, one per evaluated entity but the
        events (None when there is none).
    parts : tuple of DataFrame or EventRules
        Every evaluated entity's score rows, in the order of the rule set's entities, events included: an
        event entity's are an :class:`EventRules`, whose :meth:`EventRules.score_chunks` give them a chunk at
        a time (:meth:`all_scores` joins them).
    rollups : dict of str to tuple
        Per entity whose frame has ``account_id``: the worst rule score of each account's rows (a Series by
        account) and the distinct (``account_id``, ``matched``) pairs of its rows that matched a rule: what
        the behaviour stage's per-account rule score reads, without the entity's rows.
    """

    frames: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    hits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_HIT_COLUMNS))
    scores: pd.DataFrame | None = None
    parts: tuple = ()
    rollups: dict = field(default_factory=dict)

    def all_scores(self) -> pd.DataFrame | None:
        """Every evaluated entity's score rows as one frame (``entity_id`` as Python text), in entity order."""
        if not self.parts:
            return self.scores
        frames = [c for p in self.parts for c in (p.score_chunks() if isinstance(p, EventRules) else [p])]
        return pd.concat([p.assign(entity_id=p["entity_id"].astype(str)) if _is_arrow(p["entity_id"]) else p
                          for p in frames], ignore_index=True)

    def park(self, features=None) -> None:
        """Finish the event rule results' Parquet files (:meth:`EventRules.park`; the frames on DuckDB are files
        already): decisions read them again only after the group and graph stages.

        With ``features`` (the parked :class:`FeatureTables` the frames came from), the entity frames that are
        its tables are let go too, and :meth:`frame` reads them back."""
        for x in self.results.values():
            if isinstance(x, EventRules):
                x.park()
        if features is not None:
            for entity, f in list(self.frames.items()):
                if isinstance(f, pd.DataFrame) and features.parked(entity):
                    self.frames[entity] = features.handle(entity)

    def frame(self, entity):
        """The frame ``entity``'s rules were evaluated on (None when they were not), read back when parked."""
        f = self.frames.get(entity)
        return f.read() if isinstance(f, ParkedTable) else f

    def close(self) -> None:
        """Drop the event tables this evaluation keeps in DuckDB (its frames' and results')."""
        for x in list(self.frames.values()) + list(self.results.values()):
            if isinstance(x, (EventFrame, EventRules)):
                x.close()


class FeatureTables(Mapping):
    """A run's feature tables per entity (``account``, ``device``, ``ip``, ``order`` ...), in memory or parked.

    The behaviour stage computes them, its rules read them and its models the ``account`` table; then nothing
    reads them until decisions and the writing of the run, after the group and graph stages. On ``large`` they
    are gigabytes (``order`` 2 GB, ``account`` 1.3 GB): :meth:`park` writes them to Parquet files and lets the
    frames go (the behaviour stage parks all but ``account`` before its models, the pipeline ``account`` after
    the stage); a table is read back whole when next used (``tables[name]``), or only some of its rows and
    columns (:meth:`rows`).

    Examples
    --------
    >>> import tempfile
    >>> t = FeatureTables({"order": pd.DataFrame({"order_id": [1, 2, 3], "x": [0.5, 1.0, 2.0]})})
    >>> t.park(tempfile.mkdtemp())
    >>> t.parked("order"), t.rows("order", 1, 3, ["x"])["x"].tolist(), t["order"]["order_id"].tolist()
    (True, [1.0, 2.0], [1, 2, 3])
    """

    def __init__(self, tables=None):
        self._frames = {}
        self._files = {}
        self._folder = None  # a folder this object made for its files (removed by close)
        if isinstance(tables, FeatureTables):
            self._frames, self._files = dict(tables._frames), dict(tables._files)
        elif tables is not None:
            self._frames = dict(tables)
        self._names = list(dict.fromkeys([*self._files, *self._frames]))

    def __getitem__(self, name):
        if name not in self._frames:
            if name not in self._files:
                raise KeyError(name)
            self._frames[name] = pd.read_parquet(self._files[name])
        return self._frames[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def with_tables(self, more) -> FeatureTables:
        """These tables with ``more`` (a mapping) on top: ``more`` itself when this holds none."""
        if not self._names and isinstance(more, FeatureTables):
            return more
        out = FeatureTables(self)
        for name in more:
            parked = isinstance(more, FeatureTables) and name in more._files and name not in more._frames
            if parked:
                out._files[name] = more._files[name]
                out._frames.pop(name, None)
            else:
                out._frames[name] = more[name]
                out._files.pop(name, None)
        out._names = list(dict.fromkeys([*self._names, *more]))
        return out

    def parked(self, name) -> bool:
        """Whether ``name`` is in a Parquet file and not in memory."""
        return name in self._files and name not in self._frames

    def handle(self, name) -> ParkedTable:
        """A small stand-in for the parked table ``name`` (its length and columns; :meth:`ParkedTable.read`)."""
        return ParkedTable(self._files[name])

    def rows(self, name, start, stop, columns) -> pd.DataFrame:
        """Rows ``start:stop`` of table ``name``, only ``columns``, indexed from 0 (read from its file when parked)."""
        if not self.parked(name):
            return self[name].iloc[start:stop][list(columns)].reset_index(drop=True)
        return read_rows(self._files[name], start, stop, columns)

    def n_rows(self, name) -> int:
        """The number of rows of table ``name``, without reading it back when it is parked."""
        return len(self._frames[name]) if name in self._frames else ParkedTable(self._files[name]).n

    def park(self, folder=None, *, keep=()) -> None:
        """Write the tables held in memory, but those named in ``keep``, to ``folder/<name>.parquet`` (when None,
        a new folder in DuckDB's ``temp_directory``, removed by :meth:`close`) and let the frames go. A table
        comes back equal, dtypes included; one parked already stays where it is (a later call parks only what
        is still in memory)."""
        if folder is None:
            if self._folder is None:
                self._folder = parking_folder()
            folder = self._folder
        for name in [n for n in self._frames if n not in keep]:
            path = Path(folder) / f"{name}.parquet"
            write_parquet(self._frames[name], path)
            self._files[name] = path
            del self._frames[name]

    def write(self, folder) -> None:
        """Every table as ``folder/<name>.parquet``: those parked there are already written."""
        for name in self._names:
            path = Path(folder) / f"{name}.parquet"
            if self.parked(name) and Path(self._files[name]) == path:
                continue
            if self.parked(name):
                with atomic_path(path) as tmp:
                    shutil.copyfile(self._files[name], tmp)
            else:
                write_parquet(self._frames[name], path)

    def close(self) -> None:
        """Remove the temporary folder :meth:`park` made (files parked in a given folder stay)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._files = {k: v for k, v in self._files.items() if Path(v).parent != self._folder}
            self._folder = None


class ParkedTable:
    """A table written to a Parquet file until it is needed again (a parked feature table in a
    :class:`RuleEvaluation`'s frames, a stage's scores or artifacts): its length and columns, and the table
    read back by :meth:`read`.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> _ = write_parquet(pd.DataFrame({"a": [1, 2]}), path)
    >>> t = ParkedTable(path)
    >>> len(t), t.columns, t.read()["a"].tolist()
    (2, ['a'], [1, 2])
    """

    def __init__(self, path):
        self.path = Path(path)
        meta = pq.read_metadata(self.path)
        self.n = int(meta.num_rows)
        self.columns = [c for c in meta.schema.to_arrow_schema().names if not c.startswith("__index_level_")]

    def __len__(self) -> int:
        return self.n

    @property
    def empty(self) -> bool:
        return self.n == 0

    def read(self) -> pd.DataFrame:
        return pd.read_parquet(self.path)

    @classmethod
    def of(cls, frame, name) -> ParkedTable:
        """``frame`` written to ``<new parking folder>/<name>.parquet`` (:func:`parking_folder`; :meth:`move_to`
        takes it out and removes the folder)."""
        return cls(write_parquet(frame, parking_folder() / f"{name}.parquet"))

    def move_to(self, path) -> None:
        """Put the file at ``path`` (atomically; nothing when it is there already) and remove the parking folder
        it leaves empty; the table is then read from ``path``."""
        path = Path(path)
        if path == self.path:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            shutil.move(self.path, tmp)
        old, self.path = self.path.parent, path
        _remove_if_empty(old)

    def discard(self) -> None:
        """Remove the file when it is in a parking folder (:meth:`of`), and the folder once empty."""
        if self.path.parent.name.startswith(_PARKED):
            self.path.unlink(missing_ok=True)
            _remove_if_empty(self.path.parent)


def _remove_if_empty(folder) -> None:
    if folder.name.startswith(_PARKED) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def parked_if_large(frame, name):
    """``frame`` parked in a file of its own (:meth:`ParkedTable.of`) when it has :data:`PARK_MIN_ROWS` rows or
    more, else ``frame`` itself.

    Examples
    --------
    >>> parked_if_large(pd.DataFrame({"a": [1, 2]}), "pairs").shape
    (2, 1)
    """
    return ParkedTable.of(frame, name) if len(frame) >= PARK_MIN_ROWS else frame


def read_rows(path, start, stop, columns) -> pd.DataFrame:
    """Rows ``start:stop`` of the Parquet file ``path``, only ``columns``, indexed from 0: only the row groups
    holding them are read (a chunk of the parked 2.4 M-row order table, not the whole of its columns).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> _ = write_parquet(pd.DataFrame({"a": range(10), "b": range(10)}), path, row_group_size=3)
    >>> read_rows(path, 2, 7, ["a"])["a"].tolist(), read_rows(path, 9, 9, ["a"]).shape
    ([2, 3, 4, 5, 6], (0, 1))
    """
    return _row_table(path, start, stop, columns).to_pandas().reset_index(drop=True)


def _row_table(path, start, stop, columns) -> pa.Table:
    """:func:`read_rows` as an Arrow table (in the file's order)."""
    file = pq.ParquetFile(path)
    groups, first, offset = [], 0, 0
    for g in range(file.metadata.num_row_groups):
        n = file.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            first = offset if not groups else first
            groups.append(g)
        offset += n
    if not groups:
        return file.schema_arrow.empty_table().select(list(columns))
    return file.read_row_groups(groups, columns=list(columns)).slice(start - first, stop - start)


def arrow_text(col: pd.Series) -> pa.Array:
    """``col.astype(str)`` as an Arrow string array: text and integer columns without a missing value are cast in
    C++ (the same digits as ``str``), anything else goes through Python's ``str``.

    Examples
    --------
    >>> arrow_text(pd.Series([7, -12])).to_pylist(), arrow_text(pd.Series([1.5, None])).to_pylist()
    (['7', '-12'], ['1.5', 'nan'])
    """
    if not col.hasnans:
        if isinstance(col.dtype, pd.ArrowDtype) and (pa.types.is_string(col.dtype.pyarrow_dtype)
                                                     or pa.types.is_large_string(col.dtype.pyarrow_dtype)):
            return pa.array(col).cast(pa.string())
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":
            return pa.array(col.to_numpy()).cast(pa.string())
    return pa.array(col.astype(str).to_numpy(dtype=object), type=pa.string())


def release_memory(ds=None) -> None:
    """Hand the memory finished work freed back to the system: the dataset's engine's (:meth:`Engine.release_memory
    <fraudkit.data.engine.Engine.release_memory>`) and the heap's (glibc's ``malloc_trim``; elsewhere nothing):
    freed frames otherwise stay in the process's resident memory (1.1 GB of 12 after the behaviour stage on
    ``large``) while the next step allocates its own."""
    engine = getattr(getattr(ds, "transform_dataset", None), "engine", None)
    if engine is not None:
        engine.release_memory()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


def worth_parking(features=None, rules=None) -> bool:
    """Whether a run's feature tables (a :class:`FeatureTables`) or rule evaluation (a :class:`RuleEvaluation`:
    its event frames) have :data:`PARK_MIN_ROWS` rows or more: the one test deciding that a run parks them
    (the behaviour stage before its models, the pipeline after each stage). Parked tables are counted from
    their files' metadata, not read back.

    Examples
    --------
    >>> worth_parking(FeatureTables({"order": pd.DataFrame({"order_id": [1, 2]})})), worth_parking()
    (False, False)
    """
    events = 0 if rules is None else sum(len(f) for f in rules.frames.values() if isinstance(f, EventFrame))
    feature_rows = sum(features.n_rows(k) for k in features) if isinstance(features, FeatureTables) else 0
    return max(events, feature_rows) >= PARK_MIN_ROWS


def parking_folder(base=None) -> Path:
    """A new folder for parked tables in ``base`` (default DuckDB's ``temp_directory``, where it spills): its
    caller removes it. Its name carries the process id; folders left by processes that no longer run (a run
    killed before it could remove them) are removed first (:func:`remove_stale_parking`)."""
    base = Path(base or duckdb_settings()["temp_directory"])
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_parking(base)
    return Path(tempfile.mkdtemp(prefix=f"{_PARKED}{os.getpid()}-", dir=base))


def remove_stale_parking(base) -> list:
    """Remove the parking folders in ``base`` whose process no longer runs; return them.

    Only folders named as :func:`parking_folder` names them (``fraudkit-parked-<pid>-...``) are looked at.

    Examples
    --------
    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp())
    >>> mine = parking_folder(base)
    >>> (base / "fraudkit-parked-999999999-x").mkdir(); (base / "other").mkdir()
    >>> [p.name for p in remove_stale_parking(base)], sorted(p.name for p in base.iterdir()) == sorted([mine.name, "other"])
    (['fraudkit-parked-999999999-x'], True)
    """
    gone = []
    for folder in sorted(Path(base).glob(f"{_PARKED}*-*")):
        pid = folder.name[len(_PARKED):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class EventFrame:
    """The frame one event entity's rules read (orders, interactions), given a chunk of rows at a time.

    Backed by a DuckDB table of the dataset's connection (the interactions, in their canonical order, with
    the accumulators the rules read; it spills to the connection's ``temp_directory`` beyond its
    ``memory_limit``), the account, device and IP features joined chunk by chunk; or by a pandas frame (the
    order feature table). Every chunk has the columns and dtypes the whole frame would have.

    Examples
    --------
    >>> ev = EventFrame.of(pd.DataFrame({"order_id": [1, 2, 3], "x": [0.5, 1.0, 2.0]}), "order")
    >>> len(ev), ev.columns, [c["x"].tolist() for c in ev.chunks(2)]
    (3, ['order_id', 'x'], [[0.5, 1.0], [2.0]])
    """

    def __init__(self, entity, n, columns, *, frame=None, tables=None, con=None, table=None, stored=(), feats=None,
                 need=(), floats=(), objects=(), parked=None, by_file=False):
        self.entity, self.n, self.columns = entity, int(n), list(columns)
        self.key = _ENTITY_KEYS[entity]
        self._frame, self._con, self._table, self._stored = frame, con, table, set(stored)
        self._tables = tables  # a FeatureTables holding the frame as table ``entity`` (parked or not)
        self._feats, self._need, self._floats, self._objects = feats, set(need), tuple(floats), tuple(objects)
        self._parked = parked  # the Parquet file holding ``table`` (a view over it, read a chunk at a time)
        # ``table``'s _fk_row is the row's position in ``parked`` (DuckDB's file_row_number): chunks read from the file
        self._by_file = bool(by_file) and parked is not None
        self._indexes = {}  # the joined feature tables' key indexes (_KeyIndex), built once for every chunk

    @classmethod
    def of(cls, frame, entity, con=None):
        """An event frame over a pandas frame held in memory (``con``: where its rule results go)."""
        return cls(entity, len(frame), frame.columns, frame=frame, con=con)

    @classmethod
    def of_table(cls, tables, entity, con=None):
        """An event frame over the feature table ``entity`` of ``tables`` (a :class:`FeatureTables`): read from
        its file once the tables are parked."""
        frame = tables.handle(entity) if tables.parked(entity) else tables[entity]
        return cls(entity, len(frame), frame.columns, tables=tables, con=con)

    def __len__(self) -> int:
        return self.n

    @property
    def empty(self) -> bool:
        return self.n == 0

    @property
    def connection(self):
        """The DuckDB connection the frame (and its rule results) live on, or None."""
        return self._con

    def chunks(self, size=None, columns=None):
        """The frame ``size`` rows at a time (default :data:`EVENT_CHUNK`), each indexed from 0; only
        ``columns`` when given (features are joined only when one of them is a feature)."""
        size = int(size or EVENT_CHUNK)
        for a in range(0, self.n, size):
            yield self._read(a, min(self.n, a + size), columns)

    def head(self, n=5) -> pd.DataFrame:
        """The first ``n`` rows (0: the columns and their dtypes)."""
        return self._read(0, min(self.n, n), None)

    def _read(self, a, b, columns):
        cols = self.columns if columns is None else list(columns)
        if self._table is None and self._tables is not None:
            return self._tables.rows(self.entity, a, b, cols)
        if self._table is None:
            return self._frame.iloc[a:b][cols].reset_index(drop=True)
        base = [c for c in cols if c in self._stored]
        if self._by_file:
            # rows a to b of the file are _fk_row a to b: read by Arrow in the file's order (on large 1.7 s for
            # the 23.7M interactions against 4.7 s for DuckDB's filter and sort on _fk_row, and their frames
            # made in 3.9 s against 6.6 s)
            table = _row_table(self._parked, a, b, base)
        else:
            sel = ", ".join(quote(c) for c in base)
            with QUERY_LOCK:
                table = self._con.execute(f"SELECT {sel} FROM {self._table} WHERE _fk_row >= {a} AND _fk_row < {b} "
                                          "ORDER BY _fk_row").to_arrow_table()
        frame = ns_timestamps(table.to_pandas())
        del table
        for c in self._floats:  # integers with nulls somewhere: float64, as in the whole frame
            if c in frame.columns:
                frame[c] = frame[c].astype(float)
        for c in self._objects:
            if c in frame.columns:
                frame[c] = frame[c].astype(object)
        if len(base) < len(cols):
            frame = _join_features(frame, self._feats, self._need, indexes=self._indexes)
        return frame[cols]

    def to_pandas(self) -> pd.DataFrame:
        """The whole frame (for small data and tests)."""
        if self._table is None:
            return self._tables[self.entity] if self._tables is not None else self._frame
        parts = list(self.chunks())
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=self.columns)

    def close(self) -> None:
        if self._table is not None and self._con is not None:
            drop_table(self._con, self._table, self._parked)
            self._table, self.n, self._parked = None, 0, None
            self._frame = pd.DataFrame(columns=self.columns)


class EventRules:
    """One event entity's rule results, written a chunk at a time (to a Parquet file in a parking folder when
    the frame has a connection, else frames in memory) and read back the same way.

    Attributes
    ----------
    hits : pandas.DataFrame
        Per rule: hits and hit rate over every row.
    rule_ids, statuses, aggregate
        As in :class:`~fraudkit.identification.rules.RuleResult`.
    frame : EventFrame
        The frame the rules were evaluated on.
    """

    def __init__(self, frame: EventFrame, *, rule_ids, statuses, aggregate):
        self.frame, self.rule_ids, self.statuses, self.aggregate = frame, tuple(rule_ids), tuple(statuses), aggregate
        self.hits = pd.DataFrame(columns=_HIT_COLUMNS)
        self._parts = []
        # a frame with a connection is a large one: its rows go to a Parquet file as they come (a DuckDB
        # temporary table of them, 23.7M rows on large, sat in the connection's memory through the rules step)
        self._path = None if frame.connection is None else (
            _parking_folder_of(frame.connection) / f"fk_rule_rows_{frame.entity}_{next(_ids)}.parquet")
        self._writer = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, rows: pd.DataFrame) -> None:
        """Write the rows of the next chunk (``score, action, flagged, matched, shadow_matched``)."""
        chunk = rows[_ROW_COLUMNS].reset_index(drop=True)
        if self._path is None:
            self._parts.append(chunk)
        else:
            if self._writer is None:
                if self._n:
                    raise RuntimeError("EventRules: no row can be appended once the results were read or parked")
                self._writer = ParquetStream(self._path, _ROWS_SCHEMA)  # each chunk written while the next is evaluated
            self._writer.write_table(pa.Table.from_pandas(chunk, schema=_ROWS_SCHEMA, preserve_index=False),
                                     row_group_size=_ROWS_GROUP)
        self._n += len(rows)

    def row_chunks(self, size=None):
        """The per-row results ``size`` rows at a time, aligned with ``frame.chunks(size)``."""
        size = int(size or EVENT_CHUNK)
        self._finish()
        whole = pd.concat(self._parts, ignore_index=True) if self._path is None and self._parts else None
        for a in range(0, self._n, size):
            b = min(self._n, a + size)
            if self._path is None:
                yield whole.iloc[a:b].reset_index(drop=True)
            else:
                yield read_rows(self._path, a, b, _ROW_COLUMNS)

    def chunks(self, size=None, columns=None):
        """``(frame chunk, RuleResult of its rows)`` pairs, ``size`` rows at a time (``columns`` of the frame
        only, when given). The results carry no match matrix (``matches`` has no column)."""
        for ev, rows in zip(self.frame.chunks(size, columns), self.row_chunks(size)):
            yield ev, self.result(rows)

    def result(self, rows) -> RuleResult:
        """A :class:`~fraudkit.identification.rules.RuleResult` over some of the rows."""
        return RuleResult(rows=rows, hits=self.hits, rule_ids=self.rule_ids,
                          matches=np.zeros((len(rows), 0), dtype=bool), aggregate=self.aggregate,
                          statuses=self.statuses)

    def score_chunks(self, size=None):
        """The score table rows (stage ``rules``, method ``RuleSet``) ``size`` rows at a time; an integer
        interaction key is Arrow text (a Python string per interaction took gigabytes on ``large``)."""
        for ev, res in self.chunks(size, [self.frame.key]):
            yield _score_rows(self.frame.entity, ev[self.frame.key], res.rows)

    def score_tables(self, size=None):
        """:meth:`score_chunks` as Arrow tables."""
        for ev, res in self.chunks(size, [self.frame.key]):
            yield _score_table(self.frame.entity, ev[self.frame.key], res.rows)

    def park(self) -> None:
        """Finish the results' file (they are read back a chunk at a time); no row can be appended after."""
        self._finish()

    def close(self) -> None:
        self._finish()
        if self._path is not None:
            shutil.rmtree(self._path.parent, ignore_errors=True)
            self._path, self._n = None, 0
        self._parts = []

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif self._path is not None and not self._path.exists():  # no row: an empty file, read as one
            pq.write_table(_ROWS_SCHEMA.empty_table(), self._path)


def _parked_query(con, table: str, query: str, *, number_rows: bool = False) -> Path:
    """Write the rows of ``query`` (in its order) to a Parquet file in a new parking folder of the connection's
    ``temp_directory`` and name them ``table``: a view over the file. Return the file; :func:`drop_table`
    removes both.

    A table that only ever reads back a chunk at a time lives in its file from the start: as a DuckDB
    temporary table the 23.7M interactions of ``large`` with their rule columns held 2 GB of the connection's
    memory through the whole rules step.

    With ``number_rows``, the view's first column ``_fk_row`` is each row's position in the file (from 0, in
    the query's order): DuckDB's ``file_row_number``, by which a read of rows ``a`` to ``b`` skips the file's
    other row groups as a stored column's statistics let it. (Numbering the interactions of ``large`` by a
    ``row_number()`` window sorted their 23.7M rows a second time: 38 s against 22 s for the query written
    in its order.) The query must have no column named ``file_row_number``: that name would hide the file's.
    """
    path = _parking_folder_of(con) / f"{table}.parquet"
    literal = "'" + path.as_posix().replace("'", "''") + "'"
    columns = f"{_FILE_ROW} AS _fk_row, *" if number_rows else "*"
    with QUERY_LOCK:
        con.execute(f"COPY ({query}) TO {literal} (FORMAT PARQUET)")
        con.execute(f"CREATE TEMP VIEW {table} AS SELECT {columns} FROM read_parquet({literal})")
    return path


_FILE_ROW = "file_row_number"
"""DuckDB's virtual column of a Parquet file read: each row's position in its file (from 0)."""


def _parking_folder_of(con) -> Path:
    """A new parking folder (:func:`parking_folder`) in the DuckDB connection's ``temp_directory``."""
    with QUERY_LOCK:
        base = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    return parking_folder(base or tempfile.gettempdir())


def drop_table(con, table: str, parked: Path) -> None:
    """Drop the view ``table`` and the file (and parking folder) of :func:`_parked_query` it reads."""
    with QUERY_LOCK:
        con.execute(f"DROP VIEW IF EXISTS {table}")
    shutil.rmtree(parked.parent, ignore_errors=True)


def feature_tables(ds, features=None) -> FeatureTables:
    """The feature tables per entity: ``features`` when it has ``account``, ``device``, ``ip`` and ``order``,
    else those computed here (:func:`fraudkit.capability.features.entity_features`) with ``features`` on top.

    ``features`` is not changed; a run computes its feature tables once (the behaviour stage's, or these)
    and passes them forward.

    Examples
    --------
    >>> import pandas as pd
    >>> given = {e: pd.DataFrame() for e in ("account", "device", "ip", "order")}
    >>> feature_tables(None, given) == given
    True
    """
    feats = features if isinstance(features, FeatureTables) else FeatureTables(features or {})
    if not {"account", "device", "ip", "order"} <= set(feats):
        feats = FeatureTables(entity_features(ds)).with_tables(feats)
    return feats


def missing_inputs(ds) -> set:
    """Inputs a dataset lacks: contract tables, ``table.column`` with no values, ``table.ts:time_of_day``.

    A platform-contract dataset may carry only ``accounts`` and ``interactions``, with null ``ip`` and
    ``device_id`` and times truncated to dates; rules declare what they need (``requires``) and are
    switched off, with a note, when it is missing (:meth:`fraudkit.identification.rules.RuleSet.for_inputs`).

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.data.dataset import Dataset
    >>> acc = pd.DataFrame({"account_id": [1], "registered_at": pd.to_datetime(["2024-01-01"]),
    ...                     "register_channel": "app", "phone": [None]})
    >>> it = pd.DataFrame({"event_id": [1], "ts": pd.to_datetime(["2024-01-02"]), "account_id": [1],
    ...                    "device_id": [None], "ip": [None], "action": ["like"], "target_id": [9]})
    >>> m = missing_inputs(Dataset.from_tables({"accounts": acc, "interactions": it}))
    >>> sorted(x for x in m if x.startswith(("interactions", "accounts")))
    ['accounts.phone', 'interactions.device_id', 'interactions.ip', 'interactions.ts:time_of_day']
    """

    out = set()
    for name, spec in TABLES.items():
        if not ds.has(name):
            out.add(name)
            continue
        nullable = [c.name for c in spec.columns if c.nullable]
        timed = spec.time_column if name in ("interactions", "orders", "logins", "coupon_claims") else None
        parts = [f'count("{c}") as "{c}"' for c in nullable]
        if timed:
            parts.append(f'count(*) filter (where "{timed}" is not null and cast("{timed}" as time) <> '
                         f"time '00:00:00') as _time_of_day")
        if not parts:
            continue
        row = ds.sql(f"select {', '.join(parts)} from {name}").iloc[0]
        out |= {f"{name}.{c}" for c in nullable if int(row[c]) == 0}
        if timed and int(row["_time_of_day"]) == 0:
            out.add(f"{name}.{timed}{TIME_OF_DAY}")
    return out

def list_store_for(ds):
    """A :class:`~fraudkit.capability.lists.ListStore` over the dataset's ``list_entries`` table (empty without one)."""

    if ds.has("list_entries"):
        return ListStore(ds.to_pandas("list_entries"), audit=None)
    return ListStore()

def rule_columns(ds, *, features=None) -> dict:
    """Zero-row frames with every column a rule of each entity may read (for ``rules check --data``)."""
    feats = features if features is not None else feature_tables(ds)
    out = {"account": feats["account"].head(0), "device": feats["device"].head(0), "ip": feats["ip"].head(0),
           "order": feats["order"].head(0)}
    if ds.has("interactions"):
        base = ds.table("interactions").limit(0).to_pandas()
        extra = {f"acct_{c}": feats["account"][c].head(0) for c in feats["account"].columns[1:]}
        extra |= {f"dev_{c}": feats["device"][c].head(0) for c in feats["device"].columns[1:]}
        extra |= {f"ip_{c}": feats["ip"][c].head(0) for c in feats["ip"].columns[1:]}
        extra |= {a.name: pd.Series(dtype=float) for a in _interaction_accumulators()}
        out["interaction"] = pd.concat([base, pd.DataFrame(extra)], axis=1)
    return out

def rule_frames(ds, ruleset, *, features=None, stream=False) -> dict:
    """Frames the rules of each entity are evaluated on: ``{entity: DataFrame}``.

    ``account``, ``device``, ``ip`` and ``order`` are the feature tables of
    :mod:`fraudkit.capability.features`; ``interaction`` is the interactions table plus
    only the columns its rules read: account (``acct_``), device (``dev_``) and
    IP (``ip_``) features joined by key, and interaction accumulators.
    ``ruleset`` may also be a list of RuleSets (columns of all of them), or a
    tuple of entity names (interactions: the bare table).

    With ``stream=True`` orders and interactions come as :class:`EventFrame` (read a chunk at a time): the
    interactions then live in a DuckDB table of the dataset's connection, never whole in pandas.
    """

    sets = [ruleset] if isinstance(ruleset, RuleSet) else [r for r in ruleset if isinstance(r, RuleSet)]
    entities = set().union(*[r.entities for r in sets]) if sets else set(ruleset)
    feats = features if features is not None else feature_tables(ds)
    tables = feats if isinstance(feats, FeatureTables) else FeatureTables(feats)
    out = {}
    for e in entities:
        if e in ("account", "device", "ip", "order"):
            out[e] = EventFrame.of_table(tables, e, _raw_connection(ds)) if stream and e == "order" else feats[e]
        elif e == "interaction" and ds.has("interactions"):
            need = set().union(*[r.columns("interaction") for r in sets]) if sets else set()
            out[e] = _interaction_stream(ds, feats, need) if stream else _interaction_frame(ds, feats, need)
    return out

def check_ruleset(path, data=None) -> str:
    """Load and compile a rule set; describe it, or raise RuleError listing every problem.

    With ``data`` (a dataset folder), column references are checked against the
    feature frames built from it (:func:`fraudkit.pipeline.frames.rule_frames`).

    Examples
    --------
    >>> print(check_ruleset("default").splitlines()[0])  # doctest: +ELLIPSIS
    rule set 'default' version ...
    """
    columns = None
    lists = None
    off = {}
    if data is not None:

        ds = load_dataset(data)
        columns = rule_columns(ds)
        lists = list_store_for(ds)
        # Rules whose declared inputs the dataset lacks are switched off (as `fraudkit score` does),
        # so only the rules that will run are checked against the dataset's columns.
        rs, off = load_ruleset(path, lists=lists).for_inputs(missing_inputs(ds))
        spec = rs.to_dict()
        load_ruleset({**spec, "rules": [r for r in spec["rules"] if r["id"] not in off]},
                     columns=columns, lists=lists)
    else:
        rs = load_ruleset(path, columns=columns, lists=lists)
    counts = pd.Series([r.status for r in rs.rules]).value_counts()
    th = ", ".join(f"{k} >= {v:g}" for k, v in rs.thresholds)
    lines = [f"rule set {rs.name!r} version {rs.version}: {len(rs.rules)} rules "
             f"({counts.get('active', 0)} active, {counts.get('shadow', 0)} shadow, {counts.get('off', 0)} off); "
             f"aggregate {rs.aggregate}; thresholds {th}",
             "checked against " + (f"the features of {data}" if data is not None else "syntax and safety only "
                                   "(pass --data to check column names and types)")]
    for r in rs.rules:
        ls = ", ".join(f"{k}('{n}')" for k, n in sorted(lists_of(r.node)))
        lines.append(f"  {r.id:28s} {r.entity:11s} {r.status:6s} {r.action:6s} score {r.score:>5g}  "
                     f"reads {', '.join(sorted(r.columns))}" + (f"; lists {ls}" if ls else ""))
    for rid, why in off.items():
        lines.append(f"  switched off for this dataset: {rid} (missing {', '.join(why)})")
    lines.append("ok")
    return "\n".join(lines)


# --- private helpers ----------------------------------------------------------------------------


def _interaction_accumulators():

    return [a for a in DEFAULT_ACCUMULATORS if a.table == "interactions"]

def _interaction_frame(ds, feats, need):
    """The interactions table with the ``acct_``/``dev_``/``ip_`` features and accumulators its rules read.

    Keys are matched once per distinct key (a categorical's categories, or the factorized values), never by
    turning every one of the table's rows into text: on ``large`` (23.7M interactions) the text keys of the
    rows alone took gigabytes.
    """
    frame = _join_features(_table_frame(ds, "interactions"), feats, need)
    accs = [a for a in _interaction_accumulators() if a.name in need]
    if accs:

        acc = compute(accs, ds)
        if acc["event_id"].dtype == frame["event_id"].dtype:
            pos = pd.Index(acc["event_id"]).get_indexer(frame["event_id"])
        else:
            pos = pd.Index(acc["event_id"].astype(str)).get_indexer(frame["event_id"].astype(str))
        for a in accs:
            frame[a.name] = acc[a.name].to_numpy()[pos]
        del acc, pos
    return frame


def _join_features(frame, feats, need, *, indexes=None):
    """``frame`` with the ``acct_``/``dev_``/``ip_`` features of ``need`` joined by key (in place).

    ``indexes``: a dict kept by the caller across the chunks of one frame, holding each feature table's key
    index (:class:`_KeyIndex`), built on first use (large's 1.3M device keys: 0.13 s a chunk when built each time)."""
    joins = (("acct_", "account", "account_id"), ("dev_", "device", "device_id"), ("ip_", "ip", "ip"))
    indexes = {} if indexes is None else indexes
    for prefix, entity, key in joins:
        f = feats[entity]
        cols = [c[len(prefix):] for c in sorted(need) if c.startswith(prefix) and c not in frame.columns]
        cols = [c for c in cols if c in f.columns]
        if not cols:
            continue
        if entity not in indexes:
            indexes[entity] = _KeyIndex(f[key])
        idx = _positions(frame[key], indexes[entity])
        found = idx >= 0
        for c in cols:
            vals = f[c].to_numpy(dtype=float, na_value=np.nan) if f[c].dtype != object else f[c].to_numpy()
            col = vals[np.where(found, idx, 0)] if len(vals) else np.full(len(frame), np.nan)
            frame[prefix + c] = np.where(found, col, np.nan if vals.dtype != object else None)
            del col
    return frame


def _raw_connection(ds):
    """The dataset's raw DuckDB connection, or None (a Spark dataset)."""
    import duckdb

    raw = getattr(getattr(ds, "_con", None), "con", None)
    return raw if isinstance(raw, duckdb.DuckDBPyConnection) and hasattr(ds, "view") else None


def _interaction_stream(ds, feats, need) -> EventFrame:
    """:func:`_interaction_frame` as an :class:`EventFrame`: the interactions in their canonical order with the
    accumulators ``need`` reads, materialised once in a DuckDB table of the dataset's connection (the same
    window SQL as :func:`fraudkit.capability.accumulators.compute`), the features joined chunk by chunk."""
    raw = _raw_connection(ds)
    if raw is None:
        return EventFrame.of(_interaction_frame(ds, feats, need), "interaction")
    view = ds.view("interactions")
    schema = raw.execute(f"SELECT * FROM {view} LIMIT 0").to_arrow_table().schema
    base = list(schema.names)
    keys = ", ".join(f'"{c}"' for c in canonical_sort_keys("interactions", base))
    accs = [a for a in _interaction_accumulators() if a.name in need]
    table = f"fk_rule_frame_interaction_{next(_ids)}"
    rows = with_accumulators(view, base, accs)
    with smaller_memory_limit(raw, RULE_FRAME_MEMORY):  # the feature tables are in memory beside it
        by_file = _FILE_ROW not in base
        if not by_file:  # a column of that name hides the file's row numbers: numbered by a window
            parked = _parked_query(raw, table, f"SELECT row_number() OVER (ORDER BY {keys}) - 1 AS _fk_row, * "
                                              f"FROM ({rows}) ORDER BY _fk_row")
        else:
            parked = _parked_query(raw, table, f"{rows} ORDER BY {keys}", number_rows=True)
    # the dtypes the whole frame read through Arrow has: an integer (boolean) column with a null anywhere
    # is float64 (object) in every chunk
    nullable = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)]
    nulls = raw.execute(f"SELECT count(*), {', '.join(f'count(*) - count({quote(c)})' for c in nullable) or '0'} "
                        f"FROM {table}").fetchone()
    n, nulls = int(nulls[0]), dict(zip(nullable, nulls[1:]))
    with_null = [c for c in nullable if nulls[c]]
    floats = [c for c in with_null if pa.types.is_integer(schema.field(c).type)]
    objects = [c for c in with_null if c not in floats]
    head = ns_timestamps(schema.empty_table().to_pandas())
    joined = [c for c in _join_features(head, feats, need).columns if c not in base]
    return EventFrame("interaction", n, base + joined + [a.name for a in accs], con=raw, table=table,
                      stored=base + [a.name for a in accs], feats=feats, need=need, floats=floats, objects=objects,
                      parked=parked, by_file=by_file)


def _table_frame(ds, name):
    """``ds.to_pandas(name)``: the same frame (rows in the canonical order, nanosecond times), read straight
    from the dataset's DuckDB connection through Arrow when it has one (measured 4.1 s against 6.7-8.9 s on
    the 2.4M interactions of the medium world; Arrow gives one Python string per distinct text)."""
    raw = _raw_connection(ds)
    if raw is None:
        return ds.to_pandas(name)
    cols = list(ds.table(name).columns)
    keys = ", ".join(f'"{c}"' for c in canonical_sort_keys(name, cols))
    table = raw.execute(f"SELECT * FROM {ds.view(name)} ORDER BY {keys}").to_arrow_table()
    frame = ns_timestamps(table.to_pandas())
    del table
    return frame


def _positions(keys: pd.Series, table_keys) -> np.ndarray:
    """Row of ``table_keys`` (unique; a Series, or its :class:`_KeyIndex`) holding each of ``keys`` (-1: not
    there, or null), matched as text (:func:`_key_text`) once per distinct key.

    Integer keys (or floats that all hold integers, as an integer column with nulls is read) are looked up as
    integers among the table's keys that are integers or their canonical text (``"42"``, not ``"042"`` or
    ``" 42"``): the same matches as their text, without a text per distinct key (large: 1M device ids a chunk).

    Examples
    --------
    >>> _positions(pd.Series([2.0, None, 7.0, 2.0]), pd.Series(["7", "2"])).tolist()
    [1, -1, 0, 1]
    >>> _positions(pd.Series([2.0, None, 7.0, 2.0]), _KeyIndex(pd.Series(["7", "2"]))).tolist()
    [1, -1, 0, 1]
    >>> _positions(pd.Series([7, 42, 5]), pd.Series(["042", "7", "x", "5.0"])).tolist()
    [1, -1, -1]
    """
    if isinstance(keys.dtype, pd.CategoricalDtype):
        codes, uniq = keys.cat.codes.to_numpy(), pd.Series(keys.cat.categories)
    else:
        codes, uniq = pd.factorize(keys)
        uniq = pd.Series(uniq, dtype=keys.dtype if keys.dtype != object else object)
    table = table_keys if isinstance(table_keys, _KeyIndex) else _KeyIndex(table_keys)
    whole = _whole_numbers(uniq)
    if not len(uniq):
        at = np.zeros(0, dtype=np.intp)
    elif whole is not None:
        at = table.integers.get_indexer(whole)
    else:
        at = table.text.get_indexer(_key_text(uniq))
    return np.where(codes >= 0, at[np.maximum(codes, 0)] if len(at) else -1, -1)


class _KeyIndex:
    """A feature table's keys for :func:`_positions`: as text (every key), and as integers (the keys whose text an
    integer key's text can equal), each built when first read."""

    def __init__(self, table_keys: pd.Series):
        self._keys = table_keys
        self._text = self._integers = None

    @property
    def text(self) -> pd.Index:
        if self._text is None:
            self._text = pd.Index(_key_text(self._keys))
        return self._text

    @property
    def integers(self) -> "_IntegerKeys":
        if self._integers is None:
            self._integers = _IntegerKeys(*_integer_keys(self._keys))
        return self._integers


class _IntegerKeys:
    """:attr:`_KeyIndex.integers`: integers looked up among a table's integer keys, giving the table's rows."""

    def __init__(self, values, rows):
        self.index, self.rows = pd.Index(values), rows

    def get_indexer(self, values) -> np.ndarray:
        at = self.index.get_indexer(values)
        return np.where(at >= 0, self.rows[np.maximum(at, 0)], -1) if len(self.rows) else np.full(len(at), -1)


def _integer_keys(keys: pd.Series):
    """``(values, rows)``: the int64 value and row of each table key whose :func:`_key_text` is the text of an
    integer: integer columns (nulls left out); float columns whose values all hold integers (else their text is
    ``"42.0"``); text that is a canonical decimal integer in int64 (``"42"``, not ``"042"``, ``"+42"`` or ``" 42"``).
    Other keys never equal an integer's text."""
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.intp))
    dtype = keys.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return none
    if pd.api.types.is_integer_dtype(dtype):
        ok = keys.notna().to_numpy(dtype=bool)
        if ok.any() and keys[ok].max() >= 2 ** 63:
            return none
        return keys[ok].to_numpy(dtype=np.int64), np.flatnonzero(ok)
    if pd.api.types.is_float_dtype(dtype):
        v = keys.to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(v)
        if not (v[ok] == np.round(v[ok])).all() or (np.abs(v[ok]) >= 2 ** 63).any():
            return none
        return v[ok].astype(np.int64), np.flatnonzero(ok)
    if dtype == object or pd.api.types.is_string_dtype(dtype):
        text = keys.astype(str).to_numpy(dtype=object)
        ok = pd.Series(text, dtype="string").str.fullmatch(r"-?[1-9][0-9]{0,18}|0").fillna(False) \
            .to_numpy(dtype=bool)
        for i in np.flatnonzero(ok & (pd.Series(text).str.len().to_numpy() >= 19)):  # 19 digits: in int64?
            ok[i] = -2 ** 63 <= int(text[i]) < 2 ** 63
        return pd.Series(text[ok], dtype="string").astype("int64").to_numpy(), np.flatnonzero(ok)
    return none


def _whole_numbers(keys: pd.Series):
    """Distinct keys (no null) as int64 when :func:`_key_text` writes them as integers (an integer column, or
    floats all holding integers: :func:`_integer_keys` of every key); else None (looked up as text)."""
    dtype = keys.dtype
    if (not len(keys) or keys.isna().any()
            or not (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype))):
        return None
    values, rows = _integer_keys(keys)
    return values if len(rows) == len(keys) else None


def _key_text(keys: pd.Series) -> pd.Series:
    """Entity keys as text, the same whatever dtype the reader chose: an integer key column with nulls comes
    back as float64 (``326837000000.0``); it is read back as the integers it holds."""
    if pd.api.types.is_float_dtype(keys):
        whole = keys.dropna()
        if len(whole) == 0 or bool((whole == whole.round()).all()):
            keys = keys.astype("Int64")
    return keys.astype(str)


def evaluate_rules(ruleset, frames, lists, *, as_of=None, notes=None, chunk=None) -> RuleEvaluation:
    """Evaluate ``ruleset`` once on each entity's frame: the one place a run evaluates its rules.

    Events (frames with ``ts``) look lists up at their own time, entity tables as of ``as_of`` (the data's
    end, :func:`data_end`). An entity with no rows, or whose frame lacks a column its rules read, is skipped
    with a note in ``notes``. Orders and interactions are evaluated ``chunk`` events at a time (default
    :data:`EVENT_CHUNK`), their per-row results written as they come (:class:`EventRules`) and only their
    hits and per-account rollups kept: the result is the same whatever the chunk.

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.identification.rules import load_ruleset
    >>> rs = load_ruleset({"name": "t", "rules": [{"id": "busy", "entity": "account", "score": 10,
    ...                    "condition": "n_actions >= 5"}]})
    >>> ev = evaluate_rules(rs, {"account": pd.DataFrame({"account_id": [1, 2], "n_actions": [9, 1]})}, None)
    >>> ev.results["account"].rows["score"].tolist(), ev.scores["entity_id"].tolist()
    ([10.0, 0.0], ['1', '2'])
    """
    notes = [] if notes is None else notes
    results, hits, scores, used, rollups = {}, [], [], {}, {}
    for entity in ruleset.entities:
        frame = frames.get(entity)
        if frame is None or frame.empty:
            notes.append(f"rules: {entity} rules skipped (no {entity} rows)")
            continue
        missing = ruleset.columns(entity) - set(frame.columns)
        if missing:
            notes.append(f"rules: {entity} rules skipped, features {', '.join(sorted(missing))} are missing")
            continue
        if entity in _EVENTS:
            frame = frame if isinstance(frame, EventFrame) else EventFrame.of(frame, entity)
            res, rollup = _evaluate_events(ruleset, frame, lists, as_of, chunk)
            results[entity], used[entity] = res, frame
            hits.append(res.hits)
            scores.append((entity, res))
            if rollup is not None:
                rollups[entity] = rollup
            continue
        res = ruleset.evaluate(frame, lists=lists, entity=entity, as_of=None if "ts" in frame.columns else as_of)
        results[entity], used[entity] = res, frame
        hits.append(res.hits)
        scores.append((entity, _score_rows(entity, frame[_ENTITY_KEYS[entity]], res.rows)))
        if "account_id" in frame.columns:
            rollups[entity] = _rollup([_account_rows(frame, res.rows)])
    entity_rows = [sf for e, sf in scores if e not in _EVENTS]
    return RuleEvaluation(frames=used, results=results,
                          hits=pd.concat(hits, ignore_index=True) if hits else pd.DataFrame(columns=_HIT_COLUMNS),
                          scores=pd.concat(entity_rows, ignore_index=True) if entity_rows else None,
                          parts=tuple(sf for _, sf in scores), rollups=rollups)


def _evaluate_events(ruleset, frame: EventFrame, lists, as_of, chunk):
    """The rules of an event entity over ``frame`` a chunk at a time: its :class:`EventRules` (hits summed over
    the chunks) and its per-account rollup (None without ``account_id``)."""
    entity = frame.entity
    out, counts, per, n = None, None, [], 0
    for part in frame.chunks(chunk, _rule_inputs(ruleset, frame)):
        res = ruleset.evaluate(part, lists=lists, entity=entity, as_of=None if "ts" in part.columns else as_of)
        if out is None:
            out = EventRules(frame, rule_ids=res.rule_ids, statuses=res.statuses, aggregate=res.aggregate)
            counts, hits = np.zeros(len(res.rule_ids), dtype=np.int64), res.hits
        out.append(res.rows)
        counts += res.matches.sum(axis=0)
        n += len(part)
        if "account_id" in part.columns:
            per.append(_rollup([_account_rows(part, res.rows)]))
        del part, res
    out.hits = hits.assign(hits=counts.astype(np.int64), hit_rate=counts / max(n, 1))
    return out, (_merge_rollups(per) if per else None)


def _rule_inputs(ruleset, frame) -> list:
    """The columns of ``frame`` the rules of its entity read: their conditions' columns, the key, the account
    (rollups), the time (list lookups as of each event) and the promotion and scene (scopes). A chunk of the
    order feature table's 62 columns took 3 GB on ``large``; the rules read a dozen.

    Examples
    --------
    >>> from fraudkit.identification.rules import load_ruleset
    >>> rs = load_ruleset({"name": "t", "rules": [{"id": "big", "entity": "order", "score": 10,
    ...                    "condition": "amount >= 5"}]})
    >>> _rule_inputs(rs, EventFrame.of(pd.DataFrame(columns=["order_id", "x", "amount", "ts"]), "order"))
    ['order_id', 'amount', 'ts']
    """
    want = ruleset.columns(frame.entity) | {frame.key, "account_id", "ts", "promotion_id", "scene"}
    return [c for c in frame.columns if c in want]


def _score_rows(entity, keys: pd.Series, rows: pd.DataFrame) -> pd.DataFrame:
    """Score table rows (stage ``rules``, method ``RuleSet``) of an entity's rule results; integer interaction
    keys as Arrow text (the same text as ``astype(str)``)."""
    compact = entity == "interaction" and pd.api.types.is_integer_dtype(keys)
    sf = score_frame(np.zeros(len(keys), np.int8) if compact else keys.astype(str).to_numpy(), rows["score"],
                     rows["action"] != "pass", entity_type=entity, stage="rules", method="RuleSet",
                     reasons=rows["matched"])
    if compact:
        sf["entity_id"] = pd.array(pa.array(keys.to_numpy()).cast(pa.string()), dtype=pd.ArrowDtype(pa.string()))
    return sf


def _score_table(entity, keys: pd.Series, rows: pd.DataFrame) -> pa.Table:
    """:func:`_score_rows` as an Arrow table (the same column types), built without a Python object per row
    but the reasons' (the run's score file takes 26M event rows on ``large``)."""
    n = len(keys)

    def const(text):
        return pa.repeat(pa.scalar(text, pa.string()), n)

    return pa.table({"entity_type": const(entity), "entity_id": arrow_text(keys), "stage": const("rules"),
                     "method": const("RuleSet"), "score": pa.array(rows["score"].to_numpy(dtype=float)),
                     "flagged": pa.array((rows["action"] != "pass").to_numpy(dtype=bool)),
                     "reason": pa.array(rows["matched"].to_numpy(dtype=object), type=pa.string())})


def _account_rows(frame, rows):
    return pd.DataFrame({"account_id": frame["account_id"].to_numpy(), "score": rows["score"].to_numpy(),
                         "matched": rows["matched"].to_numpy()})


def _rollup(parts):
    """Per account the worst score, and the distinct (account, matched) pairs that matched, of row chunks
    (``account_id, score, matched`` frames): ``(worst, pairs)``, the same whatever the chunks."""
    per = pd.concat(parts, ignore_index=True)
    worst = per.groupby("account_id", sort=False).score.max()
    pairs = per.loc[per.matched != "", ["account_id", "matched"]].drop_duplicates(ignore_index=True)
    return worst, pairs


def _merge_rollups(rollups):
    """One rollup of several :func:`_rollup` results (chunk by chunk), equal to the rollup of all their rows."""
    worst = pd.concat([w for w, _ in rollups])
    pairs = pd.concat([p for _, p in rollups], ignore_index=True).drop_duplicates(ignore_index=True)
    return worst.groupby(level=0, sort=False).max(), pairs


def _is_arrow(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.ArrowDtype)


def data_end(ds):
    """The last event time of the dataset plus 1 µs (lists are checked as of it for entity tables); None without events.

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.data.dataset import Dataset
    >>> acc = pd.DataFrame({"account_id": [1], "registered_at": pd.to_datetime(["2024-01-01"]),
    ...                     "register_channel": "app", "phone": ["1"]})
    >>> it = pd.DataFrame({"event_id": [1], "ts": pd.to_datetime(["2024-01-02 10:00"]), "account_id": [1],
    ...                    "device_id": [None], "ip": [None], "action": ["like"], "target_id": [9]})
    >>> data_end(Dataset.from_tables({"accounts": acc, "interactions": it}))
    Timestamp('2024-01-02 10:00:00.000001')
    """
    ends = []
    for name in ("interactions", "orders", "logins", "coupon_claims"):
        if ds.has(name):
            v = ds.sql(f"select max(ts) as t from {name}")["t"].iloc[0]
            if v is not None and not pd.isna(v):
                ends.append(pd.Timestamp(v))
    return max(ends) + pd.Timedelta(microseconds=1) if ends else None
