import json

import pandas as pd
import pytest
from click.testing import CliRunner

from fraudkit.cli import main
from fraudkit.errors import FraudkitError


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from fraudkit.simulation import simulate

    out = tmp_path_factory.mktemp("data") / "micro"
    simulate("micro", out, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def run_dir(micro, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    res = CliRunner().invoke(main, ["score", str(micro), "--out", str(out), "--stages", "behaviour"])
    assert res.exit_code == 0, res.output
    assert "stages run: behaviour" in res.output
    return out


def test_run_directory_layout(run_dir, micro):
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["stages_run"] == ["behaviour"]
    assert man["data"]["fingerprint"] and man["parameters"]["seed"] == 0
    assert "flagged by any stage" in man["operating_point"]["method"]
    assert {"pandas", "numpy"} <= set(man["versions"]) and man["timings"]["total"] > 0
    acc = pd.read_parquet(run_dir / "accounts.parquet")
    n_accounts = len(pd.read_parquet(micro / "accounts.parquet"))
    assert len(acc) == n_accounts and acc["account_id"].is_unique
    assert {"score_behaviour", "flagged_behaviour", "score_rules", "flagged_rules", "score_combined",
            "flagged_combined"} <= set(acc.columns)
    assert (acc["flagged_combined"] == (acc["flagged_behaviour"] | acc["flagged_rules"])).all()
    dec = pd.read_parquet(run_dir / "decisions.parquet")
    n_orders = len(pd.read_parquet(micro / "orders.parquet"))
    n_inter = len(pd.read_parquet(micro / "interactions.parquet"))
    assert (dec["entity_type"] == "order").sum() == n_orders  # no row dropped
    assert (dec["entity_type"] == "interaction").sum() == n_inter
    assert set(dec["decision"]) <= {"pass", "verify", "block"}
    assert (dec.loc[dec["decision"] != "pass", "reasons"] != "").all()
    assert (run_dir / "features" / "account.parquet").is_file()
    assert (run_dir / "rules" / "hits.parquet").is_file()
    assert any("network layer skipped" in n for n in man["notes"])  # no graph stage in this run


def test_evaluate_command(run_dir):
    res = CliRunner().invoke(main, ["evaluate", str(run_dir), "--format", "csv"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(__import__("io").StringIO(res.output))
    assert list(t.columns[:4]) == ["typology", "n_labelled", "recall_behaviour", "recall_rules"]
    assert "honest_shared_device" in set(t["typology"]) and "all_fraud" in set(t["typology"])
    row = t.set_index("typology").loc["all_fraud"]
    assert 0 < row["recall_combined"] <= 1 and row["n_labelled"] > 0


def test_rules_only_run_matches_the_behaviour_run_rules(micro, run_dir, tmp_path):
    from fraudkit.pipeline import score_dataset

    score_dataset(micro, tmp_path / "a", stages=(), seed=0)
    a = pd.read_parquet(tmp_path / "a" / "accounts.parquet")
    b = pd.read_parquet(run_dir / "accounts.parquet")
    pd.testing.assert_series_equal(a["score_rules"], b["score_rules"])
    acc = a
    assert list(acc.columns) == ["account_id", "score_rules", "flagged_rules", "score_combined", "flagged_combined"]


def test_rules_check_and_backtest_commands(micro):
    r = CliRunner().invoke(main, ["rules", "check", "fraudkit/rulesets/default.yaml", "--data", str(micro)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith("ok") and "checked against the features" in r.output
    r = CliRunner().invoke(main, ["rules", "backtest", "fraudkit/rulesets/default.yaml", str(micro),
                                  "--against", "fraudkit/rulesets/default.yaml"])
    assert r.exit_code == 0, r.output
    assert "## account rules" in r.output and "| rule_id | status |" in r.output
    assert "gained 0 (0 positive), lost 0 (0 positive)" in r.output


def test_unknown_stage_and_failed_run_keeps_nothing(micro, tmp_path):
    from fraudkit.pipeline import score_dataset

    with pytest.raises(FraudkitError, match="unknown stage"):
        score_dataset(micro, tmp_path / "x", stages=("magic",))
    assert not (tmp_path / "x").exists()
