"""Tests for fraudkit.pipeline.stages.behaviour (stage-1 wiring)."""

import numpy as np
import pandas as pd
import pytest

from _toy import toy_tables
from fraudkit.identification.base import SCORE_COLUMNS
from fraudkit.errors import FraudkitError
from fraudkit.identification.models import labels_for
from fraudkit.pipeline.stages import StageOutput
from fraudkit.pipeline.stages.behaviour import combine_scores, run, training_data


SIZE = dict(n_honest=300, n_farm=48, n_scalper=24)  # enough validation rows for a stable threshold


@pytest.fixture(scope="module")
def scored():
    test = toy_tables(0, **SIZE)
    test.pop("labels")
    return test, run(test, seed=0, context={"train": toy_tables(1, **SIZE)})


def test_scores_methods_and_combination(scored):
    test, out = scored
    assert isinstance(out, StageOutput) and out.stage == "behaviour"
    assert list(out.scores.columns) == list(SCORE_COLUMNS)
    assert set(out.scores.method) == {"rules", "logistic", "boosting", "behaviour"}
    wide = out.scores.pivot(index="entity_id", columns="method", values="flagged")
    assert len(wide) == len(test["accounts"])
    # behaviour flags where a model flags, or the rules reach their block level
    rules_score = out.scores[out.scores.method == "rules"].set_index("entity_id").score
    expect = wide.logistic | wide.boosting | (rules_score.reindex(wide.index) >= 1.0)  # block = 80 of 80
    assert out.scores.score.between(0, 1).all()
    assert wide.behaviour.equals(expect)
    comb = out.scores[out.scores.method == "behaviour"]
    assert ((comb.score > 0.5) == comb.flagged).all()
    assert comb[comb.flagged].reason.str.len().gt(0).all()


def test_catches_toy_attackers_not_honest(scored):
    test, out = scored
    comb = out.scores[out.scores.method == "behaviour"].set_index("entity_id")
    y, _ = labels_for(comb.index, toy_tables(0, **SIZE)["labels"])
    flagged = comb.flagged.to_numpy()
    assert flagged[y == 1].mean() >= 0.9
    assert flagged[y == 0].mean() <= 0.05


def test_artifacts_and_notes(scored):
    _, out = scored
    for name in ("features_account", "features_device", "features_order", "script_pairs", "rule_hits",
                 "logistic_coefficients", "order_rules"):
        assert name in out.artifacts and isinstance(out.artifacts[name], pd.DataFrame)
    assert out.artifacts["features_account"].columns[0] == "account_id"
    assert any(n.startswith("logistic: trained on") for n in out.notes)


def test_rules_only_without_training_and_missing_devices():
    t = toy_tables(0)
    t.pop("labels")
    t.pop("devices")
    out = run(t, seed=0, context={})
    assert set(out.scores.method) == {"rules", "behaviour"}
    assert any("no devices table" in n for n in out.notes)
    assert any("models skipped" in n for n in out.notes)
    acc = out.artifacts["features_account"]
    assert acc.max_env_contradiction.isna().all() and len(acc) == len(t["accounts"])


def test_rules_off_and_no_train_gives_empty_scores():
    t = toy_tables(0)
    t.pop("labels")
    out = run(t, seed=0, context={"rules": False})
    assert out.scores.empty and list(out.scores.columns) == list(SCORE_COLUMNS)
    assert "features_account" in out.artifacts


def test_features_handed_to_the_pipeline_context():
    t = toy_tables(0)
    t.pop("labels")
    ctx = {"features": {}, "rules": False}
    out = run(t, seed=0, context=ctx)
    assert {"account", "device", "ip", "order"} <= set(ctx["features"])
    assert "n_sessions" in ctx["features"]["account"] and not any(k.startswith("features_") for k in out.artifacts)


def test_refuses_training_on_the_scored_data():
    t = toy_tables(0)
    with pytest.raises(FraudkitError, match="being scored"):
        run(t, seed=0, context={"train": t})


def test_training_data_forms():
    X = pd.DataFrame({"account_id": [1, 2], "f": [0.0, 1.0]})
    for form in ((X, [0, 1]), {"X": X, "y": [0, 1]}):
        Xo, y = training_data(form)
        assert Xo is X and y.tolist() == [0, 1]
    with pytest.raises(FraudkitError, match="rows"):
        training_data((X, [0, 1, 1]))
    with pytest.raises(FraudkitError, match="labels"):
        training_data({"accounts": X})


def test_combine_scores_aligns_thresholds():
    s, f, r = combine_scores({"a": (np.array([0.0, 0.4, 0.9]), 0.8, np.array([False, False, True]), None),
                              "b": (np.array([10.0, 50.0, 0.0]), 40.0, np.array([False, True, False]),
                                    np.array(["", "x", ""], dtype=object))})
    assert f.tolist() == [False, True, True]
    assert r.tolist() == ["", "b: x", "a"]
    assert (s[f] > 0.5).all() and (s[~f] <= 0.5).all()
