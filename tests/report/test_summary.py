"""The summary leads to action, and every key number reads the same on every page that shows it."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
from _report_build import micro_report

from fraudkit.report import keynumbers
from fraudkit.report.build import _same_id_report
from fraudkit.report.summary import action_plan


def _text(path) -> str:
    page = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())
    page = re.sub(r'srcdoc="[^"]*"', "", page)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _one(pattern: str, text: str, where: str) -> str:
    found = set(re.findall(pattern, text))
    assert len(found) == 1, (where, pattern, found)
    return found.pop()


def test_key_numbers_agree_across_pages():
    res = micro_report()
    index = _text(res.report_dir / "index.html")
    step4 = _text(res.report_dir / "04_risk_mitigation.html")
    step5 = _text(res.report_dir / "05_effect_evaluation.html")

    # flagged accounts: the index card, step 4's delayed-interception note, the source function
    flagged = keynumbers.flagged_accounts(res.run_dir)
    card = _one(r"([\d,]+) accounts flagged \(combined\)", index, "index")
    assert card == f"{flagged.flagged:,}"
    assert _one(r"([\d,]+) accounts are flagged \(combined\)", step4, "step 4") == card
    assert "accounts with a deferred event" in step4  # the delayed table's own count, named for what it counts

    # precision and recall: index card, the closed-loop paragraph, step 5
    acc = keynumbers.accuracy(res.run_dir, res.manifest["parameters"]["data"])
    precision, recall = f"{acc.precision:.1%}", f"{acc.recall:.1%}"
    assert _one(r"([\d.]+%) precision \(combined\)", index, "index") == precision
    assert _one(r"whose precision is ([\d.]+%)", index, "index loop") == precision
    assert _one(r"Over all fraud: precision ([\d.]+%)", step5, "step 5") == precision
    assert _one(r"([\d.]+%) fraud recall \(combined\)", index, "index") == recall
    assert _one(r"recall ([\d.]+%) — [\d,]+ of [\d,]+ fraudulent accounts", step5, "step 5") == recall

    # leakage counts events, recall counts accounts: both pages say so
    ev = keynumbers.events(res.run_dir, res.manifest["parameters"]["data"])
    assert _one(r"([\d.]+%) leakage rate", index, "index") == f"{ev.leakage_rate:.1%}"
    assert keynumbers.RELATION in index and keynumbers.RELATION in step5

    # the early warning: one answer on the index and step 5; the loop's alert is named as its own series
    warn = keynumbers.run_early_warning(res.run_dir, res.manifest["parameters"]["data"])
    if warn.days:
        n = str(len(warn.days))
        assert _one(r"Early warning on (\d+) day", index, "index") == n
        assert _one(r"Early warning on (\d+) day", step5, "step 5") == n
    else:
        assert "No early warning" in index and "No early warning" in step5
        assert "Early warning on" not in step5
    assert "No day crossed the early-warning threshold" not in step5


def test_summary_says_what_happened_what_to_do_and_what_to_watch():
    res = micro_report()
    index = _text(res.report_dir / "index.html")
    for title in ("What happened", "What to do", "What to watch"):
        assert title in index
    assert "apply" in index and "ban accounts" in index  # the actions of step 4, with a recommendation
    assert "no trend yet" in index  # the first report in its folder says there is nothing to compare with


def test_action_plan_orders_by_fraud_removed_and_flags_collateral():
    summ = pd.DataFrame({"step": ["demote_notes", "ban_accounts", "delayed_key_step", "purchase_limit"],
                         "entity_type": ["note", "account", "interaction+order", "order"],
                         "n_affected": [10, 100, 7, 50], "n_fraud": [4, 95, 5, 49], "n_honest": [6, 5, 2, 1]})
    changes = pd.DataFrame({"action": ["ban_accounts"], "changes": ["95 accounts banned"]})
    plan = action_plan(summ, changes)
    assert plan["action"].tolist() == ["ban accounts", "purchase limit", "demote notes", "delayed key step"]
    assert plan["recommendation"].tolist()[:3] == ["apply", "apply", "review the collateral first"]
    assert plan.loc[0, "what_it_changes"] == "95 accounts banned" and plan.loc[0, "honest_share"] == 0.05
    assert plan.loc[3, "fraud_removed"] == 0 and "leaked while waiting" in plan.loc[3, "touches"]


def test_rerun_with_the_same_run_id_compares_with_the_report_it_replaces(tmp_path):
    """A rebuild with the same id finds the report it replaces: step 5 never says no previous report exists."""
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"ok": True}))
    assert _same_id_report(tmp_path, "r1") == tmp_path / "r1"
    assert _same_id_report(tmp_path, "r2") is None
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"ok": False}))
    assert _same_id_report(tmp_path, "r1") is None
    step5 = _text(micro_report().report_dir / "05_effect_evaluation.html")
    assert "no previous report exists" not in step5
    assert "seconds" not in step5.split("The loop, window by window")[-1].split("What the loop keeps")[0]


def test_cards_show_the_trend_and_whether_it_is_good():
    from fraudkit.report.summary import RunSummary

    s = RunSummary()
    s.card("precision", 0.80, "precision", "{:.1%}", previous=0.90, better="up")
    s.card("accounts_flagged", 608, "accounts flagged", previous=600)
    s.card("leakage_rate", 0.30, "leakage", "{:.1%}", previous=0.30, better="down")
    assert s.cards[0]["trend"] == "-10.0 pts vs previous report (90.0%)" and s.cards[0]["kind"] == "bad"
    assert s.cards[1]["trend"] == "+8 vs previous report (600)" and s.cards[1]["kind"] == ""
    assert s.cards[2]["trend"] == "unchanged vs previous report"
