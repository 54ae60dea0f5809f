import numpy as np
import pandas as pd
import pytest

from fraudkit.errors import FraudkitError
from fraudkit.evaluation.backtest import backtest, diff_rulesets
from fraudkit.identification.rules import load_ruleset


def rs(*rules):
    return load_ruleset({"thresholds": {"verify": 40, "block": 80}, "rules": list(rules)})


@pytest.fixture
def data():
    # 8 rows; positives are rows 0-3
    frame = pd.DataFrame({"x": [5, 5, 1, 0, 5, 0, 0, 0], "y": [1, 0, 1, 1, 0, 0, 1, 0],
                          "account_id": ["a", "a", "b", "c", "d", "d", "e", "f"]})
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    return frame, y


def test_per_rule_figures_by_hand(data):
    frame, y = data
    bt = backtest(rs({"id": "X", "condition": "x > 2", "score": 50}, {"id": "Y", "condition": "y == 1", "score": 50},
                     {"id": "S", "condition": "x == 1", "score": 50, "status": "shadow"}), frame, y)
    t = bt.rules.set_index("rule_id")
    # X hits rows 0,1,4 (tp 0,1); Y hits rows 0,2,3,6 (tp 0,2,3); S hits row 2 (tp)
    assert t.loc["X", ["hits", "tp"]].tolist() == [3, 2]
    assert t.loc["X", "precision"] == pytest.approx(2 / 3) and t.loc["X", "recall"] == pytest.approx(0.5)
    assert t.loc["Y", ["hits", "tp"]].tolist() == [4, 3]
    assert t.loc["Y", "precision"] == pytest.approx(0.75) and t.loc["Y", "recall"] == pytest.approx(0.75)
    # exclusive: X alone on rows 1,4 ; Y alone on rows 3,6 (row 2 is also hit by S) ; S never alone
    assert t.loc["X", ["exclusive_hits", "exclusive_tp"]].tolist() == [2, 1]
    assert t.loc["Y", ["exclusive_hits", "exclusive_tp"]].tolist() == [2, 1]
    assert t.loc["S", "exclusive_hits"] == 0
    # active set = X or Y: rows 0,1,2,3,4,6 -> recall 1.0; without X: rows 0,2,3 -> 0.75; without Y: 0,1 -> 0.5
    assert t.loc["X", "lift"] == pytest.approx(0.25)
    assert t.loc["Y", "lift"] == pytest.approx(0.5)
    assert t.loc["S", "lift"] == pytest.approx(0.0)  # adds nothing the active set misses
    assert bt.summary == {"n": 8, "n_positive": 4, "hits": 6, "tp": 4, "precision": pytest.approx(4 / 6),
                          "recall": 1.0}
    # Jaccard X vs Y: intersection {0}, union {0,1,2,3,4,6}
    assert bt.overlap.loc["X", "Y"] == pytest.approx(1 / 6)
    assert bt.overlap.loc["X", "X"] == 1.0


def test_key_level_metrics(data):
    frame, y = data
    bt = backtest(rs({"id": "X", "condition": "x > 2", "score": 50}), frame, y, key="account_id")
    # accounts: a (pos, hit), b (pos), c (pos), d (neg, hit), e, f
    t = bt.rules.iloc[0]
    assert (t["hits"], t["tp"]) == (2, 1)
    assert t["recall"] == pytest.approx(1 / 3)
    assert bt.unit == "account_id" and bt.summary["n"] == 6


def test_diff_two_versions(data):
    frame, y = data
    v1 = rs({"id": "X", "condition": "x > 2", "score": 50}, {"id": "Z", "condition": "x == 0", "score": 50})
    v2 = rs({"id": "X", "condition": "x > 4", "score": 60}, {"id": "Y", "condition": "y == 1", "score": 50})
    d = diff_rulesets(v1, v2, frame, y)
    assert (d.added, d.removed, d.changed) == (("Y",), ("Z",), ("X",))
    # v1 flags rows 0,1,3,4,5,6,7 ; v2 flags rows 0,1,2,3,4,6
    assert (d.gained, d.gained_tp, d.lost, d.lost_tp) == (1, 1, 2, 0)
    s = d.summary.set_index("metric")
    assert s.loc["recall", "old"] == pytest.approx(0.75) and s.loc["recall", "new"] == pytest.approx(1.0)
    assert s.loc["precision", "change"] == pytest.approx(4 / 6 - 3 / 7)


def test_label_length_mismatch(data):
    frame, _ = data
    with pytest.raises(FraudkitError, match="got 2 labels for 8 rows"):
        backtest(rs({"id": "X", "condition": "x > 2"}), frame, [True, False])


def test_csv_export_neutralises_formula_rule_ids(tmp_path):
    """`fraudkit rules backtest --format csv`: a rule id `=HYPERLINK(...)` is not a live formula in a spreadsheet."""
    import csv
    import io

    import yaml
    from click.testing import CliRunner

    from fraudkit.cli import main
    from fraudkit.simulation import simulate

    data = tmp_path / "micro"
    simulate("micro", data, seed=3, progress=False)
    evil = '=HYPERLINK("http://evil.example","click")'
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [
        {"id": evil, "entity": "account", "condition": "n_devices >= 1", "score": 50},
        {"id": "@SUM(A1)", "entity": "account", "condition": "n_devices >= 2", "score": 50}]}))
    r = CliRunner().invoke(main, ["rules", "backtest", str(rules), str(data), "--format", "csv"])
    assert r.exit_code == 0, r.output
    body = r.output[r.output.index("rule_id"):].split("\n\n")[0]
    rows = list(csv.DictReader(io.StringIO(body)))
    ids = {row["rule_id"] for row in rows}
    assert ids == {"'" + evil, "'@SUM(A1)"}
    assert all(not v.startswith(("=", "+", "@")) for row in rows for v in row.values())
    # numbers stay numbers
    assert all(float(row["hits"]) >= 0 for row in rows)
    assert data.is_dir() and (data / "accounts.parquet").exists()  # the input is untouched
