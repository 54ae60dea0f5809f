"""Tests for fraudkit.evaluation.monitoring: the one early-warning computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import FraudkitError
from fraudkit.evaluation.metrics import interception_rate_by_day
from fraudkit.evaluation.monitoring import EARLY_WARNING_COLUMNS, early_warning, interception_early_warning


def test_interception_early_warning_band():
    days = np.repeat(pd.date_range("2024-06-01", periods=5, freq="D"), 20)
    rate = [0.5, 0.5, 0.5, 0.1, 0.5]
    dec = np.concatenate([np.where(np.arange(20) < r * 20, "block", "pass") for r in rate])
    d = pd.DataFrame({"entity_type": "order", "ts": days, "decision_loop": dec})
    w = interception_early_warning(d, baseline_days=3, tolerance=0.5)
    assert w["warning"].tolist() == [False, False, False, True, False]
    assert w.loc[3, "band_low"] == pytest.approx(0.25)
    assert "below band" in w.loc[3, "message"]
    quiet = interception_early_warning(d, baseline_days=3, tolerance=0.5, min_events=50)
    assert not quiet["warning"].any()  # too few events to warn
    with pytest.raises(FraudkitError, match="band must be"):
        interception_early_warning(d, band=(0.5, 0.1))
    with pytest.raises(FraudkitError, match="decision_loop"):
        interception_early_warning(d.drop(columns="decision_loop"))
    assert w.columns.tolist() == list(EARLY_WARNING_COLUMNS)


def test_the_loop_and_the_report_view_warn_on_the_same_days():
    """One rule: the report's leakage section (views.early_warning) and the loop's table agree."""
    from fraudkit.report import views

    rng = np.random.default_rng(5)
    days = np.repeat(pd.date_range("2024-06-01", periods=8, freq="D"), 40)
    rate = np.repeat([0.6, 0.62, 0.58, 0.6, 0.2, 0.61, 0.05, 0.6], 40)
    dec = np.where(rng.random(len(days)) < rate, "verify", "pass")
    d = pd.DataFrame({"entity_type": "order", "ts": days, "decision_loop": dec})
    loop_days = interception_early_warning(d)
    view = views.early_warning(interception_rate_by_day(dec, days))
    warned = loop_days.loc[loop_days["warning"], "day"].dt.strftime("%Y-%m-%d").tolist()
    assert warned == view.days == ["2024-06-05", "2024-06-07"]
    assert view.threshold == pytest.approx(loop_days["band_low"].iloc[-1])


def test_early_warning_without_counts_and_bad_input():
    daily = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=8)[::-1],  # any row order
                          "interception_rate": [.2, .6, .59, .61, .6, .58, .62, .6]})
    w = early_warning(daily)
    assert w["day"].is_monotonic_increasing and w["warning"].tolist() == [False] * 7 + [True]
    assert w["band_low"].iloc[-1] == pytest.approx(0.3)
    assert daily["interception_rate"].iloc[0] == 0.2  # input not modified
    assert early_warning(daily, band=(0.0, 1.0))["warning"].sum() == 0
    with pytest.raises(FraudkitError, match="interception_rate"):
        early_warning(daily.drop(columns="interception_rate"))
    assert interception_early_warning(pd.DataFrame({"entity_type": ["interaction"], "ts": [pd.Timestamp(0)],
                                                    "decision_loop": ["pass"]})).empty
