import json

import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import FraudkitError
from fraudkit.evaluation.metrics import (
    evaluate_run,
    evaluation_table,
    format_table,
    interception_rate_by_day,
    leakage,
    precision_recall_table,
    recall_at_precision,
)


@pytest.fixture
def run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    labels = pd.DataFrame({
        "entity_type": ["account"] * 7 + ["note"],
        "entity_id": ["a1", "a2", "a3", "a4", "h1", "h2", "t1", "n1"],
        "typology": ["device_farm", "device_farm", "coupon_abuser", "coupon_abuser", "honest_shared_device",
                     "honest_shared_device", "device_farm", "engagement_buyer"],
        "campaign_id": None,
    })
    labels.to_parquet(data / "labels.parquet")
    rd = tmp_path / "run"
    rd.mkdir()
    acc = pd.DataFrame({
        "account_id": ["a1", "a2", "a3", "a4", "h1", "h2", "u1", "u2", "t1"],
        "score_behaviour": [0.9, 0.1, 0.8, 0.2, 0.7, 0.1, 0.9, 0.0, 0.9],
        "flagged_behaviour": [True, False, True, False, True, False, True, False, True],
        "score_graph": [0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9],
        "flagged_graph": [True, True, False, False, False, False, False, False, True],
    })
    acc["flagged_combined"] = acc["flagged_behaviour"] | acc["flagged_graph"]
    acc.to_parquet(rd / "accounts.parquet")
    pd.DataFrame({"entity_type": ["account"], "entity_id": ["t1"]}).to_parquet(rd / "train_entities.parquet")
    (rd / "manifest.json").write_text(json.dumps({"data": {"path": str(data)}}))
    return rd, data


def test_table_by_hand(run, monkeypatch):
    rd, data = run
    import fraudkit.evaluation.metrics as ev

    monkeypatch.setattr(ev, "_read_labels", lambda d: pd.read_parquet(d / "labels.parquet"))
    t = evaluate_run(rd).set_index("typology")
    assert list(t.reset_index().columns[:5]) == ["typology", "n_labelled", "recall_behaviour", "recall_graph",
                                                 "recall_combined"]
    # t1 trained a model: excluded, so device_farm has 2 labelled accounts
    assert t.loc["device_farm", "n_labelled"] == 2
    assert t.loc["device_farm", ["recall_behaviour", "recall_graph", "recall_combined"]].tolist() == [0.5, 1.0, 1.0]
    assert t.loc["coupon_abuser", ["recall_behaviour", "recall_graph", "recall_combined"]].tolist() == [0.5, 0, 0.5]
    assert t.loc["honest_shared_device", ["fpr_behaviour", "fpr_graph", "fpr_combined"]].tolist() == [0.5, 0, 0.5]
    assert np.isnan(t.loc["honest_shared_device", "recall_behaviour"])
    assert t.loc["engagement_buyer", "n_labelled"] == 1 and np.isnan(t.loc["engagement_buyer", "recall_combined"])
    # all_fraud: 4 positives; combined flags a1,a2,a3 (+ h1, u1 false) -> precision 3/5
    assert t.loc["all_fraud", "recall_combined"] == 0.75
    assert t.loc["all_fraud", "precision_combined"] == pytest.approx(3 / 5)
    assert t.loc["all_fraud", "precision_graph"] == 1.0
    # all_honest: h1, h2, u1, u2 -> behaviour flags h1, u1
    assert t.loc["all_honest", "fpr_behaviour"] == 0.5
    md = format_table(t.reset_index())
    assert md.splitlines()[0].startswith("| typology | n_labelled |") and "n/a" in md
    assert format_table(t.reset_index(), "csv").splitlines()[0].startswith("typology,n_labelled")


def test_run_evaluation_reads_the_note_rows_of_the_scores(run, monkeypatch):
    """The run's scores file is read for its note rows only (engagement buyers); the account and event rows
    (38M on large) stay on disk. The same table as evaluating with every row in memory."""
    rd, data = run
    import fraudkit.evaluation.metrics as ev

    monkeypatch.setattr(ev, "_read_labels", lambda d: pd.read_parquet(d / "labels.parquet"))
    scores = pd.DataFrame({"entity_type": ["account", "note", "note", "interaction", "note"],
                           "entity_id": ["a1", "n1", "n2", "e1", "n1"],
                           "stage": ["behaviour", "graph", "behaviour", "rules", "behaviour"], "method": "m",
                           "score": [0.9, 0.8, 0.7, 1.0, 0.1], "flagged": [True, True, True, True, False],
                           "reason": ""})
    scores.to_parquet(rd / "scores.parquet")
    read = []
    real = ev._engagement_buyer
    monkeypatch.setattr(ev, "_engagement_buyer", lambda lab, s, cols: read.append(s) or real(lab, s, cols))
    t = evaluate_run(rd)
    assert read[0]["entity_type"].tolist() == ["note"] * 3 and list(read[0].columns) == list(ev.NOTE_SCORE_COLUMNS)
    acc = pd.read_parquet(rd / "accounts.parquet")
    whole = ev.evaluation_table(acc, pd.read_parquet(data / "labels.parquet"), scores=scores, exclude={"t1"})
    pd.testing.assert_frame_equal(t, whole)
    e = t.set_index("typology").loc["engagement_buyer"]
    assert (e["recall_graph"], e["recall_behaviour"], e["recall_combined"]) == (1.0, 0.0, 1.0)


def test_engagement_buyer_on_note_scores():
    acc = pd.DataFrame({"account_id": ["a"], "flagged_behaviour": [False], "flagged_combined": [False]})
    labels = pd.DataFrame({"entity_type": ["note", "note"], "entity_id": ["n1", "n2"],
                           "typology": ["engagement_buyer"] * 2})
    scores = pd.DataFrame({"entity_type": ["note", "note"], "entity_id": ["n1", "n2"], "stage": ["behaviour"] * 2,
                           "method": "m", "score": [1.0, 0.0], "flagged": [True, False], "reason": ""})
    t = evaluation_table(acc, labels, scores=scores).set_index("typology")
    assert t.loc["engagement_buyer", "recall_behaviour"] == 0.5


def test_metric_functions():
    assert leakage(["pass", "block", "pass", "verify"], [True, True, False, True]) == \
        {"n_fraud": 3, "leakage": 1, "leakage_rate": 1 / 3, "intercepted": 2}
    with pytest.raises(FraudkitError):
        leakage(["pass"], [True, False])
    by_day = interception_rate_by_day(["pass", "block", "verify", "pass"],
                                      pd.to_datetime(["2024-01-01 01:00", "2024-01-01 02:00", "2024-01-02 03:00",
                                                      "2024-01-02 04:00"]), y=[True, True, False, False])
    assert by_day["interception_rate"].tolist() == [0.5, 0.5]
    assert by_day["leakage"].tolist() == [1, 0]
    assert by_day["leakage_rate"].iloc[0] == 0.5 and np.isnan(by_day["leakage_rate"].iloc[1])
    assert recall_at_precision([0.9, 0.8, 0.7, 0.1], [1, 1, 0, 1], 1.0) == pytest.approx(2 / 3)
    assert recall_at_precision([0.9, 0.8], [0, 0], 0.5) != recall_at_precision([0.9, 0.8], [0, 0], 0.5)  # nan
    pr = precision_recall_table([0.9, 0.8, 0.2, 0.1], [1, 0, 1, 0], thresholds=[0.5, 0.15])
    assert pr[["n_flagged", "tp", "precision", "recall"]].values.tolist() == [[2, 1, 0.5, 0.5], [3, 2, 2 / 3, 1.0]]


def test_missing_manifest(tmp_path):
    with pytest.raises(FraudkitError, match="manifest.json is missing"):
        evaluate_run(tmp_path)
    with pytest.raises(FraudkitError, match="unknown format"):
        format_table(pd.DataFrame({"a": [1]}), "html")


def test_format_evaluation_prints_the_arms_race_blocks():
    from fraudkit.evaluation.metrics import evaluation_table, format_evaluation

    acc = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "flagged_graph": [True, False, True, False],
                        "flagged_rules": [False, True, False, False], "flagged_combined": [True, True, True, False]})
    lab = pd.DataFrame({"entity_type": "account", "entity_id": ["a", "b", "c", "d"],
                        "typology": ["device_farm", "coupon_abuser", "honest_shared_device", "honest_viral_fan"]})
    text = format_evaluation(evaluation_table(acc, lab),
                             operating_point={"source": "training dataset t", "target_precision": 0.9})
    lines = text.splitlines()
    assert lines[0] == "operating point: training dataset t (target precision 0.9)"
    assert "| typology | n_labelled | recall_graph | recall_rules | recall_combined |" in lines
    assert "| device_farm | 1 | 1.000 | 0.000 | 1.000 |" in lines
    assert "| honest_shared_device | 1 | 1.000 | 0.000 | 1.000 |" in lines
    assert lines[-1] == "| all | 2 | 0.500 | 1.000 | 0.667 |"
    assert format_evaluation(evaluation_table(acc, lab), "csv").startswith("typology,n_labelled,recall_graph")


def test_format_table_csv_neutralises_formulas_but_not_numbers():
    from fraudkit.evaluation.metrics import format_table, neutralise_formulas

    df = pd.DataFrame({"typology": ["=cmd|' /C calc'!A0", "+1+1", "-2", "\tx", "\rx", "@x", "ok", "a\r=1+1"],
                       "n": [-1, 2, 3, 4, 5, 6, 7, 8], "rate": [-0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]})
    before = df.copy()
    out = format_table(df, "csv").splitlines()
    assert out[1] == "'=cmd|' /C calc'!A0,-1,-0.5"
    assert out[2].startswith("'+1+1,") and out[3].startswith("-2,")  # a number in text is not a formula
    import csv
    import io

    cells = [row[0] for row in csv.reader(io.StringIO(format_table(df, "csv"), newline=""))][1:]
    assert cells[3:7] == ["'\tx", "'\nx", "'@x", "ok"]  # a bare CR would have started a new row
    assert cells[7] == "a\n=1+1"  # one quoted cell, not a row that starts with a formula
    assert neutralise_formulas(df)["n"].tolist() == df["n"].tolist()
    pd.testing.assert_frame_equal(df, before)  # the input is not modified
