"""How every report table reads: human column names and number formats, one formatter for every page.

:func:`format_frame` turns a (masked) DataFrame into text cells a person reads at a
glance: thousands separators, integers without decimals, shares and rates as
percentages, times to the minute, lists and mappings as short text (never a Python
repr), booleans as yes/no. :func:`human_name` turns a snake_case column into words.
:class:`fraudkit.report.display.Table` and the index page (:mod:`fraudkit.report.summary`)
both use them, so a number looks the same on every page.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

__all__ = ["format_frame", "format_value", "human_name", "is_share_column", "is_id_column", "text_columns",
           "COLUMN_NAMES"]

COLUMN_NAMES = {
    "n_labelled": "labelled",
    "n_affected": "affected",
    "n_fraud": "fraud",
    "n_honest": "honest",
    "n_fraud_seen": "fraud accounts seen",
    "n_seeds": "seeds",
    "fpr": "false-positive rate",
    "p99": "99th percentile",
    "ts": "time",
    "ip": "IP",
    "ip24": "IP /24",
    "entity_id": "entity",
    "entity_type": "entity type",
    "median_lag_hours": "median lag (hours)",
    "window_end": "window end",
    "band_low": "band (low)",
    "band_high": "band (high)",
    "accounts_flagged": "accounts with a deferred event",
}
"""Column names that read better than their words (others: underscores become spaces)."""

_SHARE = re.compile(r"(^|_)(share|rate|recall|precision|fpr|fraction|pct|band)(_|$)")
_WORDS = {"typology", "action", "step", "measure", "layer", "world", "entity_type", "resource", "part"}
"""Columns whose values are vocabulary identifiers (``crowd_scalper``): shown as words (``crowd scalper``)."""
_ID = re.compile(r"(^|_)(id|ids|uuid)$")
_ID_NAMES = {"community", "iteration", "window", "cluster", "rank", "year"}


def human_name(column) -> str:
    """A column name in words.

    Examples
    --------
    >>> human_name("recall_combined"), human_name("n_labelled"), human_name("fake_share")
    ('recall (combined)', 'labelled', 'fake share')
    """
    c = str(column)
    if c in COLUMN_NAMES:
        return COLUMN_NAMES[c]
    for measure in ("recall", "precision", "fpr", "flagged", "score", "leakage_rate"):
        if c.startswith(measure + "_") and len(c) > len(measure) + 1:
            return f"{COLUMN_NAMES.get(measure, measure.replace('_', ' '))} ({c[len(measure) + 1:].replace('_', ' ')})"
    if c.startswith("n_") and len(c) > 2:
        c = c[2:]
    return c.replace("_", " ").strip()


def is_share_column(column) -> bool:
    """Whether a column holds a share in [0, 1] by its name (``*_share``, ``*_rate``, recall, precision, FPR).

    Examples
    --------
    >>> is_share_column("leakage_rate"), is_share_column("recall_graph"), is_share_column("risk_score")
    (True, True, False)
    """
    return bool(_SHARE.search(str(column)))


def is_id_column(column) -> bool:
    """Whether a column is an identifier (shown as it is: no thousands separator).

    Examples
    --------
    >>> is_id_column("account_id"), is_id_column("community"), is_id_column("accounts")
    (True, True, False)
    """
    c = str(column)
    return bool(_ID.search(c)) or c in _ID_NAMES


def format_value(value, *, share: bool = False, ident: bool = False, fmt: str | None = None) -> str:
    """One value as text (see :func:`format_frame`).

    Examples
    --------
    >>> format_value(17239.0), format_value(0.1234, share=True), format_value(2.5), format_value(None)
    ('17,239', '12.3%', '2.50', '–')
    >>> format_value([["low", 0.0, 5], ["high", 0.8, 1]])
    'low 0 5; high 0.8 1'
    >>> format_value(pd.Timestamp("2024-06-01 10:15:42.123"))
    '2024-06-01 10:15'
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [format_value(v, share=share) for v in value]
        sep = "; " if any(isinstance(v, (list, tuple, np.ndarray)) for v in value) else " "
        return sep.join(parts) if len(parts) else "–"
    if isinstance(value, dict):
        return ", ".join(f"{human_name(k)}: {format_value(v)}" for k, v in value.items()) or "–"
    if value is None or value is pd.NA or value is pd.NaT:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp) or isinstance(value, np.datetime64):
        ts = pd.Timestamp(value)
        if pd.isna(ts):
            return "–"
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        td = pd.Timedelta(value)
        return "–" if pd.isna(td) else f"{td.total_seconds() / 3600:,.1f} h"
    if isinstance(value, (int, np.integer)):
        return str(int(value)) if ident else f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if share:
            return f"{v:.1%}"
        if fmt is not None:
            return format(v, fmt)
        if v == round(v) and abs(v) < 1e15:
            return str(int(v)) if ident else f"{int(v):,}"
        a = abs(v)
        if a >= 100:
            return f"{v:,.0f}"
        if a >= 1:
            return f"{v:,.2f}"
        return f"{v:.3g}"
    return str(value)


def text_columns(df: pd.DataFrame) -> list:
    """Columns that hold text (left-aligned in a table; numbers are right-aligned)."""
    return [c for c in df.columns if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
                                          or pd.api.types.is_datetime64_any_dtype(df[c]))]


def format_frame(df: pd.DataFrame, *, rename: bool = True) -> pd.DataFrame:
    """A copy of ``df`` with every cell as display text and human column names.

    Shares and rates (by column name, values within [0, 1]) become percentages; integers
    (and floats that are all whole numbers) get thousands separators; identifiers keep
    their digits as they are; times show to the minute (dates alone when every time is
    midnight); lists and mappings become short text; missing values an en dash.

    Examples
    --------
    >>> f = format_frame(pd.DataFrame({"account_id": [571635793088], "orders": [17239.0],
    ...                                "fake_share": [0.25], "ts": [pd.Timestamp("2024-06-01 10:15:42")]}))
    >>> f.columns.tolist(), f.iloc[0].tolist()
    (['account id', 'orders', 'fake share', 'time'], ['571635793088', '17,239', '25.0%', '2024-06-01 10:15'])
    """
    out = {}
    for col in df.columns:
        s = df[col]
        ident = is_id_column(col)
        num = pd.to_numeric(s, errors="coerce") if s.dtype != object or not len(s) else None
        share = False
        if is_share_column(col) and num is not None and not pd.api.types.is_bool_dtype(s):
            ok = num.dropna()
            share = bool(len(ok)) and bool(((ok >= 0) & (ok <= 1)).all())
        if pd.api.types.is_datetime64_any_dtype(s):
            t = pd.to_datetime(s)
            midnight = bool((t.dropna() == t.dropna().dt.normalize()).all())
            out[col] = t.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M").fillna("–").astype(object)
            continue
        fmt = None
        if pd.api.types.is_float_dtype(s) and not share and not ident:
            ok = s.dropna().to_numpy(dtype=float)
            ok = ok[np.isfinite(ok)]
            if len(ok) and not (ok == np.round(ok)).all():  # one number of decimals for the whole column
                top = float(np.abs(ok).max())
                fmt = ",.0f" if top >= 1000 else (",.2f" if top >= 1 else ".3f")
        cells = [format_value(v, share=share, ident=ident, fmt=fmt) for v in s.tolist()]
        if str(col) in _WORDS:
            cells = [c.replace("_", " ") for c in cells]
        out[col] = pd.Series(cells, index=s.index, dtype=object)
    f = pd.DataFrame(out, index=df.index)
    if rename:
        names = [human_name(c) for c in df.columns]
        seen = {}
        for i, n in enumerate(names):  # two columns that read alike keep their own names
            if n in seen:
                names[i] = str(df.columns[i])
            seen[n] = i
        f.columns = names
    return f
