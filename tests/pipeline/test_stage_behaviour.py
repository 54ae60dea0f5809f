"""Tests for fraudkit.pipeline.stages.behaviour (stage-1 wiring)."""

import numpy as np
import pandas as pd
import pytest
from _toy import toy_tables

from fraudkit.errors import FraudkitError
from fraudkit.identification.base import SCORE_COLUMNS
from fraudkit.identification.models import labels_for
from fraudkit.pipeline.context import RunContext
from fraudkit.pipeline.stages import StageOutput
from fraudkit.pipeline.stages.behaviour import combine_scores, run, training_data

SIZE = dict(n_honest=300, n_farm=48, n_scalper=24)  # enough validation rows for a stable threshold


@pytest.fixture(scope="module")
def scored():
    test = toy_tables(0, **SIZE)
    test.pop("labels")
    return test, run(test, context=RunContext(seed=0, train=toy_tables(1, **SIZE)))


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


def test_artifacts_features_and_notes(scored):
    test, out = scored
    for name in ("script_pairs", "rule_hits", "logistic_coefficients", "order_rules"):
        assert name in out.artifacts and isinstance(out.artifacts[name], pd.DataFrame)
    # the feature tables are returned once, as features (the pipeline writes RUN/features/), not as artifacts
    assert set(out.features) == {"account", "device", "ip", "ip24", "phone", "address", "order"}
    assert not any(k.startswith("features_") for k in out.artifacts)
    assert out.features["account"].columns[0] == "account_id" and len(out.features["account"]) == len(test["accounts"])
    assert "n_sessions" in out.features["account"]  # the sequence features joined
    assert any(n.startswith("logistic: trained on") for n in out.notes)


def test_rules_only_without_training_and_missing_devices():
    t = toy_tables(0)
    t.pop("labels")
    t.pop("devices")
    out = run(t)
    assert set(out.scores.method) == {"rules", "behaviour"}
    assert any("no devices table" in n for n in out.notes)
    assert any("models skipped" in n for n in out.notes)
    acc = out.features["account"]
    assert acc.max_env_contradiction.isna().all() and len(acc) == len(t["accounts"])


def test_rules_off_and_no_train_gives_empty_scores():
    t = toy_tables(0)
    t.pop("labels")
    out = run(t, context=RunContext(rules=False))
    assert out.scores.empty and list(out.scores.columns) == list(SCORE_COLUMNS)
    assert "account" in out.features


def test_the_context_is_read_not_written():
    """The stage returns its features; the frozen context it was given is unchanged (no features put in it)."""
    t = toy_tables(0)
    t.pop("labels")
    ctx = RunContext(seed=0, rules=False)
    out = run(t, context=ctx)
    assert dict(ctx.features) == {} and ctx == RunContext(seed=0, rules=False)
    assert {"account", "device", "ip", "order"} <= set(out.features)
    with pytest.raises(TypeError):
        ctx.features["account"] = out.features["account"]


def test_bad_context_and_parameters_are_refused():
    t = toy_tables(0)
    t.pop("labels")
    with pytest.raises(FraudkitError, match="context must be a RunContext"):
        run(t, context={"rules": False})
    with pytest.raises(FraudkitError, match="unknown model 'forest'"):
        run(t, context=RunContext(rules=False, train=toy_tables(1), behaviour={"models": ("forest",)}))
    with pytest.raises(FraudkitError, match="unknown behaviour stage parameter.*max_reason.*max_reasons"):
        run(t, context=RunContext(rules=False, behaviour={"max_reason": 5}))
    with pytest.raises(FraudkitError, match="unknown feature set 'rates'.*'window_invariant', 'all'"):
        run(t, context=RunContext(rules=False, behaviour={"features": "rates"}))


def test_models_fit_window_invariant_features_by_default(scored):
    from fraudkit.capability.features import WINDOW_COUNTS

    _, out = scored
    used = set(out.artifacts["logistic_coefficients"].feature)
    assert not used & set(WINDOW_COUNTS)
    assert {"actions_per_day", "sessions_per_day", "active_day_share"} <= used
    assert {"n_actions", "n_sessions"} <= set(out.features["account"].columns)  # still there for rules
    test = toy_tables(0, **SIZE)
    test.pop("labels")
    every = run(test, context=RunContext(seed=0, rules=False, train=toy_tables(1, **SIZE),
                                         behaviour={"features": "all", "models": ("logistic",)}))
    assert {"n_actions", "n_sessions"} <= set(every.artifacts["logistic_coefficients"].feature)


def test_refuses_training_on_the_scored_data():
    t = toy_tables(0)
    with pytest.raises(FraudkitError, match="being scored"):
        run(t, context=RunContext(train=t))


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
