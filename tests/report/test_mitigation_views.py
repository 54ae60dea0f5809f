"""Notebook 04's governance views: every action on a real run, honest collateral, readable summaries."""

from __future__ import annotations

import pandas as pd
from _report_build import micro_data, micro_report

from fraudkit.data.contract import HONEST_LOOKALIKES
from fraudkit.report import mitigation_views as mv


def test_governance_actions_cover_every_aim_and_count_collateral():
    res = micro_report()
    gov = mv.governance_actions(res.run_dir, micro_data())
    assert {"clean_engagement", "ban_accounts", "demote_notes", "restrict_commerce", "purchase_limit",
            "delayed_key_step", "delayed_window_end"} <= set(gov.results)
    acc = pd.read_parquet(res.run_dir / "accounts.parquet")
    assert gov.results["ban_accounts"].summary["banned"] == int(acc["flagged_combined"].sum())
    assert list(gov.summary["step"]) == list(gov.results)
    assert set(HONEST_LOOKALIKES) <= set(gov.summary.columns)
    assert (gov.summary["n_fraud"] + gov.summary["n_honest"] == gov.summary["n_affected"]).all()
    changes = mv.governance_changes(gov)
    assert len(changes) == len(gov.results) and changes["changes"].str.len().gt(10).all()
    burned = mv.ban_resources(gov.results["ban_accounts"])
    assert (burned["burned"] <= burned["touched"]).all()
    limits = mv.limit_breakdown(gov.results["purchase_limit"])
    assert limits["refused"].sum() == gov.results["purchase_limit"].summary["orders_refused"]


def test_account_risk_follows_the_flags_not_the_rank():
    acc = pd.DataFrame({"account_id": [1, 2, 3], "flagged_behaviour": [True, False, False],
                        "flagged_graph": [True, True, False], "flagged_combined": [True, True, False],
                        "score_combined": [0.99, 0.98, 0.97]})
    assert mv.account_risk(acc)["risk"].tolist() == [0.9, 0.6, 0.0]
