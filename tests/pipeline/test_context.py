"""Tests for fraudkit.pipeline.context.RunContext: frozen, validated, read by the stages by name."""

from dataclasses import FrozenInstanceError, replace

import pytest

from fraudkit.errors import FraudkitError
from fraudkit.pipeline.context import MODES, RunContext


def test_defaults_and_frozen():
    ctx = RunContext()
    assert (ctx.seed, ctx.mode, ctx.rules, ctx.seed_pool, ctx.train, ctx.target_precision) == \
        (0, "score", "default", None, None, 0.9)
    assert MODES == ("score", "train")
    with pytest.raises(FrozenInstanceError):
        ctx.seed = 1
    with pytest.raises(TypeError):  # the mappings are read-only views
        ctx.graph["lp_alpha"] = 0.5


def test_mappings_are_copied_so_the_caller_dict_cannot_change_the_context():
    params = {"lp_alpha": 0.5}
    ctx = RunContext(graph=params)
    params["lp_alpha"] = 0.1
    assert ctx.graph["lp_alpha"] == 0.5
    moved = replace(ctx, features={"account": None})
    assert dict(ctx.features) == {} and set(moved.features) == {"account"} and moved.graph == ctx.graph


def test_parameters_merge_and_refuse_unknown_keys():
    ctx = RunContext(group={"dense_threshold": 0.7})
    assert ctx.parameters("group", {"dense_threshold": 0.5, "candidate_min_score": 0.7}) == \
        {"dense_threshold": 0.7, "candidate_min_score": 0.7}
    with pytest.raises(FraudkitError, match="unknown group stage parameter.*dense_treshold"):
        RunContext(group={"dense_treshold": 0.7}).parameters("group", {"dense_threshold": 0.5})


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "fit"}, "mode must be one of score, train"),
    ({"mode": "train", "train": object()}, "mode='train' scores the training dataset itself"),
    ({"target_precision": 0.0}, r"target_precision must be in \(0, 1\]"),
    ({"target_precision": "high"}, r"target_precision must be in \(0, 1\]"),
    ({"graph": [("lp_alpha", 0.5)]}, "RunContext.graph must be a dict"),
])
def test_bad_values_are_refused(kwargs, match):
    with pytest.raises(FraudkitError, match=match):
        RunContext(**kwargs)


def test_describe_records_what_the_caller_set():
    assert RunContext().describe() == {}
    ctx = RunContext(seed=5, graph={"lp_alpha": 0.9}, run_id="w1", now="2024-04-01", features={"account": None})
    assert ctx.describe() == {"graph": {"lp_alpha": 0.9}, "run_id": "w1", "now": "2024-04-01"}
