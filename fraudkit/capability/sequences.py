"""Stage 1: behaviour sequences ("from point to line").

Each account's interactions are cut into sessions (a gap longer than
``session_gap`` starts a new one). A session becomes a *script*: its actions
as letters (``V`` view, ``L`` like, ``C`` collect, ``M`` comment, ``S`` share,
``F`` follow), each followed by a coarse bucket of the gap since the previous
action (``0`` <1 s, ``1`` <3 s, ``2`` <10 s, ``3`` <30 s, ``4`` <2 min,
``5`` longer; the first action has no gap). A person rarely repeats a long
script to the second; a farm replays the same one on many accounts.

Per-account columns of :func:`sequence_features` (key ``account_id``)
---------------------------------------------------------------------
``n_sessions``, ``mean_session_events``, ``session_events_cv``,
``session_duration_cv`` (regularity of session length; NaN below two
multi-event sessions), ``blind_engage_share`` (likes/collects with no view of
the same target earlier in the session), ``v2l_p10_s`` and ``v2l_median_s``
(seconds from the last view of a target to its like/collect in the session),
``fast_engage_share`` (of those, the share faster than ``fast_seconds``),
``top_script`` (str; the most common, ties to the longer), ``top_script_share`` (share of the account's sessions
that are its top script), ``n_distinct_scripts``, ``script_share_count``
(the most other accounts sharing one of its *rare* scripts) and
``shared_script_sessions`` (sessions whose script is rare and shared).
Window-invariant versions of the counts (which grow with the data window's
length): ``sessions_per_day`` (``n_sessions`` per observed day, see
:func:`fraudkit.capability.accumulators.observed_days`) and
``shared_script_session_share`` (share of the sessions whose script is rare
and shared; NaN without a session); ``top_script_share`` already is one.
Distinct scripts per session is not: the longer the window, the more often
an account repeats a script. :data:`SEQUENCE_WINDOW_COUNTS` names the counts
models leave out.

A script is *rare* when it has at least ``min_script_events`` events, at least
one action other than a view, and at most ``max_script_accounts`` accounts (or
``max_script_share`` of the active accounts, whichever is larger): common
short sessions ("one view") are not evidence. Similarity is exact hashing of
the whole script (not MinHash): two accounts share a script when the strings
are identical, so the pair table is exact and cheap; near-duplicate scripts are
left to group mining (:mod:`fraudkit.identification.group.clusters`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.capability.accumulators import observed_days_sql, parse_window
from fraudkit.capability.graphs import sort_order, time_pairs
from fraudkit.data.sqlsource import SqlSource, open_source

__all__ = ["sequence_features", "session_scripts", "script_pairs", "SEQUENCE_FEATURES", "SEQUENCE_WINDOW_COUNTS",
           "ACTION_LETTERS"]

ACTION_LETTERS = {"view": "V", "like": "L", "collect": "C", "comment": "M", "share": "S", "follow": "F"}
"""The letter of each action in a script."""

SEQUENCE_FEATURES = (
    "n_sessions", "mean_session_events", "session_events_cv", "session_duration_cv", "blind_engage_share",
    "v2l_p10_s", "v2l_median_s", "fast_engage_share", "top_script", "top_script_share", "n_distinct_scripts",
    "script_share_count", "shared_script_sessions", "sessions_per_day",
    "shared_script_session_share",
)
"""Columns of :func:`sequence_features` after ``account_id``."""

SEQUENCE_WINDOW_COUNTS = ("n_sessions", "n_distinct_scripts", "script_share_count", "shared_script_sessions")
"""Sequence features that grow with the data window's length (more sessions, more chances to meet another
account's rare script); see :data:`fraudkit.capability.features.WINDOW_COUNTS`."""

_GAP_BUCKETS = ((1, "0"), (3, "1"), (10, "2"), (30, "3"), (120, "4"), (None, "5"))
"""A token's gap bucket: the first ``(upper bound in seconds, label)`` the gap since the previous event is below
(None: any longer gap within the session); a session's first event has none (``""``)."""
_TOKENS = tuple(letter + gap for letter in ACTION_LETTERS.values() for gap in ("", *(b for _, b in _GAP_BUCKETS)))
"""Every token of a script: an action's letter, then its gap's bucket (none for a session's first event); coded
0-41 in the sessions' SQL (63: a null token)."""
_MAX_SCRIPT_EVENTS = 40  # longer sessions are truncated in the script (the count stays exact)
_HOT_SCRIPT_NEIGHBOURS = 20  # partners per account on a script shared by more than max_script_accounts


def sequence_features(data, *, as_of=None, session_gap="30min", fast_seconds=3.0, min_script_events=4,
                      max_script_accounts=500, max_script_share=0.01) -> pd.DataFrame:
    """Per-account session, view-to-like and script-sharing features.

    Parameters
    ----------
    data : Dataset or dict of str to DataFrame
        Needs ``interactions``; ``accounts`` gives the rows (accounts without
        interactions get zero counts and NaN ratios).
    as_of : timestamp-like, default=None
        Only interactions strictly before it.
    session_gap : str, default="30min"
        A gap longer than this starts a new session (``"<n>s|m|min|h|d"``).
    fast_seconds : float, default=3.0
        View-to-engage faster than this counts in ``fast_engage_share``.
    min_script_events, max_script_accounts, max_script_share
        What makes a script rare (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        ``account_id`` then :data:`SEQUENCE_FEATURES`.

    Examples
    --------
    >>> import pandas as pd
    >>> it = pd.DataFrame({"event_id": range(4), "account_id": [1, 1, 1, 1], "device_id": None, "ip": None,
    ...     "action": ["view", "like", "like", "view"], "target_id": [5, 5, 6, 7],
    ...     "ts": pd.to_datetime(["2024-01-01 10:00:00", "2024-01-01 10:00:02", "2024-01-01 10:00:04",
    ...                           "2024-01-01 12:00:00"])})
    >>> f = sequence_features({"interactions": it})
    >>> f[["n_sessions", "blind_engage_share", "v2l_median_s", "top_script"]].values.tolist()
    [[2.0, 0.5, 2.0, 'VL1L1']]
    """
    with open_source(data, as_of=as_of) as src:
        return sequence_features_from_source(src, session_gap=session_gap, fast_seconds=fast_seconds,
                                  min_script_events=min_script_events, max_script_accounts=max_script_accounts,
                                  max_script_share=max_script_share)


def session_scripts(data, *, as_of=None, session_gap="30min") -> pd.DataFrame:
    """One row per session: ``account_id, session, start, end, n_events, script``.

    Examples
    --------
    >>> import pandas as pd
    >>> it = pd.DataFrame({"event_id": range(3), "account_id": [1, 1, 2], "device_id": None, "ip": None,
    ...     "action": ["view", "like", "like"], "target_id": [5, 5, 5],
    ...     "ts": pd.to_datetime(["2024-01-01 10:00:00", "2024-01-01 10:00:12", "2024-01-01 11:00:00"])})
    >>> session_scripts({"interactions": it})[["account_id", "script"]].values.tolist()
    [[1, 'VL3'], [2, 'L']]
    """
    with open_source(data, as_of=as_of) as src:
        sess = _sessions(src, session_gap)
        return src.df(f"SELECT account_id, session, start, \"end\", n_events, script FROM {sess} "
                      "ORDER BY account_id, session")


def script_pairs(data, *, as_of=None, session_gap="30min", min_script_events=4, max_script_accounts=500,
                 max_script_share=0.01, min_shared=1) -> pd.DataFrame:
    """Pairs of accounts sharing rare session scripts, for the graph stage.

    Returns
    -------
    pandas.DataFrame
        ``account_a, account_b, shared_scripts`` with ``account_a < account_b``
        and ``shared_scripts >= min_shared`` (distinct rare scripts in common).
        A script shared by ``k <= max_script_accounts`` accounts yields its
        ``k(k-1)/2`` pairs; a larger one (rare through ``max_script_share``)
        pairs each account with its next 20 accounts in key order only, so
        the table grows linearly with the number of accounts.

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.to_datetime(["2024-01-01 10:00:00", "2024-01-01 10:00:02", "2024-01-01 10:00:04",
    ...                      "2024-01-01 10:00:06"])
    >>> it = pd.DataFrame({"event_id": range(8), "account_id": [1] * 4 + [2] * 4, "device_id": None, "ip": None,
    ...     "action": ["like"] * 8, "target_id": 5, "ts": list(ts) * 2})
    >>> script_pairs({"interactions": it}).values.tolist()
    [[1, 2, 1]]
    """
    with open_source(data, as_of=as_of) as src:
        return script_pairs_from_source(src, session_gap=session_gap, min_script_events=min_script_events,
                             max_script_accounts=max_script_accounts, max_script_share=max_script_share,
                             min_shared=min_shared)


# --- private ------------------------------------------------------------------


def _gap_seconds(session_gap) -> float:

    lit = parse_window(session_gap)
    n, unit = lit.split()[1:]
    return float(n) * {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}[unit]


def _sessions(src: SqlSource, session_gap) -> str:
    """Temp table of sessions with their scripts; events table ``ev_seq`` kept for reuse."""
    name = src.name(f"sessions_{int(_gap_seconds(session_gap))}")
    if src.has_table(name):
        return name
    it = src.require("interactions", "sequence features")
    gap_s = _gap_seconds(session_gap)
    letter = "CASE action " + " ".join(f"WHEN '{a}' THEN '{c}'" for a, c in ACTION_LETTERS.items()) + " END"
    bucket = (f"CASE WHEN gap IS NULL OR gap > {gap_s} THEN '' "
              + " ".join(f"WHEN gap < {hi} THEN '{b}'" for hi, b in _GAP_BUCKETS if hi is not None)
              + f" ELSE '{_GAP_BUCKETS[-1][1]}' END")
    ev = src.temp_table(f"seqev_{int(gap_s)}", f"""
        WITH g AS (SELECT account_id, ts, action, target_id,
                          epoch(ts - lag(ts) OVER (PARTITION BY account_id ORDER BY ts, event_id)) AS gap,
                          row_number() OVER (PARTITION BY account_id ORDER BY ts, event_id) AS rn
                   FROM {it})
        SELECT *, sum(CAST(gap IS NULL OR gap > {gap_s} AS INTEGER))
                      OVER (PARTITION BY account_id ORDER BY rn ROWS UNBOUNDED PRECEDING) AS session,
               {letter} || {bucket} AS token
        FROM g""")
    # the script: tokens sorted inside each session's list (measured 4x faster on 2.4M interactions than an
    # ordered string_agg after a row_number window), each as one integer, rn * 64 + the token's code (a struct
    # of rn and token sorted large's 23.7M interactions in 10.8 s against 7.3 s), spelled again by a CASE (an
    # array's index counts from 1 in DuckDB and from 0 in Spark); a null token (an action without a letter) is
    # code 63, spelled null, which array_to_string skips as it did the struct's
    codes = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(_TOKENS))
    spell = " ".join(f"WHEN {i} THEN '{t}'" for i, t in enumerate(_TOKENS))
    return src.temp_table(f"sessions_{int(gap_s)}", f"""
        SELECT account_id, session, min(ts) AS start, max(ts) AS "end", count(*) AS n_events,
               epoch(max(ts) - min(ts)) AS duration_s,
               array_to_string(list_transform(list_slice(list_sort(list(rn * 64 + coalesce(CASE token {codes} END,
                                                                                           63))),
                                                         1, {_MAX_SCRIPT_EVENTS}), x -> CASE x % 64 {spell} END),
                               '') AS script,
               bool_or(action <> 'view') AS engages
        FROM {ev} GROUP BY account_id, session""")


def drop_sessions(src, session_gap) -> None:
    """Drop the cached event and session tables (23M rows with script tokens on ``large``) once used."""
    g = int(_gap_seconds(session_gap))
    for stem in (f"seqev_{g}", f"sessions_{g}"):
        src.drop_table(src.name(stem))
    for name in src.tables_named("rare_"):
        src.drop_table(name)


def script_pairs_from_source(src, *, session_gap, min_script_events, max_script_accounts, max_script_share,
                  min_shared=1, k_neighbors=_HOT_SCRIPT_NEIGHBOURS, **_ignored) -> pd.DataFrame:
    rare = _rare_scripts(src, session_gap, min_script_events, max_script_accounts, max_script_share)
    # each account's distinct rare scripts, a script as its rank among the distinct scripts (it only groups)
    rows = src.df(f"""
        WITH s AS (SELECT DISTINCT account_id, script FROM {rare} WHERE account_id IS NOT NULL),
        ids AS (SELECT script, dense_rank() OVER (ORDER BY script) AS sid FROM (SELECT DISTINCT script FROM s) d)
        SELECT s.account_id, ids.sid FROM s JOIN ids USING (script)""")
    return _script_pairs(rows["account_id"], rows["sid"].to_numpy(dtype=np.int64), full=int(max_script_accounts),
                         k_neighbors=int(k_neighbors), min_shared=int(min_shared))


_PAIR_BLOCK = 1 << 22
"""Pairs generated at a time by :func:`_script_pairs` (:func:`fraudkit.capability.graphs.time_pairs` chunks)."""


def _script_pairs(account_ids: pd.Series, sid: np.ndarray, *, full, k_neighbors, min_shared) -> pd.DataFrame:
    """The pairs of accounts sharing scripts (``sid``: one row per distinct account and script) with the number
    of scripts each pair shares, sorted by ``account_a`` then ``account_b`` (``account_a < account_b``).

    A script with at most ``full`` accounts ties all its pairs; a larger one (rare only through
    ``max_script_share``: 1% of a million accounts is 10k) ties each account to its next ``k_neighbors`` accounts
    in key order, so the pair count stays linear: the row pairs of :func:`fraudkit.capability.graphs.time_pairs`
    with the account numbers as the times and no window. Accounts are numbered in key order, so a pair's key
    (first number times the accounts, plus the second) sorts as the pair does.

    Examples
    --------
    >>> p = _script_pairs(pd.Series([5, 3, 9, 3, 9]), np.array([1, 1, 1, 2, 2]), full=10, k_neighbors=1,
    ...                   min_shared=1)
    >>> p.values.tolist()
    [[3, 5, 1], [3, 9, 2], [5, 9, 1]]
    >>> _script_pairs(pd.Series([5, 3, 9, 3, 9]), np.array([1, 1, 1, 2, 2]), full=2, k_neighbors=1,
    ...               min_shared=1).values.tolist()  # a script of 3 accounts above full: next neighbours only
    [[3, 5, 1], [3, 9, 1], [5, 9, 1]]
    """
    code, accounts = pd.factorize(account_ids, sort=True)
    accounts = np.asarray(accounts)
    n_acc = max(len(accounts), 1)
    order = sort_order(sid, code)  # by script, then by account: a row's partners are the rows after it
    code, sid = code[order].astype(np.int64), sid[order]
    del order
    sizes = np.unique(sid, return_counts=True)[1]  # sid sorted: the scripts' sizes in row order
    hot = np.repeat(sizes > full, sizes)
    keys = []
    for i, j in time_pairs(sid, code, np.full(len(code), n_acc), hot, k_neighbors, chunk_pairs=_PAIR_BLOCK):
        a, b = code[i], code[j]
        keys.append(np.minimum(a, b) * n_acc + np.maximum(a, b))
        del i, j, a, b
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    del keys
    key.sort()
    first = np.r_[0, np.flatnonzero(np.diff(key)) + 1] if len(key) else np.zeros(0, dtype=np.int64)
    shared = np.diff(np.r_[first, len(key)])
    pair = key[first]
    del key, first
    keep = shared >= min_shared
    pair, shared = pair[keep], shared[keep]
    return pd.DataFrame({"account_a": accounts[pair // n_acc] if len(accounts) else accounts[:0],
                         "account_b": accounts[pair % n_acc] if len(accounts) else accounts[:0],
                         "shared_scripts": shared.astype(np.int64)})


def _rare_scripts(src, session_gap, min_events, max_accounts, max_share) -> str:
    sess = _sessions(src, session_gap)
    n_active = src.scalar(f"SELECT count(DISTINCT account_id) FROM {sess}") or 0
    cap = max(int(max_accounts), int(np.floor(max_share * n_active)))
    return src.temp_table(f"rare_{cap}_{int(min_events)}", f"""
        WITH c AS (SELECT script, count(DISTINCT account_id) AS n_acc FROM {sess}
                   WHERE n_events >= {int(min_events)} AND engages GROUP BY script)
        SELECT s.account_id, s.session, s.script, c.n_acc FROM {sess} s JOIN c USING (script)
        WHERE c.n_acc BETWEEN 2 AND {cap}""")


def sequence_features_from_source(src, *, session_gap, fast_seconds, min_script_events, max_script_accounts,
                       max_script_share) -> pd.DataFrame:
    sess = _sessions(src, session_gap)
    ev = src.name(f"seqev_{int(_gap_seconds(session_gap))}")
    rare = _rare_scripts(src, session_gap, min_script_events, max_script_accounts, max_script_share)
    keys = (f"SELECT account_id FROM {src.t.accounts}" if src.has("accounts")
            else f"SELECT DISTINCT account_id FROM {sess}")
    sql = f"""
    WITH s AS (
        SELECT account_id, CAST(count(*) AS DOUBLE) AS n_sessions, avg(n_events) AS mean_session_events,
               CASE WHEN count(*) >= 2 AND avg(n_events) > 0 THEN stddev_pop(n_events) / avg(n_events) END
                   AS session_events_cv,
               CASE WHEN count(*) FILTER (WHERE n_events > 1) >= 2
                         AND avg(duration_s) FILTER (WHERE n_events > 1) > 0
                    THEN stddev_pop(duration_s) FILTER (WHERE n_events > 1)
                         / avg(duration_s) FILTER (WHERE n_events > 1)
               END AS session_duration_cv,
               CAST(count(DISTINCT script) AS DOUBLE) AS n_distinct_scripts
        FROM {sess} GROUP BY account_id),
    top AS (
        SELECT account_id, any_value(script) FILTER (WHERE rk = 1) AS top_script,
               max(n) / sum(n) AS top_script_share FROM (
            SELECT *, row_number() OVER (PARTITION BY account_id ORDER BY n DESC, length(script) DESC, script) AS rk
            FROM (SELECT account_id, script, count(*) AS n FROM {sess} GROUP BY ALL)) GROUP BY account_id),
    eng AS (
        SELECT account_id, action, epoch(ts - last_view) AS v2l FROM (
            SELECT account_id, action, ts,
                   max(CASE WHEN action = 'view' THEN ts END) OVER (
                       PARTITION BY account_id, session, target_id ORDER BY ts
                       RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_view
            FROM {ev}) WHERE action IN ('like', 'collect')),
    e AS (
        SELECT account_id, avg(CAST(v2l IS NULL AS DOUBLE)) AS blind_engage_share,
               quantile_cont(v2l, 0.1) AS v2l_p10_s, median(v2l) AS v2l_median_s,
               avg(CAST(v2l < {float(fast_seconds)} AS DOUBLE)) AS fast_engage_share
        FROM eng GROUP BY account_id),
    r AS (SELECT account_id, CAST(max(n_acc) - 1 AS DOUBLE) AS script_share_count,
                 CAST(count(*) AS DOUBLE) AS shared_script_sessions FROM {rare} GROUP BY account_id)
    SELECT k.account_id, s.* EXCLUDE (account_id), top.* EXCLUDE (account_id), e.* EXCLUDE (account_id),
           r.* EXCLUDE (account_id)
    FROM ({keys}) k LEFT JOIN s USING (account_id) LEFT JOIN top USING (account_id)
    LEFT JOIN e USING (account_id) LEFT JOIN r USING (account_id) ORDER BY k.account_id"""
    df = src.df(sql)
    for c in ("n_sessions", "n_distinct_scripts", "script_share_count", "shared_script_sessions"):
        df[c] = df[c].fillna(0.0)
    days = src.df(observed_days_sql(src)).set_index("account_id")["observed_days"]
    df["sessions_per_day"] = df["n_sessions"].to_numpy() / df["account_id"].map(days).to_numpy(dtype=float)
    sessions = df["n_sessions"].where(df["n_sessions"] > 0)
    df["shared_script_session_share"] = df["shared_script_sessions"] / sessions
    return df[["account_id", *SEQUENCE_FEATURES]]
