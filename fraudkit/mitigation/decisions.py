"""Layered decisions for orders and interactions: rules -> portrait -> network -> lists.

NetEase's order decision, vectorised over millions of events:

1. **blacklist** — an account, device, IP, phone or address on a blacklist in
   the event's scope blocks the event outright;
2. **rules** — the rule engine's action (per-rule actions and the thresholds on
   the aggregate score, :mod:`fraudkit.identification.rules`);
3. **portrait** — the account's behaviour-stage score: flagged -> verify,
   above ``portrait_block`` -> block;
4. **network** — the account's graph-stage score (skipped, and said so, when
   the graph stage did not run): flagged -> verify, above ``network_block`` -> block;
5. **graylist** — a graylisted key makes the event at least ``verify``.

The decision is the most severe outcome; ``layer`` names the layer that
produced it (first in the order above on ties) and ``reasons`` lists every
layer that fired. Portrait and network flags that agree on one account block
(``corroborate_block``): the stages read different evidence (single-entity
behaviour vs relations) and, measured on micro and demo-small, accounts both
flag have precision 1.0. When the graph stage is seeded with stage-1 flags
they are not separate evidence: set ``corroborate_block=False`` then.

**Delayed interception** (``delayed=True``, :func:`defer_decisions`, the one implementation; the
what-if :func:`fraudkit.mitigation.actions.delay_interception` runs it on a run's decisions): an event
whose decision is not ``pass`` and that is not a key step (nor blacklisted) is let through now
(``decision="pass"``, ``delayed=True``, ``pending`` holds what it would have been); the account's
key-step events from then on (``layer="delayed"``) — by default orders, and comments, shares and
follows — receive the most severe decision deferred so far. The attacker learns nothing at the
moment of the suspicious action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from fraudkit.capability.lists import row_scopes
from fraudkit.errors import FraudkitError

__all__ = ["AccountScores", "DecisionPolicy", "DECISION_COLUMNS", "KEY_ACTIONS", "decide", "Deferral",
           "defer_decisions", "key_steps"]

DECISION_COLUMNS = ("decision", "layer", "reasons", "score_rules", "score_portrait", "score_network",
                    "delayed", "pending")
KEY_ACTIONS = ("comment", "share", "follow")
"""Interactions that are key steps for delayed interception (orders always are)."""
_LABEL = np.array(["pass", "verify", "block"], dtype=object)
_LAYERS = ("blacklist", "rules", "portrait", "network", "graylist")
_LAYER_LABELS = ("", *_LAYERS, "delayed")
_PENDING_LABELS = np.array(["", "verify", "block"], dtype=object)
_LIST_KEYS = (("account_id", "account"), ("device_id", "device"), ("ip", "ip"), ("address", "address"),
              ("receiver_phone", "phone"))


@dataclass(frozen=True)
class DecisionPolicy:
    """Thresholds and options of the layered decision.

    Parameters
    ----------
    portrait_block : float or None, default=None
        Portrait (behaviour) score at or above which an event is blocked; None: never by itself.
    network_block : float or None, default=None
        Same for the network (graph) score.
    corroborate_block : bool, default=True
        Block when both the portrait and the network flag the account (see the module docstring;
        False when the network was seeded from the portrait's flags).
    delayed : bool, default=False
        Delayed interception (see the module docstring).
    key_step : str or None, default=None
        Column of a boolean marking key-step events (with ``delayed``); None: see :func:`key_steps`.
    """

    portrait_block: float | None = None
    network_block: float | None = None
    corroborate_block: bool = True
    delayed: bool = False
    key_step: str | None = None


@dataclass(frozen=True, eq=False)
class AccountScores:
    """One account layer (portrait or network) looked up by account: ``decide`` on many chunks of events (a run
    decides 2M at a time; large has 26M) builds the hash of the layer's account ids once, not once per chunk.

    Examples
    --------
    >>> t = pd.DataFrame({"account_id": ["a", "b", "a"], "score": [0.9, 0.1, 0.5], "flagged": [True, False, False]})
    >>> s = AccountScores.of(t)
    >>> len(s), s.score.tolist(), s.accounts.get_indexer(["b", "z"]).tolist()
    (2, [0.9, 0.1], [1, -1])
    """

    accounts: pd.Index
    score: np.ndarray
    flagged: np.ndarray

    @classmethod
    def of(cls, table, name="portrait") -> "AccountScores":
        """``table`` (``account_id, score, flagged``; an account's first row counts) as an ``AccountScores``."""
        if isinstance(table, cls):
            return table
        for c in ("account_id", "score", "flagged"):
            if c not in table.columns:
                raise FraudkitError(f"decide: the {name} table needs columns account_id, score, flagged (missing {c})")
        t = table.drop_duplicates("account_id")
        return cls(pd.Index(t["account_id"]), t["score"].to_numpy(dtype=float), t["flagged"].to_numpy(dtype=bool))

    def __len__(self) -> int:
        return len(self.accounts)


def decide(events: pd.DataFrame, *, rules=None, portrait=None, network=None, lists=None, policy=None,
           as_of=None, scope=None, notes=None) -> pd.DataFrame:
    """Decide ``pass | verify | block`` for every event, with the layer and the reasons.

    Parameters
    ----------
    events : pandas.DataFrame
        Orders or interactions with ``account_id`` (and optionally ``device_id``, ``ip``,
        ``address``, ``receiver_phone``, ``promotion_id``, ``ts``, ``action``).
    rules : RuleResult, optional
        The rule engine's result on ``events`` (same row order); absent -> layer skipped.
    portrait, network : pandas.DataFrame or AccountScores, optional
        Per account: ``account_id, score, flagged`` (an :class:`AccountScores` when deciding many chunks with
        the same tables). Absent -> layer skipped.
    lists : ListStore, optional
        Black/graylists; each key column present is looked up with its entity type and the
        row's ``promotion:<id>`` scope.
    policy : DecisionPolicy, optional
    as_of : timestamp-like, array-like of shape (n,) or None, default=None
        When lists are checked. Default: each event at its own ``ts`` (an entry
        that expired in the data's past still applies to the events before its
        expiry); without a ``ts`` column, now. A single time checks every event
        against the lists in force then.
    scope : str, optional
        Extra scope in force for every row (``"scene:like"``).
    notes : list, optional
        Appended with a line per skipped layer.

    Returns
    -------
    pandas.DataFrame
        Same index as ``events``; columns :data:`DECISION_COLUMNS`.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"account_id": ["a", "b", "c"]})
    >>> portrait = pd.DataFrame({"account_id": ["a", "b"], "score": [0.9, 0.1], "flagged": [True, False]})
    >>> decide(ev, portrait=portrait)[["decision", "layer"]].values.tolist()
    [['verify', 'portrait'], ['pass', ''], ['pass', '']]
    """
    cols = decision_columns(events, rules=rules, portrait=portrait, network=network, lists=lists, policy=policy,
                            as_of=as_of, scope=scope, notes=notes)
    return pd.DataFrame({c: v.dense() if isinstance(v, Coded) else v for c, v in cols.items()},
                        index=events.index, columns=list(DECISION_COLUMNS))


class Coded(NamedTuple):
    """A text column as integer codes into its distinct labels: a run's 26M decisions have a handful of distinct
    decisions, layers and reasons, written without a Python string per row.

    Examples
    --------
    >>> c = Coded(np.array([1, 0, 1]), np.array(["", "verify"], dtype=object))
    >>> c.dense().tolist(), c.arrow().to_pylist()
    (['verify', '', 'verify'], ['verify', '', 'verify'])
    """

    codes: np.ndarray
    labels: np.ndarray

    def dense(self) -> np.ndarray:
        """One Python string per row (an object array)."""
        return np.asarray(self.labels, dtype=object)[self.codes]

    def arrow(self):
        """The column as an Arrow string array, taken from the labels in C++."""
        import pyarrow as pa

        return pa.array(np.asarray(self.labels, dtype=object), type=pa.string()).take(
            pa.array(np.asarray(self.codes, dtype=np.int64)))


def decision_columns(events: pd.DataFrame, *, rules=None, portrait=None, network=None, lists=None, policy=None,
                     as_of=None, scope=None, notes=None) -> dict:
    """:func:`decide`'s columns (:data:`DECISION_COLUMNS`, in order) as arrays, its text columns ``decision``,
    ``layer``, ``reasons`` and ``pending`` as :class:`Coded`: what a run writes a chunk at a time.

    Examples
    --------
    >>> ev = pd.DataFrame({"account_id": ["a", "b"]})
    >>> portrait = pd.DataFrame({"account_id": ["a"], "score": [0.9], "flagged": [True]})
    >>> cols = decision_columns(ev, portrait=portrait)
    >>> list(cols) == list(DECISION_COLUMNS), cols["decision"].dense().tolist()
    (True, ['verify', 'pass'])
    """
    if "account_id" not in events.columns:
        raise FraudkitError("decide: events need an account_id column (orders or interactions)")
    policy = policy or DecisionPolicy()
    notes = notes if notes is not None else []
    n = len(events)
    sev = {k: np.zeros(n, dtype=np.int8) for k in _LAYERS}
    why = {k: np.zeros(n, dtype=np.int64) for k in _LAYERS}
    why_labels = {k: [""] for k in _LAYERS}

    score_rules = np.full(n, np.nan)
    if rules is not None:
        rows = rules.rows
        if len(rows) != n:
            raise FraudkitError(f"decide: the rule result has {len(rows)} rows for {n} events")
        score_rules = rows["score"].to_numpy(dtype=float)
        sev["rules"] = pd.Series(rows["action"].to_numpy()).map({"pass": 0, "verify": 1, "block": 2}) \
            .to_numpy(dtype=np.int8)
        codes, uniq = pd.factorize(rows["matched"].to_numpy(dtype=object))
        why["rules"] = np.where(sev["rules"] > 0, codes + 1, 0)
        why_labels["rules"] = [""] + [f"rules:{u}" for u in uniq]
    else:
        notes.append("decisions: rules layer skipped (no rule result for these events)")

    # each row's account hashed once for both layers (a categorical column: its codes), the layers looked up
    # per distinct account
    acct = pd.factorize(events["account_id"], use_na_sentinel=False)
    score_portrait, f_portrait = _account_layer(acct, portrait, "portrait", policy.portrait_block, sev, why,
                                                why_labels, notes)
    score_network, f_network = _account_layer(acct, network, "network", policy.network_block, sev, why,
                                              why_labels, notes)
    if policy.corroborate_block:
        both = f_portrait & f_network
        sev["network"] = np.where(both, 2, sev["network"]).astype(np.int8)
        why["network"] = np.where(both, len(why_labels["network"]), why["network"])
        why_labels["network"].append("network+portrait:corroborated")

    if lists is not None:
        _list_layers(events, lists, as_of, scope, sev, why, why_labels)
    else:
        notes.append("decisions: list layers skipped (no list store)")

    final = np.maximum.reduce([sev[k] for k in _LAYERS])
    final = np.where(sev["blacklist"] == 2, 2, final).astype(np.int8)
    layer = np.zeros(n, dtype=np.int8)  # codes into _LAYER_LABELS
    for i in reversed(range(len(_LAYERS))):
        layer = np.where((sev[_LAYERS[i]] == final) & (final > 0), i + 1, layer)
    layer = np.where(sev["blacklist"] == 2, _LAYER_LABELS.index("blacklist"), layer)
    reasons = _reasons(why, why_labels, n)

    delayed = np.zeros(n, dtype=bool)
    pending = np.zeros(n, dtype=np.int8)
    if policy.delayed:
        if "ts" not in events.columns:
            raise FraudkitError("decide: delayed interception needs a ts column to order events")
        d = defer_decisions(final, account=events["account_id"], ts=events["ts"],
                            key=key_steps(events, key_step=policy.key_step), exempt=sev["blacklist"] == 2)
        final, delayed, escalated = d.decision, d.deferred, d.escalated
        pending = d.pending
        layer = np.where(delayed, 0, np.where(escalated, _LAYER_LABELS.index("delayed"), layer))
        empty = np.asarray(reasons.labels, dtype=object) == ""
        reasons = Coded(np.where(escalated & empty[reasons.codes], len(reasons.labels), reasons.codes),
                        np.append(reasons.labels, "delayed: earlier deferred decision"))
    return {"decision": Coded(final, _LABEL), "layer": Coded(layer, _LAYER_LABELS), "reasons": reasons,
            "score_rules": score_rules, "score_portrait": score_portrait, "score_network": score_network,
            "delayed": delayed, "pending": Coded(pending, _PENDING_LABELS)}


def key_steps(events: pd.DataFrame, *, key_step=None) -> np.ndarray:
    """Boolean per event: is it a key step, where a deferred decision is applied?

    ``key_step`` names a boolean column that says so; otherwise orders
    (``entity_type == "order"``) and interactions whose ``action`` is in
    :data:`KEY_ACTIONS` are key steps, and a frame with neither column (an
    orders frame) is all key steps.

    Examples
    --------
    >>> key_steps(pd.DataFrame({"action": ["like", "comment"]})).tolist()
    [False, True]
    """
    if key_step is not None:
        if key_step not in events.columns:
            raise FraudkitError(f"key_step column {key_step!r} is not in the events; columns: "
                                f"{', '.join(map(str, events.columns))}")
        return events[key_step].fillna(False).to_numpy(dtype=bool)
    if "entity_type" not in events.columns and "action" not in events.columns:
        return np.ones(len(events), dtype=bool)
    key = np.zeros(len(events), dtype=bool)
    if "entity_type" in events.columns:
        key |= events["entity_type"].eq("order").to_numpy(dtype=bool)
    if "action" in events.columns:
        key |= events["action"].isin(KEY_ACTIONS).to_numpy(dtype=bool)
    return key


@dataclass(frozen=True)
class Deferral:
    """What :func:`defer_decisions` did, one array per event (severities: 0 pass, 1 verify, 2 block).

    Attributes
    ----------
    decision : ndarray of int8
        The decision with deferral applied.
    deferred : ndarray of bool
        Let through now; its decision is pending.
    pending : ndarray of int8
        What a deferred event would have been (0 elsewhere).
    escalated : ndarray of bool
        Key steps that received a pending decision more severe than their own.
    flagged_at, effective_at : ndarray of datetime64[ns]
        Per event, its account's first deferred event and the moment the pending decision first
        applies (NaT: never).
    """

    decision: np.ndarray
    deferred: np.ndarray
    pending: np.ndarray
    escalated: np.ndarray
    flagged_at: np.ndarray
    effective_at: np.ndarray


def defer_decisions(severity, *, account, ts, key, exempt=None, at="key_step", delay=None,
                    windows=None) -> Deferral:
    """Delayed interception: flag now, act later — the one implementation.

    An event whose severity is above 0, that is not a key step and not
    ``exempt`` is **deferred**: it passes now. Each deferred event becomes
    due at its **due time** — its own time (``at="key_step"``), its time plus
    ``delay`` (``"delay"``), or the end of the window it falls in
    (``"window_end"``; at once outside every window). A key step gets the most
    severe decision of its account's deferred events due at or before it (or
    its own, if more severe). Other events keep their own decision.

    Parameters
    ----------
    severity : array-like of int
        0 pass, 1 verify, 2 block, per event.
    account : array-like
        Account of each event.
    ts : array-like of datetime
        Event times (none missing).
    key : array-like of bool
        Key steps (see :func:`key_steps`).
    exempt : array-like of bool or None, default=None
        Never deferred (e.g. blacklisted: nothing to learn from a known-bad key).
    at : {"key_step", "delay", "window_end"}, default="key_step"
    delay : str or Timedelta, optional
        For ``at="delay"`` (e.g. ``"6h"``).
    windows : pandas.DataFrame, optional
        For ``at="window_end"``: ``starts_at, ends_at`` rows (e.g. the promotions table).

    Returns
    -------
    Deferral

    Examples
    --------
    >>> ts = pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00"])
    >>> d = defer_decisions([2, 0, 0], account=["a", "a", "a"], ts=ts, key=[False, False, True])
    >>> d.decision.tolist(), d.deferred.tolist(), d.escalated.tolist()
    ([0, 0, 2], [True, False, False], [False, False, True])
    """
    if at not in ("key_step", "delay", "window_end"):
        raise FraudkitError(f"delayed interception: at must be key_step, delay or window_end, got {at!r}")
    sev = np.asarray(severity, dtype=np.int8)
    n = len(sev)
    t = pd.to_datetime(pd.Series(ts), cache=False).to_numpy(dtype="datetime64[ns]")
    if np.isnat(t).any():
        raise FraudkitError("delayed interception: an event has no time; every event needs one to be ordered")
    t = t.astype(np.int64)
    key = np.asarray(key, dtype=bool)
    free = np.zeros(n, dtype=bool) if exempt is None else np.asarray(exempt, dtype=bool)
    defer = (sev > 0) & ~key & ~free
    if at == "key_step":
        due = t
    elif at == "delay":
        if delay is None:
            raise FraudkitError("delayed interception: at='delay' needs delay= (e.g. '6h')")
        due = t + pd.Timedelta(delay).value
    else:
        if windows is None:
            raise FraudkitError("delayed interception: at='window_end' needs window_end= (the promotions table)")
        for c in ("starts_at", "ends_at"):
            if c not in windows.columns:
                raise FraudkitError(f"delayed interception: the windows lack column {c!r}; "
                                    f"columns: {', '.join(map(str, windows.columns))}")
        st = pd.to_datetime(windows["starts_at"], cache=False).to_numpy(dtype="datetime64[ns]").astype(np.int64)
        en = pd.to_datetime(windows["ends_at"], cache=False).to_numpy(dtype="datetime64[ns]").astype(np.int64)
        due = t.copy()
        if defer.any() and len(st):
            td = t[defer]
            inside = (td[:, None] >= st[None, :]) & (td[:, None] <= en[None, :])
            last_end = np.where(inside, en[None, :], np.iinfo(np.int64).min).max(axis=1)
            due[defer] = np.where(inside.any(axis=1), last_end, td)
    acct, _ = pd.factorize(pd.Series(account).to_numpy(dtype=object))
    k = int(acct.max()) + 1 if n else 0
    big = np.iinfo(np.int64).max
    # per account, in time order: deferred events add their severity when due, key steps read the running max
    rows = np.r_[np.flatnonzero(defer), np.flatnonzero(key)]
    kind = np.r_[np.zeros(int(defer.sum()), dtype=np.int8), np.ones(int(key.sum()), dtype=np.int8)]
    when = np.r_[due[defer], t[key]]
    order = np.lexsort((kind, when, acct[rows]))
    vals = np.where(kind == 0, sev[rows], 0)[order]
    running = pd.Series(vals).groupby(acct[rows][order]).cummax().to_numpy(dtype=np.int8)
    pending_at_key = np.zeros(n, dtype=np.int8)
    is_key = kind[order] == 1
    pending_at_key[rows[order][is_key]] = running[is_key]
    out = np.where(defer, 0, sev).astype(np.int8)
    escalated = key & (pending_at_key > out)
    out = np.maximum(out, pending_at_key).astype(np.int8)
    flag = np.full(k, big, dtype=np.int64)
    np.minimum.at(flag, acct[defer], t[defer])
    first_due = np.full(k, big, dtype=np.int64)
    np.minimum.at(first_due, acct[defer], due[defer])
    if at == "key_step":  # nothing happens before the account's next key step
        eff = np.full(k, big, dtype=np.int64)
        ok = key & (t >= first_due[acct])
        np.minimum.at(eff, acct[ok], t[ok])
    else:
        eff = first_due
    nat = lambda v: np.where(v < big, v, np.iinfo(np.int64).min).astype("datetime64[ns]")  # noqa: E731
    return Deferral(out, defer, np.where(defer, sev, 0).astype(np.int8), escalated, nat(flag[acct]), nat(eff[acct]))


# --- private helpers ----------------------------------------------------------------------------


def _account_layer(acct, table, name, block_at, sev, why, why_labels, notes):
    """One account layer's score and flag per row; ``acct``: the rows' accounts factorised, (codes, distinct)."""
    codes, distinct = acct
    n = len(codes)
    if table is None or len(table) == 0:
        notes.append(f"decisions: {name} layer skipped (no {name} scores; "
                     f"{'the graph stage did not run' if name == 'network' else 'the behaviour stage did not run'})")
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    t = AccountScores.of(table, name)
    idx = t.accounts.get_indexer(distinct)[codes]
    found = idx >= 0
    score = np.where(found, t.score[idx], np.nan)
    flagged = np.where(found, t.flagged[idx], False)
    s = np.where(flagged, 1, 0).astype(np.int8)
    why_labels[name] += [f"{name}:flagged"]
    w = np.where(flagged, 1, 0)
    if block_at is not None:
        hi = found & (score >= block_at)
        s = np.where(hi, 2, s).astype(np.int8)
        why_labels[name].append(f"{name}:score>={block_at:g}")
        w = np.where(hi, 2, w)
    sev[name], why[name] = s, w
    return score, flagged


def _list_layers(events, lists, as_of, scope, sev, why, why_labels):
    scopes = []
    if scope is not None:
        scopes.append(scope)
    if "promotion_id" in events.columns:

        scopes.append(row_scopes("promotion", events["promotion_id"]))
    if as_of is None and "ts" in events.columns:
        as_of = events["ts"].to_numpy(dtype="datetime64[ns]")
    # every entry ever added: whether it is live is decided per row by ListStore.contains
    act = lists.entries if (as_of is not None and np.ndim(as_of) == 1) else lists.active(as_of)
    n = len(events)
    for list_type, layer, level in (("blacklist", "blacklist", 2), ("graylist", "graylist", 1)):
        a = act[act["list_type"] == list_type]
        bits = np.zeros(n, dtype=np.int64)
        labels = []
        for (list_name, etype), _ in a.groupby(["list_name", "entity_type"], sort=True):
            col = next((c for c, e in _LIST_KEYS if e == etype and c in events.columns), None)
            if col is None:
                continue
            hit = lists.contains(list_name, events[col], list_type=list_type, entity_type=etype,
                                 scope=scopes or None, as_of=as_of)
            if hit.any() and len(labels) < 62:
                bits |= hit.astype(np.int64) << len(labels)
                labels.append(f"{list_type}:{list_name}({col})")
        codes, uniq = pd.factorize(bits)
        names = ["+".join(lb for b, lb in enumerate(labels) if (int(u) >> b) & 1) for u in uniq]
        sev[layer] = np.where(bits > 0, level, 0).astype(np.int8)
        why[layer] = np.where(bits > 0, codes + 1, 0)
        why_labels[layer] = [""] + names


def _reasons(why, why_labels, n):
    """'; '-joined reasons per row, built once per distinct combination: :class:`Coded`."""
    if n == 0:
        return Coded(np.zeros(0, dtype=np.int64), np.array([""], dtype=object))
    radix = [max(len(why_labels[k]), 1) for k in _LAYERS]
    if math.prod(radix) < 2 ** 62:
        # one mixed-radix int64 per row (each layer's reason code a digit), not a MultiIndex of tuples
        key = np.zeros(n, dtype=np.int64)
        for k, r in zip(_LAYERS, radix):
            key = key * r + np.asarray(why[k], dtype=np.int64)
        codes, uniq = pd.factorize(key)
        combos = [_digits(u, radix) for u in uniq.tolist()]
    else:
        codes, combos = pd.factorize(pd.MultiIndex.from_arrays([why[k] for k in _LAYERS]))
    text = ["; ".join(why_labels[k][c] for k, c in zip(_LAYERS, combo) if c > 0) for combo in combos]
    return Coded(codes, np.asarray(text, dtype=object))


def _digits(key: int, radix: list) -> list:
    """The mixed-radix digits of ``key``, most significant first (the inverse of the key in :func:`_reasons`)."""
    out = []
    for r in reversed(radix):
        key, c = divmod(key, r)
        out.append(c)
    return out[::-1]
