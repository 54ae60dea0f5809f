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
    assert man["operating_point"]["source"] == "unsupervised defaults" and man["seeds"]["count"] == 0
    assert {"pandas", "numpy"} <= set(man["versions"]) and man["timings"]["total"] > 0
    acc = pd.read_parquet(run_dir / "accounts.parquet")
    n_accounts = len(pd.read_parquet(micro / "accounts.parquet"))
    assert len(acc) == n_accounts and acc["account_id"].is_unique
    assert {"score_behaviour", "flagged_behaviour", "score_rules", "flagged_rules", "score_combined",
            "flagged_combined"} <= set(acc.columns)
    assert (acc["flagged_combined"] == (acc["flagged_behaviour"] | acc["flagged_rules"])).all()
    # the rule set counts at its block level without training (verify asks, it does not identify)
    rs = pd.read_parquet(run_dir / "scores.parquet").query("stage == 'rules' and entity_type == 'account'")
    assert acc["flagged_rules"].sum() < rs["flagged"].sum()
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
    from fraudkit.pipeline.score import score_dataset

    score_dataset(micro, tmp_path / "a", stages=(), seed=0)
    a = pd.read_parquet(tmp_path / "a" / "accounts.parquet")
    b = pd.read_parquet(run_dir / "accounts.parquet")
    pd.testing.assert_series_equal(a["score_rules"], b["score_rules"])
    acc = a
    assert list(acc.columns) == ["account_id", "score_rules", "flagged_rules", "score_combined", "flagged_combined"]


def test_rules_check_and_backtest_commands(micro):
    r = CliRunner().invoke(main, ["rules", "check", "fraudkit/identification/rulesets/default.yaml", "--data", str(micro)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith("ok") and "checked against the features" in r.output
    r = CliRunner().invoke(main, ["rules", "backtest", "fraudkit/identification/rulesets/default.yaml", str(micro),
                                  "--against", "fraudkit/identification/rulesets/default.yaml"])
    assert r.exit_code == 0, r.output
    assert "## account rules" in r.output and "| rule_id | status |" in r.output
    assert "gained 0 (0 positive), lost 0 (0 positive)" in r.output


def test_unknown_stage_and_failed_run_keeps_nothing(micro, tmp_path):
    from fraudkit.pipeline.score import score_dataset

    with pytest.raises(FraudkitError, match="unknown stage"):
        score_dataset(micro, tmp_path / "x", stages=("magic",))
    assert not (tmp_path / "x").exists()


def test_seeds_and_context_reach_the_graph_stage(micro, tmp_path, monkeypatch):
    """score_dataset(seeds=, context=) hands both to every stage and records the seeds in the manifest."""
    import fraudkit.pipeline.stages.graph as graph_stage
    from fraudkit.pipeline.score import score_dataset
    from fraudkit.identification.graph.propagation import SeedPool
    from fraudkit.pipeline.stages import StageOutput

    seen = {}

    def fake_run(ds, *, run_dir=None, seed=0, context=None):
        seen.update(context)
        return StageOutput("graph", notes=["fake graph stage"])

    monkeypatch.setattr(graph_stage, "run", fake_run)
    pool = SeedPool.empty().update(pd.DataFrame({"entity_type": ["account", "account", "device"],
                                                 "entity_id": ["1", "2", "d9"], "source": ["analyst", "rules", "x"],
                                                 "score": [1.0, 0.9, 0.8]}), run_id="r0")
    score_dataset(micro, tmp_path / "r", stages=("graph",), seeds=pool, context={"graph": {"lp_alpha": 0.5},
                                                                                 "run_id": "w3"})
    assert seen["seeds"] is pool and seen["graph"] == {"lp_alpha": 0.5} and seen["run_id"] == "w3"
    assert seen["target_precision"] == 0.9 and "rules" in seen and "lists" in seen
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert man["seeds"] == {"count": 2, "n_entities": 3, "source": "SeedPool",
                            "by_entity_type": {"account": 2, "device": 1},
                            "by_source": {"analyst": 1, "rules": 1, "x": 1}}
    assert man["parameters"]["context"] == {"graph": {"lp_alpha": 0.5}, "run_id": "w3"}
    assert man["stage_notes"] == {"graph": ["fake graph stage"]}
    assert sorted(pd.read_parquet(tmp_path / "r" / "seeds.parquet")["entity_id"]) == ["1", "2", "d9"]
    # a plain seed table works too; pipeline-owned keys cannot be smuggled in through context
    score_dataset(micro, tmp_path / "t", stages=("graph",), seeds=pd.DataFrame({"account_id": [5, 6]}))
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["seeds"]["count"] == 2
    with pytest.raises(FraudkitError, match="context key.*seeds.*set by the pipeline"):
        score_dataset(micro, tmp_path / "u", stages=(), context={"seeds": pool})
    with pytest.raises(FraudkitError, match="seed table needs an entity_id"):
        score_dataset(micro, tmp_path / "v", stages=(), seeds=pd.DataFrame({"x": [1]}))


def _scores(stage, method, ids, score, flagged):
    from fraudkit.identification.base import score_frame

    return score_frame(ids, score, flagged, entity_type="account", stage=stage, method=method)


def test_operating_point_training_only_tightens_each_method():
    """With a training set a method flags where its own flag AND its training threshold hold: a threshold
    fit below a method's own (demo-small seed 1: group fell to precision 0.43) never loosens it; methods
    the training pass lacks (stage-1 models) keep their own flag; the stage is the union of its methods."""
    from fraudkit.pipeline.score import _accounts_table

    ids = ["a", "b", "c", "d"]

    class ds:  # _accounts_table reads only the account keys
        to_pandas = staticmethod(lambda name, columns=None: pd.DataFrame({"account_id": ids}))

    scores = pd.concat([
        _scores("group", "dense_subgraph", ids, [0.9, 0.4, 0.0, 0.0], [True, False, False, False]),
        _scores("group", "coaction", ids, [0.0, 0.0, 0.7, 0.6], [False, False, True, True]),
        _scores("group", "group", ids, [0.9, 0.4, 0.7, 0.6], [True, False, True, True]),
        _scores("behaviour", "logistic", ids, [0.1, 0.2, 0.3, 0.99], [False, False, False, True]),
        _scores("behaviour", "behaviour", ids, [0.1, 0.2, 0.3, 0.99], [False, False, False, True]),
    ], ignore_index=True)
    op = {"thresholds": {("group", "dense_subgraph"): float("inf"), ("group", "coaction"): 0.65},
          "manifest": {"source": "training dataset t"}}
    acc = _accounts_table(ds, scores, op)
    assert acc["flagged_group"].tolist() == [False, False, True, False]  # dense never; coaction > 0.65 only
    assert acc["flagged_behaviour"].tolist() == [False, False, False, True]  # own flag kept
    assert acc["score_group"].tolist() == [0.9, 0.4, 0.7, 0.6]  # the headline method orders
    assert (acc["flagged_combined"] == acc["flagged_group"] | acc["flagged_behaviour"]).all()
    # without training: each stage's own (headline) flag
    acc = _accounts_table(ds, scores, {"thresholds": {}, "manifest": {"source": "unsupervised defaults"}})
    assert acc["flagged_group"].tolist() == [True, False, True, True]


def test_training_dataset_reaches_the_stages_in_both_passes(micro, tmp_path, monkeypatch):
    """With train=, the scored pass hands the training Dataset to every stage as context["train"]; the
    operating-point pass scores the training dataset itself with train_pass=True (train None), so supervised
    stage parts (the association classifier) score it out-of-fold, on the scale the scored pass produces."""
    import fraudkit.pipeline.stages.group as group_stage
    from fraudkit.pipeline.score import score_dataset
    from fraudkit.pipeline.stages import StageOutput

    seen = []

    def fake_run(ds, *, run_dir=None, seed=0, context=None):
        seen.append({"ds": ds, "train": context.get("train"), "train_pass": context.get("train_pass")})
        return StageOutput("group", notes=["fake group stage"])

    monkeypatch.setattr(group_stage, "run", fake_run)
    score_dataset(micro, tmp_path / "r", stages=("group",), train=micro)
    assert len(seen) == 2
    scored, training = seen
    assert scored["train_pass"] is False and scored["train"] is not None and scored["train"].labels is not None
    assert training["train_pass"] is True and training["train"] is None and training["ds"].labels is not None
    with pytest.raises(FraudkitError, match="context key.*train_pass.*set by the pipeline"):
        score_dataset(micro, tmp_path / "u", stages=(), context={"train_pass": True})
