"""Backtest rules on labelled data: hits, precision, recall, overlap, lift, version diffs.

Every figure is computed from one evaluation of the rule set
(:meth:`fraudkit.identification.rules.RuleSet.evaluate`): the boolean match matrix is reused
for overlap (Jaccard), exclusive hits and lift, so a backtest costs one pass
over the data. Metrics are row-level, or per key (``key="account_id"``: an
account is hit when any of its rows is, positive when any of its rows is).

Like evaluation, a backtest reads labels: run it on data the rules were not
tuned on, and say which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudkit.data.contract import fraud_keys
from fraudkit.data.dataset import load_dataset
from fraudkit.errors import FraudkitError
from fraudkit.evaluation.metrics import format_table
from fraudkit.identification.rules import RuleSet, load_ruleset
from fraudkit.pipeline.frames import list_store_for, rule_frames

__all__ = ["BacktestResult", "RuleSetDiff", "backtest", "diff_rulesets", "backtest_command"]


@dataclass(frozen=True)
class BacktestResult:
    """Per-rule quality of a rule set on labelled data.

    Attributes
    ----------
    rules : pandas.DataFrame
        One row per evaluated rule: ``rule_id, status, action, score, hits, tp, precision,
        recall, exclusive_hits, exclusive_tp, lift``. ``lift`` is the recall of the active
        set with the rule minus without it (for a shadow rule: what switching it on would add).
    overlap : pandas.DataFrame
        Jaccard similarity of the rules' hit sets (rules x rules).
    summary : dict
        ``n, n_positive, hits, tp, precision, recall`` of the active set (any active rule).
    unit : str
        ``"row"`` or the key column the metrics were computed on.
    """

    rules: pd.DataFrame
    overlap: pd.DataFrame
    summary: dict
    unit: str


@dataclass(frozen=True)
class RuleSetDiff:
    """Two versions of a rule set on the same labelled data.

    Attributes
    ----------
    added, removed, changed : tuple of str
        Rule ids only in the new set, only in the old, in both with different definitions.
    summary : pandas.DataFrame
        ``metric, old, new, change`` for hits, tp, precision, recall.
    gained, lost : int
        Units flagged by the new set and not the old (and vice versa).
    gained_tp, lost_tp : int
        Of those, how many are positive.
    """

    added: tuple
    removed: tuple
    changed: tuple
    summary: pd.DataFrame
    gained: int
    lost: int
    gained_tp: int
    lost_tp: int


def backtest(ruleset: RuleSet, frame: pd.DataFrame, y, *, key=None, lists=None, scope=None, as_of=None,
             entity=None) -> BacktestResult:
    """Backtest every rule of ``ruleset`` on ``frame`` against labels ``y``.

    Parameters
    ----------
    ruleset : RuleSet
    frame : pandas.DataFrame
    y : array-like of bool, shape (n_rows,)
        Whether each row is fraudulent.
    key : str, optional
        Compute metrics per value of this column (e.g. ``"account_id"``) instead of per row.
    lists, scope, as_of, entity
        Passed to :meth:`RuleSet.evaluate`.

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.identification.rules import load_ruleset
    >>> rs = load_ruleset({"rules": [{"id": "a", "condition": "x > 1", "score": 50},
    ...                              {"id": "b", "condition": "x > 2", "score": 50}]})
    >>> bt = backtest(rs, pd.DataFrame({"x": [0, 2, 3, 3]}), [False, True, True, False])
    >>> bt.rules[["rule_id", "hits", "tp", "precision", "recall"]].values.tolist()
    [['a', 3, 2, 0.6666666666666666, 1.0], ['b', 2, 1, 0.5, 0.5]]
    """
    y = np.asarray(y, dtype=bool)
    if len(y) != len(frame):
        raise FraudkitError(f"backtest: got {len(y)} labels for {len(frame)} rows; pass one label per row")
    res = ruleset.evaluate(frame, lists=lists, scope=scope, as_of=as_of, entity=entity)
    m, yy = res.matches, y
    if key is not None:
        m, yy = _by_key(m, y, frame[key])
    active = np.array([s == "active" for s in res.statuses], dtype=bool)
    any_active = m[:, active].any(axis=1) if active.any() else np.zeros(len(yy), dtype=bool)
    n_pos = int(yy.sum())
    counts = _active_counts(m, active)
    hits = m.sum(axis=0)
    tp = (m & yy[:, None]).sum(axis=0)
    others = m.sum(axis=1)[:, None] - m
    exclusive = m & (others == 0)
    rows = []
    for j, rid in enumerate(res.rule_ids):
        if active[j]:
            without = (counts - m[:, j]) > 0
            lift = _recall(any_active, yy) - _recall(without, yy)
        else:
            lift = _recall(any_active | m[:, j], yy) - _recall(any_active, yy)
        r = ruleset.get(rid)
        rows.append({
            "rule_id": rid, "status": r.status, "action": r.action, "score": r.score,
            "hits": int(hits[j]), "tp": int(tp[j]),
            "precision": tp[j] / hits[j] if hits[j] else np.nan,
            "recall": tp[j] / n_pos if n_pos else np.nan,
            "exclusive_hits": int(exclusive[:, j].sum()), "exclusive_tp": int((exclusive[:, j] & yy).sum()),
            "lift": lift,
        })
    table = pd.DataFrame(rows, columns=["rule_id", "status", "action", "score", "hits", "tp", "precision", "recall",
                                        "exclusive_hits", "exclusive_tp", "lift"])
    set_hits = int(any_active.sum())
    set_tp = int((any_active & yy).sum())
    summary = {"n": int(len(yy)), "n_positive": n_pos, "hits": set_hits, "tp": set_tp,
               "precision": set_tp / set_hits if set_hits else float("nan"), "recall": _recall(any_active, yy)}
    return BacktestResult(rules=table, overlap=_jaccard(m, res.rule_ids), summary=summary,
                          unit="row" if key is None else key)


def diff_rulesets(old: RuleSet, new: RuleSet, frame: pd.DataFrame, y, *, key=None, lists=None, scope=None,
                  as_of=None, entity=None) -> RuleSetDiff:
    """Compare two versions of a rule set on the same data.

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.identification.rules import load_ruleset
    >>> v1 = load_ruleset({"rules": [{"id": "a", "condition": "x > 1", "score": 50}]})
    >>> v2 = load_ruleset({"rules": [{"id": "a", "condition": "x > 2", "score": 50}]})
    >>> d = diff_rulesets(v1, v2, pd.DataFrame({"x": [0, 2, 3]}), [False, False, True])
    >>> d.changed, d.lost, d.lost_tp
    (('a',), 1, 0)
    """
    y = np.asarray(y, dtype=bool)
    flags = []
    for rs in (old, new):
        res = rs.evaluate(frame, lists=lists, scope=scope, as_of=as_of, entity=entity)
        f = res.rows["flagged"].to_numpy()
        yy = y
        if key is not None:
            f2, yy = _by_key(f[:, None], y, frame[key])
            f = f2[:, 0]
        flags.append(f)
    f_old, f_new = flags
    old_ids, new_ids = set(old.ids), set(new.ids)
    changed = tuple(sorted(i for i in old_ids & new_ids if old.get(i).to_dict() != new.get(i).to_dict()))
    summ = []
    for name, fn in (("hits", lambda f: int(f.sum())), ("tp", lambda f: int((f & yy).sum())),
                     ("precision", lambda f: (f & yy).sum() / f.sum() if f.sum() else np.nan),
                     ("recall", lambda f: _recall(f, yy))):
        a, b = fn(f_old), fn(f_new)
        summ.append({"metric": name, "old": a, "new": b, "change": b - a})
    return RuleSetDiff(
        added=tuple(sorted(new_ids - old_ids)), removed=tuple(sorted(old_ids - new_ids)), changed=changed,
        summary=pd.DataFrame(summ, columns=["metric", "old", "new", "change"]),
        gained=int((f_new & ~f_old).sum()), lost=int((f_old & ~f_new).sum()),
        gained_tp=int((f_new & ~f_old & yy).sum()), lost_tp=int((f_old & ~f_new & yy).sum()),
    )


def backtest_command(ruleset, data, against=None, fmt="markdown") -> str:
    """``fraudkit rules backtest``: backtest a rule-set file on a labelled dataset folder.

    Account rules are measured per account, order and interaction rules per
    row (an order or interaction is positive when it is labelled, or its
    account is labelled with a fraud typology).
    """

    ds = load_dataset(data)
    if ds.labels is None:
        raise FraudkitError(f"{data} has no labels table; a backtest needs labels (labels.parquet)")
    rs = load_ruleset(ruleset)
    old = load_ruleset(against) if against is not None else None
    entities = sorted(set(rs.entities) | set(old.entities if old else ()))
    frames = rule_frames(ds, [rs] + ([old] if old is not None else []))
    lists = list_store_for(ds)
    out = []
    for entity in entities:
        frame = frames.get(entity)
        if frame is None or frame.empty or not rs.for_entity(entity).rules:
            out.append(f"## {entity} rules\n\nskipped: no {entity} rows in {data}\n")
            continue
        y = _row_labels(ds.labels, frame, entity, fraud_keys)
        key = None
        bt = backtest(rs, frame, y, key=key, lists=lists, entity=entity)
        s = bt.summary
        out.append(f"## {entity} rules ({bt.unit}-level: {s['n']} {entity}s, {s['n_positive']} positive)\n\n"
                   f"active set: hits {s['hits']}, precision {_f(s['precision'])}, recall {_f(s['recall'])}\n")
        out.append(format_table(bt.rules, fmt))
        if old is not None and old.for_entity(entity).rules:
            d = diff_rulesets(old.for_entity(entity), rs.for_entity(entity), frame, y, lists=lists)
            out.append(f"\n### diff against {against}\n\nadded: {', '.join(d.added) or '-'}; removed: "
                       f"{', '.join(d.removed) or '-'}; changed: {', '.join(d.changed) or '-'}; "
                       f"gained {d.gained} ({d.gained_tp} positive), lost {d.lost} ({d.lost_tp} positive)\n")
            out.append(format_table(d.summary, fmt))
        out.append("")
    return "\n".join(out)


# --- private helpers ----------------------------------------------------------------------------


def _row_labels(labels, frame, entity, fraud_keys):
    acc = fraud_keys(labels, "account")
    y = frame["account_id"].astype(str).isin(acc).to_numpy() if "account_id" in frame else np.zeros(len(frame), bool)
    own_key = {"order": "order_id", "interaction": "event_id", "device": "device_id", "ip": "ip"}.get(entity)
    if own_key and own_key in frame:
        y |= frame[own_key].astype(str).isin(fraud_keys(labels, entity)).to_numpy()
    return y


def _f(x):
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _recall(flag, y):
    n = int(y.sum())
    return float((flag & y).sum() / n) if n else float("nan")


def _active_counts(m, active):
    return m[:, active].sum(axis=1) if active.any() else np.zeros(m.shape[0], dtype=np.int64)


def _by_key(m, y, keys):
    codes, _ = pd.factorize(keys, use_na_sentinel=False)
    k = codes.max() + 1 if len(codes) else 0
    out = np.zeros((k, m.shape[1]), dtype=bool)
    for j in range(m.shape[1]):
        out[:, j] = np.bincount(codes, weights=m[:, j], minlength=k) > 0
    yy = np.bincount(codes, weights=y, minlength=k) > 0
    return out, yy


def _jaccard(m, ids, chunk=1_000_000):
    k = m.shape[1]
    inter = np.zeros((k, k))
    for s in range(0, m.shape[0], chunk):
        b = m[s:s + chunk].astype(np.float32)
        inter += b.T @ b
    sizes = np.diag(inter)
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = np.where(union > 0, inter / union, np.nan)
    return pd.DataFrame(jac, index=list(ids), columns=list(ids))
