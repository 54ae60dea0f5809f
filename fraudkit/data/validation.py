"""Contract checks, written once as DuckDB SQL and run on DuckDB or Spark, so they scale to billions of rows.

:func:`check_tables` takes raw table sources on an engine (:mod:`fraudkit.data.engine`: a DuckDB connection
with a ``read_parquet`` / ``read_csv`` call or a registered DataFrame, or a Spark session with temporary
views; the SQL is transpiled to Spark SQL there and gives the same findings), checks every
rule of :mod:`fraudkit.data.contract` and creates one typed view per table, named
after it. Each table is scanned once for all of its per-row checks (one
aggregate query), once more for duplicate keys, and once per foreign key.

Rules
-----
* A required table must be present and hold rows; every contract column must
  be present. An optional table without rows (a header only) is checked and
  then treated as absent: it has no view, so every stage says it lacks it.
* Types: ``id`` is an integer or a string, with one type per entity in
  every table: integers when every value of that entity's key columns is an
  integer (or integer text such as ``17``, not ``007``), text otherwise (see
  :func:`_id_domains`); a table whose ids are text while the same entity's
  ids elsewhere are all integers is an error. ``int`` is a whole number;
  ``float`` a finite number (NaN is missing: rejected in a required column,
  whether a Parquet NaN or ``nan`` text in a CSV); ``bool`` true/false/1/0;
  ``timestamp`` a Parquet timestamp/date or ISO-8601 text
  (``2024-11-11 20:00:00``).
* Timestamps lie in ``[1990-01-01, now + 365 days]`` where ``now`` is the
  wall clock of the run: earlier or later values are a unit or clock error.
* Non-nullable columns hold no null (empty text counts as null for ids and
  strings); primary keys are unique; ``min_value`` / ``max_value`` /
  ``allowed`` hold; a foreign key (``references``) points at an existing row
  when the referenced table is present (a nullable one may be null);
  ``promotions.ends_at > starts_at``; ``orders.received_at >= ts``;
  ``list_entries.expires_at >= added_at``.

Table- and column-level problems (a missing table or column, a file that
cannot be read, a column none of whose values has the right type) are fatal.
Row-level problems are fatal too unless a quarantine folder is given: then
the offending rows are written to ``<quarantine>/<table>.parquet`` with their
raw values and a ``_reason`` column, and the table's view keeps the clean
rows only. Rows of a duplicate key whose copies are all identical keep one
copy (the others are quarantined as "exact copy"); copies that differ are
all quarantined, because nothing says which one is right. Child rows that
reference a quarantined parent row are quarantined with the reason
"references a quarantined row" (the cascade), so no view ever holds a
dangling reference. Nothing is dropped without being written and counted.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from fraudkit.data.contract import LABEL_TABLE, TABLES, TableSpec
from fraudkit.data.engine import DuckDBEngine, Engine
from fraudkit.errors import DataValidationError, ValidationIssue

__all__ = [
    "TableSource",
    "ValidationReport",
    "CheckedTables",
    "check_tables",
    "TIMESTAMP_MIN",
    "TIMESTAMP_MAX_AHEAD",
    "SQL_TYPES",
]

TIMESTAMP_MIN = _dt.datetime(1990, 1, 1)
"""Earliest accepted timestamp."""

TIMESTAMP_MAX_AHEAD = _dt.timedelta(days=365)
"""Latest accepted timestamp, relative to the wall clock of the run."""

SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}
"""DuckDB type of each logical type in the typed views (``id`` is BIGINT or VARCHAR)."""

# (table, earlier column, later column, strict): the later column must come after the earlier one.
_ORDERED = (
    ("promotions", "starts_at", "ends_at", True),
    ("orders", "ts", "received_at", False),
    ("list_entries", "added_at", "expires_at", False),
)

_TYPE_FIX = {
    "id": "use integers or strings for ids",
    "int": "use whole numbers such as 3",
    "float": "use finite numbers such as 19.9",
    "bool": "use true/false (or 1/0)",
    "timestamp": "use ISO-8601 such as 2024-11-11 20:00:00 (or a Parquet timestamp)",
}


@dataclass(frozen=True)
class TableSource:
    """One table as read, before any check.

    Parameters
    ----------
    name : str
        Contract table name.
    file : str
        How messages name it: the file name, or ``"<name> (in memory)"``.
    relation : str
        SQL that reads the raw rows, e.g. ``read_parquet('/data/orders.parquet')``
        or the name of a registered DataFrame.
    text : bool, default=False
        Every column is text (a CSV file read with ``all_varchar``).
    """

    name: str
    file: str
    relation: str
    text: bool = False


@dataclass(frozen=True)
class ValidationReport:
    """What validation found.

    Attributes
    ----------
    path : str
        The dataset checked.
    issues : tuple of ValidationIssue
        Every problem found, in contract order.
    fatal : tuple of ValidationIssue
        The problems that stop loading (all of them without quarantine;
        table- and column-level ones with it).
    counts : dict of str to int
        Rows read per table.
    rejected : dict of str to int
        Rows quarantined per table (empty without quarantine).
    quarantine : str or None
        Quarantine folder, when one was used.
    """

    path: str
    issues: tuple[ValidationIssue, ...] = ()
    fatal: tuple[ValidationIssue, ...] = ()
    counts: dict = field(default_factory=dict)
    rejected: dict = field(default_factory=dict)
    quarantine: str | None = None

    @property
    def ok(self) -> bool:
        """True when the data can be loaded (no fatal problem)."""
        return not self.fatal

    def raise_for_issues(self) -> None:
        """Raise :class:`~fraudkit.errors.DataValidationError` listing every fatal problem."""
        if self.fatal:
            raise DataValidationError(self.fatal)

    def describe(self) -> str:
        """Human-readable summary: rows per table, rejected rows, every problem."""
        lines = [f"dataset {self.path}: {len(self.counts)} table(s), {sum(self.counts.values()):,} rows"]
        width = max((len(t) for t in self.counts), default=0)
        for t, n in self.counts.items():
            rej = self.rejected.get(t, 0)
            extra = f"  ({rej:,} rejected -> {Path(self.quarantine) / (t + '.parquet')})" if rej else ""
            if not n and _spec(t).required is False:
                extra = "  (no rows: treated as absent; the stages that need it say so)"
            lines.append(f"  {t:<{width}}  {n:>12,} rows{extra}")
        if not self.issues:
            lines.append("OK: the data follows the contract.")
            return "\n".join(lines)
        handled = [i for i in self.issues if i not in self.fatal]
        if self.fatal:
            lines.append(f"FAILED: {len(self.fatal)} problem(s) stop loading:")
            lines += [f"  - {i}" for i in self.fatal]
        if handled:
            lines.append(f"{'OK' if not self.fatal else 'Also'}: {len(handled)} row-level problem(s) "
                         f"quarantined to {self.quarantine}:")
            lines += [f"  - {i}" for i in handled]
        if self.fatal and self.quarantine:
            lines.append("Nothing was written to the quarantine folder: fix the problems above first.")
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckedTables:
    """Result of :func:`check_tables`: the report and the typed views created.

    Attributes
    ----------
    report : ValidationReport
    views : dict of str to str
        Table name -> name of the typed DuckDB view of its clean rows.
    types : dict of str to dict
        Table name -> {contract column: DuckDB type} of the view.
    """

    report: ValidationReport
    views: dict
    types: dict


def check_tables(con, sources, *, path="", quarantine=None, now=None, validate=True, required=None,
                 issues=(), peers=None) -> CheckedTables:
    """Check raw tables against the contract and create one typed view per table.

    Parameters
    ----------
    con : Engine or duckdb.DuckDBPyConnection
        Engine the sources can be read on (a raw DuckDB connection is run by a
        :class:`~fraudkit.data.engine.DuckDBEngine`); views are created on it.
    sources : dict of str to TableSource
        The tables present (contract names, ``labels`` included).
    path : str, default=""
        Dataset name used in the report.
    quarantine : path-like or None, default=None
        Folder for rejected rows; ``None`` makes every problem fatal.
    now : datetime or None, default=None
        Wall clock for the timestamp range rule (default: now).
    required : iterable of str or None, default=None
        Tables that must be present (default: the contract's required tables).
    issues : iterable of ValidationIssue, default=()
        Fatal problems found before (e.g. by file discovery), added to the report.
    validate : bool, default=True
        ``False`` checks only tables, columns and types of the schema (no row
        scan); the views then use strict casts, so a bad value fails the
        query that meets it instead of passing silently.
    peers : dict of str to TableSource or None, default=None
        Other tables of the same dataset that are not checked or loaded but
        decide, with ``sources``, whether the ids of each entity are integers
        or text (so that loading some tables gives the types loading all gives).

    Returns
    -------
    CheckedTables

    Examples
    --------
    >>> import duckdb, pandas as pd
    >>> con = duckdb.connect()
    >>> _ = con.register("m", pd.DataFrame({"merchant_id": [1, 1], "category": ["food", "toys"]}))
    >>> out = check_tables(con, {"merchants": TableSource("merchants", "merchants.csv", "m")})
    >>> [i.problem for i in out.report.issues]
    ['missing required table accounts', 'missing required table interactions', 'duplicate key']
    """
    con = con if isinstance(con, Engine) else DuckDBEngine(con)
    now = _dt.datetime.now() if now is None else now
    ts_max = now + TIMESTAMP_MAX_AHEAD
    names = (*TABLES, LABEL_TABLE.name)
    found: dict[str, list] = {n: [] for n in names}  # table -> [(issue, is_fatal)]
    counts, plans = {}, {}
    required = [n for n, t in TABLES.items() if t.required] if required is None else list(required)
    found["_"] = [(i, True) for i in issues]
    for name in required:
        if name not in sources:
            found[name].append((ValidationIssue(
                f"{name}.parquet", None, f"missing required table {name}", None,
                f"add {name}.parquet or {name}.csv to the folder (see docs/data-contract.md)"), True))
    described = {}
    for name in _order([n for n in names if n in sources]):
        plan = _Plan(sources[name], _spec(name))
        try:
            _describe(con, plan)
            _id_stats(con, plan)
        except _Unreadable as e:
            found[name].append((_unreadable_issue(plan.src, e), True))
            continue
        described[name] = plan
    others = []
    for name, src in (peers or {}).items():
        if name in sources or name not in names:
            continue
        plan = _Plan(src, _spec(name), raw=f"_peer_{name}")
        try:
            _describe(con, plan)
            _id_stats(con, plan)
        except _Unreadable:
            continue  # reported when that table is loaded itself
        others.append(plan)
    text_ids, id_issues = _id_domains([*described.values(), *others])
    for plan, issue in id_issues if validate else ():
        if plan.spec.name in described:
            found[plan.spec.name].append((issue, True))
    for name, plan in described.items():
        src = plan.src
        try:
            _plan_types(con, plan, validate, text_ids)
            if validate:
                rows = _run_row_checks(con, plan, plans, ts_max, quarantine is not None)
            else:
                rows, plan.n_rows = [], con.row(f"SELECT count(*) FROM {_q(plan.raw)}")[0]
        except _Unreadable as e:
            found[name].append((_unreadable_issue(src, e), True))
            continue
        counts[name] = plan.n_rows
        if validate and not plan.n_rows and plan.spec.required:
            found[name].append((ValidationIssue(
                src.file, None, f"table {name} has no rows", None,
                f"{name} is required: export its rows (fraudkit has nothing to score without them)"), True))
        found[name] += [(i, True) for i in plan.column_issues]
        found[name] += [(i, not row_level or quarantine is None) for i, row_level in rows]
        _create_views(con, plan, use_quarantine=quarantine is not None)
        plans[name] = plan
    issues = [i for n in ("_", *names) for i, _ in found[n]]
    fatal = [i for n in ("_", *names) for i, f in found[n] if f]
    rejected = {}
    if quarantine is not None and not fatal:
        rejected = _write_quarantine(con, plans, Path(quarantine))
    report = ValidationReport(str(path), tuple(issues), tuple(fatal), {n: counts[n] for n in names if n in counts},
                              rejected, None if quarantine is None else str(quarantine))
    # an optional table without rows is absent to every stage (which says so), not a table of nothing
    views = {n: n for n, p in plans.items() if p.n_rows or p.spec.required}
    return CheckedTables(report, views, {n: dict(p.out_types) for n, p in plans.items() if n in views})


# --- private helpers ---------------------------------------------------------


class _Unreadable(Exception):
    pass


def _unreadable_issue(src: TableSource, e: Exception) -> ValidationIssue:
    return ValidationIssue(src.file, None, "the file cannot be read", str(e).strip().splitlines()[0][:300],
                           "rewrite the file as Parquet, or as CSV (UTF-8) with a header row and one value per column")


class _Plan:
    """Mutable working state of one table while it is checked (private)."""

    def __init__(self, src: TableSource, spec: TableSpec, raw: str | None = None):
        self.src, self.spec = src, spec
        self.raw = raw or f"_src_{spec.name}"
        self.ids: dict[str, tuple] = {}  # id column -> (values, integer values, example non-integer)
        self.raw_types: dict[str, str] = {}
        self.exprs: dict[str, str] = {}
        self.out_types: dict[str, str] = {}
        self.fails: dict[str, str] = {}
        self.column_issues: list[ValidationIssue] = []
        self.reasons: list[tuple[str, str]] = []  # (reason, SQL condition) of checks with hits
        self.dups = False
        self.n_rows = 0

    @property
    def key_sql(self) -> str:
        return self.key_of("")

    def key_of(self, alias: str) -> str:
        """SQL text naming a row by its primary key, e.g. ``order_id=7``."""
        parts = [f"'{k}=' || coalesce(CAST({alias}{_q(k)} AS VARCHAR), 'NULL')" for k in self.spec.primary_key
                 if k in self.raw_types]
        return "concat_ws(', ', " + ", ".join(parts) + ")" if parts else "''"


def _spec(name: str) -> TableSpec:
    return LABEL_TABLE if name == LABEL_TABLE.name else TABLES[name]


def _order(names: list[str]) -> list[str]:
    """Parents before children, so foreign keys are checked against clean parents."""
    done, out = set(), []
    pending = list(names)
    while pending:
        for n in pending:
            parents = {c.references.split(".")[0] for c in _spec(n).columns if c.references} - {n}
            if not (parents & set(pending)):
                out.append(n)
                done.add(n)
        pending = [n for n in pending if n not in done]
    return out


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value) -> str:
    if isinstance(value, _dt.datetime):
        return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _describe(con, plan: _Plan) -> None:
    try:
        con.columns(plan.src.relation)  # an unreadable file fails here, with the reader's own message
        con.create_view(plan.raw, f"SELECT * FROM {plan.src.relation}")
        plan.raw_types = con.columns(_q(plan.raw))
    except Exception as e:  # the engines raise several unrelated types for unreadable input
        raise _Unreadable(str(e)) from None
    for c in plan.spec.columns:
        if c.name not in plan.raw_types:
            plan.column_issues.append(ValidationIssue(
                plan.src.file, c.name, "missing column", None,
                f"add the column {c.name!r} ({c.dtype}: {c.description}); see docs/data-contract.md"))


def _kind(sql_type: str) -> str:
    t = sql_type.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT"):
        return "int"
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return "float"
    if t == "VARCHAR":
        return "text"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "time"
    return "other"


def _plan_types(con, plan: _Plan, validate: bool, text_ids=frozenset()) -> None:
    """Typed expression, output type and 'value present but wrong type' condition of each column."""
    cast = "TRY_CAST" if validate else "CAST"
    for c in plan.spec.columns:
        if c.name not in plan.raw_types:
            continue
        col, kind, fail, out = _q(c.name), _kind(plan.raw_types[c.name]), None, SQL_TYPES.get(c.dtype)
        if plan.raw_types[c.name].upper().startswith("ENUM"):  # pandas categoricals
            col, kind = f"CAST({col} AS VARCHAR)", "text"
        whole = f"({col} IS NOT NULL AND (NOT isfinite({col}) OR {col} <> floor({col})))"
        if c.dtype == "id":  # one type per entity across tables: see _id_domains
            out = "VARCHAR" if (plan.spec.name, c.name) in text_ids else "BIGINT"
            if kind == "int":
                expr = f"CAST({col} AS VARCHAR)" if out == "VARCHAR" else f"{cast}({col} AS BIGINT)"
            elif kind == "float":
                expr, fail = f"{cast}({col} AS BIGINT)", whole
                expr = f"CAST({expr} AS VARCHAR)" if out == "VARCHAR" else expr
            elif kind == "text":
                expr = col if out == "VARCHAR" else f"{cast}({col} AS BIGINT)"  # BIGINT: every value canonical
            else:
                expr, fail = f"CAST(NULL AS {out})", f"{col} IS NOT NULL"
        elif c.dtype == "string":
            expr = col if kind == "text" else f"CAST({col} AS VARCHAR)"
        elif c.dtype == "int":
            expr = f"{cast}({col} AS BIGINT)"
            if kind == "float":
                fail = whole
            elif kind == "text":
                d = f"TRY_CAST({col} AS DOUBLE)"
                fail = f"({col} IS NOT NULL AND ({d} IS NULL OR NOT isfinite({d}) OR {d} <> floor({d})))"
            elif kind != "int":
                expr, fail = "CAST(NULL AS BIGINT)", f"{col} IS NOT NULL"
        elif c.dtype == "float":
            if kind in ("int", "float"):
                expr = f"CAST({col} AS DOUBLE)"
                if kind == "float":
                    expr = f"CASE WHEN isnan({col}) THEN NULL ELSE {expr} END"
                    fail = f"({col} IS NOT NULL AND isinf({col}))"
            elif kind == "text":
                d = f"TRY_CAST({col} AS DOUBLE)"
                expr = f"CASE WHEN isnan({d}) THEN NULL ELSE {cast}({col} AS DOUBLE) END"
                fail = f"({col} IS NOT NULL AND ({d} IS NULL OR isinf({d})))"
            else:
                expr, fail = "CAST(NULL AS DOUBLE)", f"{col} IS NOT NULL"
        elif c.dtype == "bool":
            if kind == "bool":
                expr = col
            elif kind in ("int", "float"):
                expr, fail = f"({col} = 1)", f"({col} IS NOT NULL AND {col} NOT IN (0, 1))"
            elif kind == "text":
                expr = f"{cast}(trim({col}) AS BOOLEAN)"
                fail = f"({col} IS NOT NULL AND TRY_CAST(trim({col}) AS BOOLEAN) IS NULL)"
            else:
                expr, fail = "CAST(NULL AS BOOLEAN)", f"{col} IS NOT NULL"
        elif c.dtype == "timestamp":
            if "TIME ZONE" in plan.raw_types[c.name].upper():  # must be naive platform-local time
                expr, fail = "CAST(NULL AS TIMESTAMP)", f"{col} IS NOT NULL"
            elif kind == "time":
                expr = f"CAST({col} AS TIMESTAMP)"
            elif kind == "text":
                expr = f"{cast}(trim({col}) AS TIMESTAMP)"
                fail = f"({col} IS NOT NULL AND TRY_CAST(trim({col}) AS TIMESTAMP) IS NULL)"
            else:
                expr, fail = "CAST(NULL AS TIMESTAMP)", f"{col} IS NOT NULL"
        else:  # pragma: no cover - the contract has no other type
            raise ValueError(f"unknown logical type {c.dtype!r}")
        plan.exprs[c.name], plan.out_types[c.name] = expr, out
        if fail:
            plan.fails[c.name] = fail
    if not validate:
        for name, fail in plan.fails.items():
            if fail.endswith("IS NOT NULL"):  # type not convertible at all: known from the schema alone
                plan.column_issues.append(_type_issue(plan, name, plan.raw_types[name], 0, whole_column=True))


# id columns that hold keys of several entities (``entity_type`` or ``action`` says which): they link the
# entities' types but are never told to agree with one of them
_POLYMORPHIC = {
    ("interactions", "target_id"): (("notes", "note_id"), ("accounts", "account_id")),
    ("labels", "entity_id"): (),
}
# id columns of one entity that no foreign key links (coupons have no table)
_SAME_IDS = ((("orders", "coupon_id"), ("coupon_claims", "coupon_id")),)


def _id_groups():
    """(strict, loose): id column -> its entity (foreign keys and _SAME_IDS; plus the polymorphic links)."""
    specs = (*TABLES.values(), LABEL_TABLE)
    nodes = [(t.name, c.name) for t in specs for c in t.columns if c.dtype == "id"]
    strict_links = [((t.name, c.name), tuple(c.references.split("."))) for t in specs for c in t.columns
                    if c.dtype == "id" and c.references]
    strict_links += list(_SAME_IDS)
    loose_links = strict_links + [(a, b) for a, bs in _POLYMORPHIC.items() for b in bs]

    def components(links):
        parent = {n: n for n in nodes}

        def root(n):
            while parent[n] != n:
                n = parent[n]
            return n

        for a, b in links:
            parent[root(a)] = root(b)
        return {n: root(n) for n in nodes}

    return components(strict_links), components(loose_links)


_STRICT_GROUP, _LOOSE_GROUP = _id_groups()


def _id_stats(con, plan: _Plan) -> None:
    """For each id column: (non-null values, canonical integer values, example non-integer) in ``plan.ids``.

    Integer and float columns count as integers without a scan (``None`` values); a text value is an
    integer when casting it to BIGINT and back gives the same text (so '007', '1.0' and '1e3' stay text).
    """
    texts = []
    for c in plan.spec.columns:
        if c.dtype != "id" or c.name not in plan.raw_types:
            continue
        raw = plan.raw_types[c.name].upper()
        if raw.startswith("ENUM") or _kind(raw) == "text":
            texts.append(c.name)
        elif _kind(raw) in ("int", "float"):
            plan.ids[c.name] = (None, None, None)
    if not texts:
        return
    aggs, key = [], plan.key_sql
    for name in texts:
        col = f"CAST({_q(name)} AS VARCHAR)"
        bad = f"{col} IS NOT NULL AND coalesce(CAST(TRY_CAST({col} AS BIGINT) AS VARCHAR) <> {col}, true)"
        aggs += [f"count({col})", f"count({col}) FILTER (WHERE NOT ({bad}))",
                 f"min({key}) FILTER (WHERE {bad})", f"arg_min({col}, {key}) FILTER (WHERE {bad})"]
    try:
        row = con.row(f"SELECT {', '.join(aggs)} FROM {_q(plan.raw)}")
    except Exception as e:
        raise _Unreadable(str(e)) from None
    for k, name in enumerate(texts):
        n, n_int, rkey, value = row[4 * k: 4 * k + 4]
        plan.ids[name] = (int(n), int(n_int), None if n == n_int else _example(value, rkey))


def _id_domains(plans) -> tuple[set, list]:
    """Which id columns are text, and the tables whose ids of one entity disagree.

    The ids of one entity are integers in every table when every value of every table is an integer,
    and text in every table otherwise, so that the same key joins whatever file it came from. Notes and
    accounts share a type because ``interactions.target_id`` holds both. A table whose ids are text
    while another table's ids of the same entity are all integers (``acct_17`` vs ``17``, or one typo
    among integers) is an error: such ids match nothing across the tables.
    """
    cols = [(p, name, stats) for p in plans for name, stats in p.ids.items()]
    has_text, has_int = set(), set()
    for p, name, (n, n_int, _) in cols:
        group = _LOOSE_GROUP[(p.spec.name, name)]
        if n is None or n_int:
            has_int.add(group)
        if n is not None and n > n_int:
            has_text.add(group)
    text_ids = {node for node, group in _LOOSE_GROUP.items() if group in has_text or group not in has_int}
    issues = []
    for p, name, (n, n_int, example) in cols:
        node = (p.spec.name, name)
        if n is None or n == n_int or node in _POLYMORPHIC:
            continue
        ints = [f"{q.src.file} ({other})" for q, other, (m, m_int, _) in cols
                if (q.spec.name, other) not in _POLYMORPHIC and _STRICT_GROUP[(q.spec.name, other)] == _STRICT_GROUP[node]
                and (m is None or (m and m == m_int))]
        if ints:
            issues.append((p, ValidationIssue(
                p.src.file, name, f"id is not an integer, while the same ids are integers in {', '.join(ints[:3])}",
                example, "write the ids of one entity the same way in every table (all integers, or the same text "
                "everywhere); a single bad value is usually a typo or a shifted column", n - n_int)))
    return text_ids, issues


def _type_issue(plan, column, example, n, *, whole_column=False) -> ValidationIssue:
    dtype = plan.spec.column(column).dtype
    problem = (f"no value has type {dtype} (stored as {plan.raw_types[column]})" if whole_column
               else f"value is not of type {dtype}")
    fix = _TYPE_FIX[dtype]
    if "TIME ZONE" in plan.raw_types[column].upper():
        fix = ("store naive platform-local times, e.g. in pandas "
               "df[col].dt.tz_convert('Asia/Shanghai').dt.tz_localize(None)")
    return ValidationIssue(plan.src.file, column, problem, example, fix, n)


def _run_row_checks(con, plan: _Plan, plans: dict, ts_max, use_quarantine: bool):
    """All per-row checks of one table; returns [(issue, row_level)] and records quarantine reasons."""
    spec, e = plan.spec, plan.exprs
    checks = []  # (reason, cond, column, problem, fix, example_sql)
    for c in spec.columns:
        if c.name not in e:
            continue
        col, x = _q(c.name), e[c.name]
        raw_txt = f"CAST({col} AS VARCHAR)"
        if c.name in plan.fails:
            checks.append((f"{c.name}: not {c.dtype}", plan.fails[c.name], c.name, "type", None, raw_txt))
        if not c.nullable:
            kind = _kind(plan.raw_types[c.name])
            cond = f"{col} IS NULL"
            example = "NULL"
            if kind == "float":
                cond = f"({col} IS NULL OR isnan({col}))"
                example = f"CASE WHEN {col} IS NULL THEN 'NULL' ELSE CAST({col} AS VARCHAR) END"
            elif kind == "text" and c.dtype in ("id", "string"):
                cond = f"({col} IS NULL OR trim({col}) = '')"
            elif kind == "text" and c.dtype == "float":  # 'nan' text is missing, as a Parquet NaN is
                cond = f"({col} IS NULL OR trim({col}) = '' OR coalesce(isnan(TRY_CAST({col} AS DOUBLE)), false))"
                example = f"coalesce({col}, 'NULL')"
            checks.append((f"{c.name}: missing", cond, c.name, "null value in a required column",
                           "fill the value or remove the row; the column may not be empty (NaN counts as empty)",
                           example))
        if c.dtype == "timestamp":
            checks.append((f"{c.name}: out of range", f"({x} < {_lit(TIMESTAMP_MIN)} OR {x} > {_lit(ts_max)})",
                           c.name, f"timestamp before {TIMESTAMP_MIN:%Y-%m-%d} or after {ts_max:%Y-%m-%d}",
                           "check the clock and the unit (seconds vs milliseconds); timestamps must lie between "
                           f"{TIMESTAMP_MIN:%Y-%m-%d} and one year after today", raw_txt))
        if c.min_value is not None:
            checks.append((f"{c.name}: below {c.min_value:g}", f"{x} < {_lit(c.min_value)}", c.name,
                           f"value below the minimum {c.min_value:g}",
                           f"correct or remove the rows: {c.name} must be >= {c.min_value:g}", raw_txt))
        if c.max_value is not None:
            checks.append((f"{c.name}: above {c.max_value:g}", f"{x} > {_lit(c.max_value)}", c.name,
                           f"value above the maximum {c.max_value:g}",
                           f"correct or remove the rows: {c.name} must be <= {c.max_value:g}", raw_txt))
        if c.allowed:
            values = ", ".join(_lit(v) for v in c.allowed)
            cond = f"{x} NOT IN ({values})"
            fix = "use one of: " + ", ".join(c.allowed)
            if c.allowed_prefixes:
                custom = " OR ".join(f"regexp_full_match({x}, {_lit(re.escape(pre) + '[a-z][a-z0-9_]*')})"
                                     for pre in c.allowed_prefixes)
                cond = f"({cond} AND NOT ({custom}))"
                fix += "; or declare a custom one as " + " or ".join(f"{pre}<snake_case_name>"
                                                                      for pre in c.allowed_prefixes)
            checks.append((f"{c.name}: not allowed", cond, c.name, "value outside the vocabulary", fix, raw_txt))
    for table, first, later, strict in _ORDERED:
        if table == spec.name and first in e and later in e:
            op = "<=" if strict else "<"
            checks.append((f"{later} {op} {first}", f"{e[later]} {op} {e[first]}", later,
                           f"{later} {'not after' if strict else 'before'} {first}",
                           f"{later} must be {'after' if strict else 'at or after'} {first}; correct or swap the times",
                           f"CAST({_q(later)} AS VARCHAR) || ' vs {first} ' || CAST({_q(first)} AS VARCHAR)"))
    checks += _reference_checks(plan, plans, use_quarantine)
    # One scan counts every check; examples are then fetched only for the checks that failed.
    aggs = ["count(*)"] + [f"count(*) FILTER (WHERE {cond})" for _, cond, *_ in checks]
    nonnull = {c: f"count({_q(c)})" for c in plan.fails}
    aggs += list(nonnull.values())
    try:
        row = con.row(f"SELECT {', '.join(aggs)} FROM {_q(plan.raw)}")
    except Exception as err:
        raise _Unreadable(str(err)) from None
    plan.n_rows = int(row[0])
    n_nonnull = dict(zip(nonnull, row[1 + len(checks):]))
    found, key = [], plan.key_sql
    for k, (reason, cond, column, problem, fix, ex) in enumerate(checks):
        n = int(row[1 + k])
        if not n:
            continue
        rkey, value = con.row(f"SELECT min({key}), arg_min({ex}, {key}) FROM {_q(plan.raw)} WHERE {cond}")
        example = _example(value, rkey)
        if problem == "type":
            whole = n == n_nonnull[column]
            found.append((_type_issue(plan, column, example, n, whole_column=whole), not whole))
            if whole:
                continue
        else:
            found.append((ValidationIssue(plan.src.file, column, problem, example, fix, n), True))
        plan.reasons.append((reason, cond))
    found += _check_duplicates(con, plan)
    return found


def _example(value, key) -> str:
    value = "NULL" if value is None else repr(value)
    if value == "'NULL'":
        value = "NULL"
    return f"{value} (row {key})" if key else value


def _check_duplicates(con, plan: _Plan):
    """The duplicate-key issue of ``plan``'s table, if a key repeats: the repeated keys, and whether their copies
    differ. Whether one repeats is one query; the table of repeated keys is made only when one does (on Spark
    making it and counting its rows were two jobs more for every table, a third of a clean load's Spark time;
    on DuckDB a ``count(DISTINCT key)`` beside the row checks' counts instead took longer)."""
    pk = [k for k in plan.spec.primary_key if k in plan.raw_types]
    if len(pk) < len(plan.spec.primary_key):
        return []
    cols = ", ".join(_q(k) for k in pk)
    name = f"_dup_{plan.spec.name}"
    not_null = " AND ".join(f"{_q(k)} IS NOT NULL" for k in pk)
    repeated = (f"SELECT {cols}, count(*) AS _dup_n FROM {_q(plan.raw)} WHERE {not_null} GROUP BY {cols} "
                "HAVING count(*) > 1")
    if not con.row(f"SELECT count(*) FROM ({repeated}) r")[0]:
        return []
    con.create_table(name, repeated)
    # do the copies of each key differ? (a second pass, joined to the few repeated keys)
    using = ", ".join(_q(k) for k in pk)
    s_everything = ", ".join(f"s.{_q(c)}" for c in plan.raw_types)
    con.create_table(name, f"SELECT {', '.join('d.' + _q(k) for k in pk)}, "
                           f"any_value(d._dup_n) AS _dup_n, min({plan.key_of('s.')}) AS _dup_key, "
                           f"count(DISTINCT row({s_everything})) AS _dup_v FROM {_q(plan.raw)} s "
                           f"JOIN {_q(name)} d USING ({using}) GROUP BY {', '.join('d.' + _q(k) for k in pk)}")
    n_keys, n_rows, n_conflict, example = con.row(
        f"SELECT count(*), coalesce(sum(_dup_n), 0), coalesce(sum(_dup_n) FILTER (WHERE _dup_v > 1), 0), "
        f"min(_dup_key) FROM {_q(name)}")
    plan.dups = True
    plan.reasons.append(("duplicate key with differing rows", "(_dup_v > 1)"))
    plan.reasons.append(("exact copy of another row", "(_dup_v = 1 AND _copy > 1)"))
    what = f"{n_keys} key(s) repeated; {n_conflict} of the rows differ from another copy"
    return [(ValidationIssue(plan.src.file, ", ".join(pk), "duplicate key", example,
                             f"remove or merge the duplicate rows ({what})", int(n_rows)), True)]


def _reference_checks(plan: _Plan, plans: dict, use_quarantine: bool) -> list:
    """Foreign-key checks as (reason, cond, column, problem, fix, example) for the one aggregate scan."""
    checks = []
    for c in plan.spec.columns:
        if not c.references or c.name not in plan.exprs:
            continue
        table, column = c.references.split(".")
        parent = plans.get(table)
        if parent is None or column not in parent.exprs or parent.spec.name == plan.spec.name:
            continue  # the referenced table is absent (optional): nothing to check against
        x, px = plan.exprs[c.name], _q(column)
        if plan.out_types[c.name] != parent.out_types[column]:
            x, px = f"CAST({x} AS VARCHAR)", f"CAST({px} AS VARCHAR)"
        ex = f"CAST({plan.exprs[c.name]} AS VARCHAR)"
        every = _absent(x, px, _q("_all_" + table))
        checks.append((f"{c.name}: dangling reference to {c.references}", f"({x} IS NOT NULL AND {every})",
                       c.name, f"dangling reference: no such {c.references}",
                       f"add the missing {table} rows or remove the rows that point to them", ex))
        if use_quarantine and parent.reasons:
            checks.append((f"{c.name}: references a quarantined row in {table}",
                           f"({x} IS NOT NULL AND NOT {every} AND {_absent(x, px, _q(table))})",
                           c.name, f"references a quarantined row in {table}",
                           f"fix the quarantined {table} rows and load again", ex))
    return checks


def _absent(x: str, px: str, parent: str) -> str:
    """SQL true when the (non-null) value ``x`` is not among the non-null ``px`` of ``parent``.

    A correlated NOT EXISTS on equality rather than ``x NOT IN (SELECT px ...)``: the same answer here (both
    sides are non-null), but Spark plans NOT IN, which is null-aware, as a nested-loop join (rows x parent rows:
    the 100 k-account world's interactions ran for minutes) and NOT EXISTS as a hash join. The parent's key is
    renamed, so that ``x``'s bare column names resolve to the checked table.
    """
    return (f"NOT EXISTS (SELECT 1 FROM (SELECT {px} AS _fk_ref FROM {parent} WHERE {px} IS NOT NULL) _fk_p "
            f"WHERE _fk_p._fk_ref = {x})")


def _create_views(con, plan: _Plan, *, use_quarantine: bool) -> None:
    spec, name = plan.spec, plan.spec.name
    extras = [c for c in plan.raw_types if c not in spec.column_names]
    typed = [f"{x} AS {_q(c)}" for c, x in plan.exprs.items()] + [_q(c) for c in extras]
    select = ", ".join(typed) if typed else "NULL AS _empty"
    con.create_view("_all_" + name, f"SELECT {select} FROM {_q(plan.raw)}")
    if not (use_quarantine and plan.reasons):
        con.create_view(name, f"SELECT {select} FROM {_q(plan.raw)}")
        return
    reason = "NULLIF(concat_ws('; ', " + ", ".join(
        f"CASE WHEN {cond} THEN {_lit(r)} END" for r, cond in plan.reasons) + "), '')"
    base = _q(plan.raw)
    if plan.dups:
        pk = [k for k in spec.primary_key]
        on = " AND ".join(f"s.{_q(k)} = d.{_q(k)}" for k in pk)
        part = ", ".join(f"s.{_q(k)}" for k in pk)
        base = (f"(SELECT s.*, d._dup_v, row_number() OVER (PARTITION BY {part} ORDER BY {part}) AS _copy "
                f"FROM {base} s LEFT JOIN {_q('_dup_' + name)} d ON {on})")
        chk = f"SELECT {', '.join(_q(c) for c in plan.raw_types)}, {reason} AS _reason FROM {base}"
    else:
        chk = f"SELECT *, {reason} AS _reason FROM {base}"
    con.create_view("_chk_" + name, chk)
    pk = list(spec.primary_key)
    if plan.dups or not set(pk) <= set(plan.raw_types):
        con.create_view(name, f"SELECT {select} FROM {_q('_chk_' + name)} WHERE _reason IS NULL")
        return
    # Unique keys: remember the rejected keys once (a small table), so that queries on the
    # view do not evaluate every check again.
    cols = ", ".join(_q(k) for k in pk)
    not_null = " AND ".join(f"r.{_q(k)} IS NOT NULL" for k in pk)
    on = " AND ".join(f"j.{_q(k)} = r.{_q(k)}" for k in pk)
    con.create_table("_rej_" + name, f"SELECT {cols} FROM {_q('_chk_' + name)} "
                                     f"WHERE _reason IS NOT NULL AND {not_null.replace('r.', '')}")
    select_r = ", ".join([f"{x} AS {_q(c)}" for c, x in plan.exprs.items()] + [_q(c) for c in extras])
    con.create_view(name, f"SELECT {select_r} FROM {_q(plan.raw)} r "
                          f"WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {_q('_rej_' + name)} j WHERE {on})")


def _write_quarantine(con, plans: dict, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rejected = {}
    for name, plan in plans.items():
        target = folder / f"{name}.parquet"
        if not plan.reasons:
            target.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
            continue
        rejected[name] = con.write_parquet(f"SELECT * FROM {_q('_chk_' + name)} WHERE _reason IS NOT NULL", target)
    return rejected
