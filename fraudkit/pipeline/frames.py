"""The frames rules are evaluated on, and what a dataset lacks.

Feature tables per entity (``account``, ``device``, ``ip``, ``order``) and the interactions table with
only the columns its rules read; the inputs a partial dataset is missing, so rules that need them are
switched off; the dataset's list store; checking a rule set against a dataset's columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from fraudkit.capability.accumulators import DEFAULT_ACCUMULATORS, compute
from fraudkit.capability.features import entity_features
from fraudkit.capability.lists import ListStore
from fraudkit.data.contract import TABLES
from fraudkit.data.dataset import canonical_sort_keys, load_dataset, ns_timestamps
from fraudkit.identification.base import score_frame
from fraudkit.identification.expressions import lists_of
from fraudkit.identification.rules import TIME_OF_DAY, RuleSet, load_ruleset

__all__ = ["feature_tables", "missing_inputs", "list_store_for", "rule_columns", "rule_frames", "check_ruleset",
           "RuleEvaluation", "evaluate_rules", "data_end"]

_ENTITY_KEYS = {"account": "account_id", "device": "device_id", "ip": "ip", "order": "order_id",
                "interaction": "event_id"}
_HIT_COLUMNS = ["rule_id", "status", "entity", "action", "score", "hits", "hit_rate"]


@dataclass(frozen=True)
class RuleEvaluation:
    """The rule set evaluated once on a dataset: what the behaviour stage, the rules step and decisions share.

    Parameters
    ----------
    frames : dict of str to DataFrame
        Per entity, the frame the rules were evaluated on (:func:`rule_frames`).
    results : dict
        Per entity, the :class:`~fraudkit.identification.rules.RuleSet` result on that frame (``rows``
        aligned with the frame, ``hits``).
    hits : pandas.DataFrame
        Per rule: hits and hit rate (``RUN/rules/hits.parquet``).
    scores : pandas.DataFrame
        Score table rows, stage ``rules``, method ``RuleSet``, one per evaluated entity but the
        interactions (None when there is none).
    parts : tuple of DataFrame
        Every evaluated entity's score rows, in the order of the rule set's entities, interactions included:
        their ``entity_id`` is Arrow text (a Python string per interaction took gigabytes on ``large``), so
        they are kept apart from ``scores`` and written as they are (:meth:`all_scores` joins them).
    """

    frames: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    hits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_HIT_COLUMNS))
    scores: pd.DataFrame | None = None
    parts: tuple = ()

    def all_scores(self) -> pd.DataFrame | None:
        """Every evaluated entity's score rows as one frame (``entity_id`` as Python text), in entity order."""
        if not self.parts:
            return self.scores
        return pd.concat([p.assign(entity_id=p["entity_id"].astype(str)) if _is_arrow(p["entity_id"]) else p
                          for p in self.parts], ignore_index=True)


def feature_tables(ds, features=None) -> dict:
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
    feats = dict(features or {})
    if not {"account", "device", "ip", "order"} <= set(feats):
        feats = {**entity_features(ds), **feats}
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

def rule_frames(ds, ruleset, *, features=None) -> dict:
    """Frames the rules of each entity are evaluated on: ``{entity: DataFrame}``.

    ``account``, ``device``, ``ip`` and ``order`` are the feature tables of
    :mod:`fraudkit.capability.features`; ``interaction`` is the interactions table plus
    only the columns its rules read: account (``acct_``), device (``dev_``) and
    IP (``ip_``) features joined by key, and interaction accumulators.
    ``ruleset`` may also be a list of RuleSets (columns of all of them), or a
    tuple of entity names (interactions: the bare table).
    """

    sets = [ruleset] if isinstance(ruleset, RuleSet) else [r for r in ruleset if isinstance(r, RuleSet)]
    entities = set().union(*[r.entities for r in sets]) if sets else set(ruleset)
    feats = features if features is not None else feature_tables(ds)
    out = {}
    for e in entities:
        if e in ("account", "device", "ip", "order"):
            out[e] = feats[e]
        elif e == "interaction" and ds.has("interactions"):
            need = set().union(*[r.columns("interaction") for r in sets]) if sets else set()
            out[e] = _interaction_frame(ds, feats, need)
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
    frame = _table_frame(ds, "interactions")
    joins = (("acct_", "account", "account_id"), ("dev_", "device", "device_id"), ("ip_", "ip", "ip"))
    for prefix, entity, key in joins:
        f = feats[entity]
        cols = [c[len(prefix):] for c in sorted(need) if c.startswith(prefix) and c not in frame.columns]
        cols = [c for c in cols if c in f.columns]
        if not cols:
            continue
        idx = _positions(frame[key], f[key])
        found = idx >= 0
        for c in cols:
            vals = f[c].to_numpy(dtype=float, na_value=np.nan) if f[c].dtype != object else f[c].to_numpy()
            col = vals[np.where(found, idx, 0)] if len(vals) else np.full(len(frame), np.nan)
            frame[prefix + c] = np.where(found, col, np.nan if vals.dtype != object else None)
            del col
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


def _table_frame(ds, name):
    """``ds.to_pandas(name)``: the same frame (rows in the canonical order, nanosecond times), read straight
    from the dataset's DuckDB connection through Arrow when it has one (measured 4.1 s against 6.7-8.9 s on
    the 2.4M interactions of the medium world; Arrow gives one Python string per distinct text)."""
    import duckdb

    raw = getattr(getattr(ds, "con", None), "con", None)
    if not isinstance(raw, duckdb.DuckDBPyConnection) or not hasattr(ds, "view"):
        return ds.to_pandas(name)
    cols = list(ds.table(name).columns)
    keys = ", ".join(f'"{c}"' for c in canonical_sort_keys(name, cols))
    table = raw.execute(f"SELECT * FROM {ds.view(name)} ORDER BY {keys}").to_arrow_table()
    frame = ns_timestamps(table.to_pandas())
    del table
    return frame


def _positions(keys: pd.Series, table_keys: pd.Series) -> np.ndarray:
    """Row of ``table_keys`` (unique) holding each of ``keys`` (-1: not there, or null), matched as text
    (:func:`_key_text`) once per distinct key.

    Examples
    --------
    >>> _positions(pd.Series([2.0, None, 7.0, 2.0]), pd.Series(["7", "2"])).tolist()
    [1, -1, 0, 1]
    """
    if isinstance(keys.dtype, pd.CategoricalDtype):
        codes, uniq = keys.cat.codes.to_numpy(), pd.Series(keys.cat.categories)
    else:
        codes, uniq = pd.factorize(keys)
        uniq = pd.Series(uniq, dtype=keys.dtype if keys.dtype != object else object)
    at = pd.Index(_key_text(table_keys)).get_indexer(_key_text(uniq)) if len(uniq) else np.zeros(0, dtype=np.intp)
    return np.where(codes >= 0, at[np.maximum(codes, 0)] if len(at) else -1, -1)


def _key_text(keys: pd.Series) -> pd.Series:
    """Entity keys as text, the same whatever dtype the reader chose: an integer key column with nulls comes
    back as float64 (``326837000000.0``); it is read back as the integers it holds."""
    if pd.api.types.is_float_dtype(keys):
        whole = keys.dropna()
        if len(whole) == 0 or bool((whole == whole.round()).all()):
            keys = keys.astype("Int64")
    return keys.astype(str)


def evaluate_rules(ruleset, frames, lists, *, as_of=None, notes=None) -> RuleEvaluation:
    """Evaluate ``ruleset`` once on each entity's frame: the one place a run evaluates its rules.

    Events (frames with ``ts``) look lists up at their own time, entity tables as of ``as_of`` (the data's
    end, :func:`data_end`). An entity with no rows, or whose frame lacks a column its rules read, is skipped
    with a note in ``notes``.

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
    results, hits, scores, used = {}, [], [], {}
    for entity in ruleset.entities:
        frame = frames.get(entity)
        if frame is None or frame.empty:
            notes.append(f"rules: {entity} rules skipped (no {entity} rows)")
            continue
        missing = ruleset.columns(entity) - set(frame.columns)
        if missing:
            notes.append(f"rules: {entity} rules skipped, features {', '.join(sorted(missing))} are missing")
            continue
        res = ruleset.evaluate(frame, lists=lists, entity=entity, as_of=None if "ts" in frame.columns else as_of)
        results[entity], used[entity] = res, frame
        hits.append(res.hits)
        r = res.rows
        keys = frame[_ENTITY_KEYS[entity]]
        compact = entity == "interaction" and pd.api.types.is_integer_dtype(keys)
        sf = score_frame(np.zeros(len(frame), np.int8) if compact else keys.astype(str).to_numpy(), r["score"],
                         r["action"] != "pass", entity_type=entity, stage="rules", method="RuleSet",
                         reasons=r["matched"])
        if compact:  # the same text as astype(str), held by Arrow
            sf["entity_id"] = pd.array(pa.array(keys.to_numpy()).cast(pa.string()), dtype=pd.ArrowDtype(pa.string()))
        scores.append((entity, sf))
    entity_rows = [sf for e, sf in scores if e != "interaction"]
    return RuleEvaluation(frames=used, results=results,
                          hits=pd.concat(hits, ignore_index=True) if hits else pd.DataFrame(columns=_HIT_COLUMNS),
                          scores=pd.concat(entity_rows, ignore_index=True) if entity_rows else None,
                          parts=tuple(sf for _, sf in scores))


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
