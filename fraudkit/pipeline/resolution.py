"""Entity resolution before scoring: every consumer sees one key per real address and phone.

Scalpers type one address many ways and give each order a differently formatted phone
(:mod:`fraudkit.capability.entity_resolution`). Resolving once, before any stage runs, gives every consumer the
same canonical keys: the address and phone rules and accumulators, purchase limits, the shared-entity graph's
address and phone links, R(A,B)'s receipt similarity, consolidation and community profiles read
``orders.address``, ``orders.receiver_phone``, ``accounts.phone`` and the listed addresses and phones of
``list_entries`` as keys, not as typed text.

All of a dataset's addresses (orders and lists) are resolved in one call, and all of its phones in another,
so that a listed address matches the orders typed differently; each distinct string is parsed once. Every
string of one entity is replaced by the spelling its rows use most, a valid phone by its national number (so
pages and text rules read a real address or phone, not a technical key). The data's files are not changed; the run notes how many strings
became how many entities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.capability.entity_resolution import canonical_address, canonical_phone
from fraudkit.data.engine import quote

__all__ = ["resolve_entities", "resolve_tables"]

_COLUMNS = {"orders": {"address": "address", "receiver_phone": "phone"}, "accounts": {"phone": "phone"}}
"""Table -> column -> kind of entity it holds (addresses, phones)."""


def resolve_entities(ds, *, notes=None):
    """``ds`` with addresses and phones replaced by their canonical keys (a new Dataset on the same connection).

    Parameters
    ----------
    ds : Dataset
    notes : list, optional
        Receives one line per resolved kind ("addresses: 1,234 strings -> 987 keys").

    Returns
    -------
    Dataset
        ``ds`` itself when it has no address or phone column.
    """
    engine = ds.engine  # DuckDB, or Spark: the same SQL text (fraudkit.data.engine)
    sources = {}
    if ds.has("orders") and "address" in ds.table("orders").columns:
        sources.setdefault("address", []).append(f"SELECT CAST(address AS VARCHAR) AS v FROM {quote(ds.view('orders'))}")
    for table, column in (("accounts", "phone"), ("orders", "receiver_phone")):
        if ds.has(table) and column in ds.table(table).columns:
            sources.setdefault("phone", []).append(
                f"SELECT CAST({column} AS VARCHAR) AS v FROM {quote(ds.view(table))}")
    if ds.has("list_entries"):
        for kind in ("address", "phone"):
            sources.setdefault(kind, []).append(
                f"SELECT entity_id AS v FROM {quote(ds.view('list_entries'))} WHERE entity_type = '{kind}'")
    if not sources:
        return ds
    maps = {}
    for kind, parts in sources.items():
        counts = engine.to_pandas(f"SELECT v, count(*) AS n FROM ({' UNION ALL '.join(parts)}) u "
                                  "WHERE v IS NOT NULL GROUP BY v ORDER BY v")
        if not len(counts):
            continue  # no value of this kind: nothing to resolve
        m = _mapping(kind, counts["v"], counts["n"], notes)
        maps[kind] = engine.register(f"_fk_resolved_{kind}_{id(ds)}", m)
    views = {}
    for table, columns in _COLUMNS.items():
        if not ds.has(table):
            continue
        cols = {c: kind for c, kind in columns.items() if c in ds.table(table).columns and kind in maps}
        if cols:
            views[table] = _replaced(engine, ds, table, cols, maps)
    if ds.has("list_entries") and maps:
        kinds = list(maps)
        # an equi-join on a key that is NULL for the other kinds: with the kind in the join condition beside
        # the key, DuckDB joined in a nested loop (29 k list entries x 1.2 M phones, 13 s a read on `large`)
        joins = " ".join(f"LEFT JOIN {maps[k]} m{i} ON m{i}.raw = CASE WHEN l.entity_type = '{k}' THEN l.entity_id END"
                         for i, k in enumerate(kinds))
        cases = " ".join(f"WHEN l.entity_type = '{k}' THEN coalesce(m{i}.resolved, l.entity_id)"
                         for i, k in enumerate(kinds))
        select = ", ".join(f"CASE {cases} ELSE l.entity_id END AS entity_id" if c == "entity_id" else f"l.{quote(c)}"
                           for c in ds.table("list_entries").columns)
        views["list_entries"] = _materialised(engine, f"_fk_resolved_list_entries_{id(ds)}", select,
                                              quote(ds.view("list_entries")), "l", joins)
    return ds.with_views(views)


def resolve_tables(tables: dict, *, notes=None) -> dict:
    """The same resolution on pandas tables (``orders``, ``accounts``, ``list_entries``): a new dict, frames copied
    where a column changes.

    For views that read the data's tables themselves (e.g. the report's governance step, whose purchase limits
    count units per address and receiver phone). All the tables given are resolved together.

    Examples
    --------
    >>> import pandas as pd
    >>> t = resolve_tables({"orders": pd.DataFrame({"address": ["上海市张江路88号5号楼301室", "张江路88号5-301",
    ...                                                         "张江路88号5号楼301室"],
    ...                                            "receiver_phone": ["+86 138-0013-8000", "13800138000", None]})})
    >>> t["orders"]["address"].nunique(), t["orders"]["receiver_phone"].tolist()
    (1, ['13800138000', '13800138000', None])
    """
    values = {}
    for table, columns in _COLUMNS.items():
        t = tables.get(table)
        for col, kind in columns.items():
            if t is not None and col in t.columns:
                values.setdefault(kind, []).append(t[col])
    le = tables.get("list_entries")
    if le is not None and {"entity_type", "entity_id"} <= set(le.columns):
        for kind in ("address", "phone"):
            values.setdefault(kind, []).append(le.loc[le["entity_type"] == kind, "entity_id"])
    out = dict(tables)
    maps = {}
    for kind, parts in values.items():
        counts = pd.concat(parts, ignore_index=True).dropna().astype(str).value_counts().sort_index()
        if len(counts):
            m = _mapping(kind, pd.Series(counts.index), pd.Series(counts.to_numpy()), notes)
            maps[kind] = pd.Series(m["resolved"].to_numpy(), index=m["raw"].to_numpy())
    for table, columns in _COLUMNS.items():
        t = out.get(table)
        if t is None:
            continue
        change = {col: _mapped(t[col], maps[kind]) for col, kind in columns.items() if col in t.columns and kind in maps}
        if change:
            out[table] = t.assign(**change)
    if le is not None and {"entity_type", "entity_id"} <= set(le.columns) and maps:
        ids = le["entity_id"].copy()
        for kind, m in maps.items():
            sel = le["entity_type"] == kind
            ids[sel] = _mapped(le.loc[sel, "entity_id"], m)
        out["list_entries"] = le.assign(entity_id=ids)
    return out


# --- private helpers ----------------------------------------------------------------------------


def _mapping(kind, raw: pd.Series, n: pd.Series, notes) -> pd.DataFrame:
    """``raw -> resolved``: each string's entity, spelled as the entity's rows spell it most (ties: text order);
    a valid phone as its national number."""
    raw = raw.astype(str).reset_index(drop=True)
    if kind == "address":
        key = canonical_address(raw)["address_key"]
        spelling = raw
    else:  # a phone is spelled as its national number (the digits rules read), when it parses
        ph = canonical_phone(raw)
        key = ph["phone_key"]
        spelling = ph["national_number"].where(ph["national_number"].notna() & ph["valid"].fillna(False).astype(bool),
                                               raw).astype(str)
    key = key.where(key.notna(), raw)
    rep = _most_used_spelling(key.to_numpy(), spelling.to_numpy(), np.asarray(n))
    m = pd.DataFrame({"raw": raw.to_numpy(), "resolved": key.map(rep).to_numpy()})
    if notes is not None:
        notes.append(f"entity resolution: {len(m):,} distinct {kind} strings -> {m['resolved'].nunique():,} {kind} keys")
    return m


def _most_used_spelling(key, spelling, n) -> pd.Series:
    """Per entity ``key`` (the index, in no particular order): the ``spelling`` of its rows with the largest ``n``
    (ties: the first in text order).

    A key of one row is its own spelling; only the keys of several rows are sorted (on large most of the 457k
    address and 1M phone strings are their entity's only spelling: sorting them all by text took 2.7 s).

    Examples
    --------
    >>> _most_used_spelling(np.array(["a", "b", "a", "a"]), np.array(["x", "y", "w", "z"]),
    ...                     np.array([1, 5, 3, 3])).sort_index().to_dict()
    {'a': 'w', 'b': 'y'}
    """
    several = pd.Series(key).duplicated(keep=False).to_numpy()
    alone = pd.Series(spelling[~several], index=key[~several], dtype=object)
    sub = (pd.DataFrame({"key": key[several], "v": spelling[several], "n": n[several]})
           .sort_values(["key", "n", "v"], ascending=[True, False, True], kind="stable")
           .drop_duplicates("key"))
    return pd.concat([alone, pd.Series(sub["v"].to_numpy(), index=sub["key"].to_numpy(), dtype=object)])


def _mapped(col: pd.Series, m: pd.Series) -> pd.Series:
    text = col.where(col.isna(), col.astype(str))
    return text.map(m).where(col.notna(), col).fillna(col) if len(m) else col


def _replaced(engine, ds, table, cols, maps):
    """A table of ``table`` with each column of ``cols`` (column -> kind) replaced by its key; on DuckDB, rows in
    the order of the table's view (Spark keeps no row order)."""
    src = quote(ds.view(table))
    joins, repl = [], {}
    for i, (col, kind) in enumerate(cols.items()):
        # a column stored as numbers (phones read as DOUBLE) is compared and kept as text, as the contract types it
        joins.append(f"LEFT JOIN {maps[kind]} m{i} ON m{i}.raw = CAST(t.{quote(col)} AS VARCHAR)")
        repl[col] = f"coalesce(m{i}.resolved, CAST(t.{quote(col)} AS VARCHAR)) AS {quote(col)}"
    select = ", ".join(repl.get(c, f"t.{quote(c)}") for c in ds.table(table).columns)
    return _materialised(engine, f"_fk_resolved_{table}_{id(ds)}", select, src, "t", " ".join(joins))


def _materialised(engine, name, select, src, alias, joins):
    """``SELECT select FROM src alias joins`` as the table ``name``; on DuckDB, rows in the order of ``src``
    (Spark keeps no row order). Materialised once: as a view, every query of the run re-did the joins and the
    ordering (a grouped count over the medium world's resolved orders took 0.48 s against 0.07 s over a table)."""
    if engine.name == "duckdb":
        engine.create_table(name, f"SELECT {select} FROM (SELECT *, row_number() OVER () AS _fk_row FROM {src}) "
                                  f"{alias} {joins} ORDER BY {alias}._fk_row")
    else:
        engine.create_table(name, f"SELECT {select} FROM {src} {alias} {joins}")
    return name
