"""Early warning on the daily interception rate: the one computation.

A day whose interception rate falls below a band around the median of the
previous days — scalpers finding a way round the rules, or a rule silently
broken — raises a warning. The band looks only at earlier days, so the warning
could have been raised on that day. The closed loop (:mod:`fraudkit.evaluation.loop`,
``loop/early_warning.parquet``) and the report's leakage section
(:func:`fraudkit.report.views.early_warning`) both call :func:`early_warning`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.errors import FraudkitError
from fraudkit.evaluation.metrics import interception_rate_by_day

__all__ = ["EARLY_WARNING_COLUMNS", "early_warning", "interception_early_warning"]

EARLY_WARNING_COLUMNS = ("day", "n", "intercepted", "interception_rate", "band_low", "band_high", "warning",
                         "message")
"""Columns of an early-warning table, one row per day."""


def early_warning(daily: pd.DataFrame, *, baseline_days: int = 3, tolerance: float = 0.5, band=None,
                  min_events: int = 20) -> pd.DataFrame:
    """Flag the days whose interception rate falls below its band.

    The band is ``band=(low, high)`` when given, else the median rate of the
    previous ``baseline_days`` days (days with at least ``min_events`` events)
    times ``(1 - tolerance, 1 + tolerance)``. Days with fewer than
    ``min_events`` events are shown but never warn; the first day has no
    baseline and never warns.

    Parameters
    ----------
    daily : pandas.DataFrame
        One row per day: ``day``, ``interception_rate`` and, optionally, ``n``
        (events that day; without it every day counts) — e.g. from
        :func:`fraudkit.evaluation.metrics.interception_rate_by_day`. Other
        columns are kept. Not modified.
    baseline_days : int, default=3
    tolerance : float, default=0.5
    band : (float, float) or None, default=None
        A fixed band instead of the rolling one.
    min_events : int, default=20

    Returns
    -------
    pandas.DataFrame
        ``daily``'s columns plus ``band_low, band_high, warning, message``,
        sorted by day.

    Raises
    ------
    FraudkitError
        A required column is missing, or ``band`` is not ``(low, high)`` with ``low <= high``.

    Examples
    --------
    >>> d = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=5), "interception_rate": [.5, .5, .52, .1, .5]})
    >>> early_warning(d)["warning"].tolist()
    [False, False, False, True, False]
    """
    for c in ("day", "interception_rate"):
        if c not in daily.columns:
            raise FraudkitError(f"early_warning: the daily table lacks column {c!r}; columns: "
                                f"{', '.join(map(str, daily.columns))} (build it with interception_rate_by_day)")
    if band is not None and not (len(band) == 2 and band[0] <= band[1]):
        raise FraudkitError(f"early_warning: band must be (low, high) with low <= high, got {band!r}")
    t = daily.sort_values("day", kind="stable").reset_index(drop=True)
    rate = t["interception_rate"].astype(float)
    enough = t["n"] >= min_events if "n" in t.columns else pd.Series(True, index=t.index)
    if band is not None:
        lo = np.full(len(t), float(band[0]))
        hi = np.full(len(t), float(band[1]))
    else:
        base = rate.where(enough).shift(1).rolling(baseline_days, min_periods=1).median()
        lo = (base * (1 - tolerance)).to_numpy()
        hi = (base * (1 + tolerance)).to_numpy()
    t["band_low"], t["band_high"] = lo, hi
    t["warning"] = (enough & (rate < np.nan_to_num(lo, nan=-np.inf))).to_numpy(dtype=bool)
    t["message"] = np.where(t["warning"], [f"interception rate {r:.3f} below band {b:.3f}"
                                           for r, b in zip(rate, np.nan_to_num(lo))], "")
    return t


def interception_early_warning(decisions, *, entity_type="order", decision="decision_loop", baseline_days=3,
                               tolerance=0.5, band=None, min_events=20) -> pd.DataFrame:
    """:func:`early_warning` on the daily interception rate of one entity type's decisions.

    Parameters
    ----------
    decisions : pandas.DataFrame
        ``entity_type``, ``ts`` and the ``decision`` column (``pass|verify|block``).
    entity_type, decision
        Which rows and which decision column.
    baseline_days, tolerance, band, min_events
        As in :func:`early_warning`.

    Returns
    -------
    pandas.DataFrame
        :data:`EARLY_WARNING_COLUMNS`.

    Examples
    --------
    >>> d = pd.DataFrame({"entity_type": "order", "ts": pd.to_datetime(["2024-06-01"] * 4 + ["2024-06-02"] * 4),
    ...                   "decision": ["block", "block", "pass", "pass"] + ["pass"] * 4})
    >>> w = interception_early_warning(d, decision="decision", band=(0.25, 0.9), min_events=1)
    >>> w["warning"].tolist()
    [False, True]
    """
    for c in ("entity_type", "ts", decision):
        if c not in decisions.columns:
            raise FraudkitError(f"interception_early_warning: decisions lack column {c!r}; "
                                f"columns: {', '.join(decisions.columns)}")
    if band is not None and not (len(band) == 2 and band[0] <= band[1]):
        raise FraudkitError(f"interception_early_warning: band must be (low, high) with low <= high, got {band!r}")
    d = decisions[decisions["entity_type"] == entity_type]
    if d.empty:
        return pd.DataFrame(columns=list(EARLY_WARNING_COLUMNS))
    daily = interception_rate_by_day(d[decision].to_numpy(), d["ts"])
    return early_warning(daily, baseline_days=baseline_days, tolerance=tolerance, band=band,
                         min_events=min_events)[list(EARLY_WARNING_COLUMNS)]
