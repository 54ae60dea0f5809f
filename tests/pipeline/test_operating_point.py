"""Tests for fraudkit.pipeline.operating_point: thresholds set on training labels, applied to a run's scores."""

import numpy as np
import pandas as pd

from fraudkit.identification.base import score_frame
from fraudkit.identification.rules import default_ruleset
from fraudkit.pipeline.operating_point import (
    OperatingPoint,
    accounts_table,
    fit_operating_point,
    unsupervised_operating_point,
)

IDS = ["a", "b", "c", "d"]


def _scores(stage, method, ids, score, flagged):
    return score_frame(ids, score, flagged, entity_type="account", stage=stage, method=method)


def _run_scores():
    return pd.concat([
        _scores("group", "dense_subgraph", IDS, [0.9, 0.4, 0.0, 0.0], [True, False, False, False]),
        _scores("group", "coaction", IDS, [0.0, 0.0, 0.7, 0.6], [False, False, True, True]),
        _scores("group", "group", IDS, [0.9, 0.4, 0.7, 0.6], [True, False, True, True]),
        _scores("behaviour", "logistic", IDS, [0.1, 0.2, 0.3, 0.99], [False, False, False, True]),
        _scores("behaviour", "behaviour", IDS, [0.1, 0.2, 0.3, 0.99], [False, False, False, True]),
    ], ignore_index=True)


def test_operating_point_training_only_tightens_each_method():
    """With a training set a method flags where its own flag AND its training threshold hold: a threshold
    fit below a method's own (demo-small seed 1: group fell to precision 0.43) never loosens it; methods
    the training pass lacks (stage-1 models) keep their own flag; the stage is the union of its methods."""
    scores = _run_scores()
    op = OperatingPoint(True, {("group", "dense_subgraph"): float("inf"), ("group", "coaction"): 0.65})
    acc = accounts_table(IDS, scores, op)
    assert acc["flagged_group"].tolist() == [False, False, True, False]  # dense never; coaction > 0.65 only
    assert acc["flagged_behaviour"].tolist() == [False, False, False, True]  # own flag kept
    assert acc["score_group"].tolist() == [0.9, 0.4, 0.7, 0.6]  # the headline method orders
    assert (acc["flagged_combined"] == acc["flagged_group"] | acc["flagged_behaviour"]).all()
    # without training: each stage's own (headline) flag
    acc = accounts_table(IDS, scores, unsupervised_operating_point(default_ruleset()))
    assert acc["flagged_group"].tolist() == [True, False, True, True]
    assert acc["score_combined"].tolist() == [1.0, 0.5, 0.75, 1.0]


def test_accounts_table_is_independent_of_row_order():
    scores = _run_scores()
    op = OperatingPoint(True, {("group", "coaction"): 0.65})
    a = accounts_table(IDS, scores, op)
    b = accounts_table(IDS, scores.sample(frac=1.0, random_state=3), op)
    pd.testing.assert_frame_equal(a, b)


def test_accounts_table_from_the_score_parts_is_that_of_their_concatenation():
    """The run passes its score parts (each stage's, the rules'), never one concatenated copy: the same table,
    also when one part's ids are integers and another's text, and with rows of other entities among them."""
    op = OperatingPoint(True, {("group", "coaction"): 0.65})
    ids = [1, 2, 3, 4]
    group = pd.concat([_scores("group", "coaction", ids, [0.0, 0.0, 0.7, 0.6], [False, False, True, True]),
                       _scores("group", "group", ids, [0.9, 0.4, 0.7, 0.6], [True, False, True, True])],
                      ignore_index=True)
    behaviour = _scores("behaviour", "behaviour", ["1", "2", "3", "4"], [0.1, 0.2, 0.3, 0.99],
                        [False, False, False, True])
    rules = pd.concat([score_frame(["d1"], [5.0], [True], entity_type="device", stage="rules", method="RuleSet"),
                       score_frame(["4"], [3.0], [True], entity_type="account", stage="rules", method="RuleSet")],
                      ignore_index=True)
    parts = [group, behaviour, rules]
    whole = accounts_table(["1", "2", "3", "4"], pd.concat(parts, ignore_index=True), op)
    pd.testing.assert_frame_equal(accounts_table(["1", "2", "3", "4"], parts, op), whole)
    assert whole["flagged_group"].tolist() == [False, False, True, False]
    assert whole["score_rules"].tolist()[3] == 3.0 and np.isnan(whole["score_rules"].tolist()[0])


def test_fit_operating_point_skips_headline_methods_and_records_thresholds():
    """Per method, the lowest threshold reaching the precision on the training labels; a method that cannot
    reach it gets inf (never flags) and null in the manifest; headline methods are unions, not thresholded."""
    train = pd.concat([
        _scores("group", "coaction", IDS, [0.9, 0.8, 0.7, 0.1], [True, True, True, False]),
        _scores("group", "dense_subgraph", IDS, [0.1, 0.2, 0.9, 0.8], [False, False, True, True]),
        _scores("group", "group", IDS, [0.9, 0.8, 0.9, 0.8], [True, True, True, True]),
        _scores("rules", "RuleSet", IDS, [60, 0, 0, 0], [True, False, False, False]),
    ], ignore_index=True)
    labels = pd.DataFrame({"entity_type": "account", "entity_id": ["a", "b"], "typology": "device_farm"})
    op = fit_operating_point(train, labels, precision=1.0, source="training dataset t")
    assert op.trained and set(op.thresholds) == {("group", "coaction"), ("group", "dense_subgraph"),
                                                 ("rules", "RuleSet")}
    # midway between the last flagged score and the next one down
    assert op.thresholds[("group", "coaction")] == 0.75 and op.thresholds[("rules", "RuleSet")] == 30.0
    assert np.isinf(op.thresholds[("group", "dense_subgraph")])
    assert op.manifest["thresholds"] == {"group/coaction": 0.75, "group/dense_subgraph": None, "rules/RuleSet": 30.0}
    assert op.manifest["source"] == "training dataset t" and op.manifest["target_precision"] == 1.0


def test_unsupervised_operating_point_names_the_block_level():
    op = unsupervised_operating_point(default_ruleset())
    assert not op.trained and op.thresholds == {}
    assert set(op.manifest["stages"]) == {"behaviour", "group", "graph", "rules"}
    assert "block" in op.manifest["stages"]["rules"]


def test_accounts_table_reads_a_part_whose_ids_are_all_missing():
    """A score part of account rows without an id (none matches an account) leaves the table as the other parts
    make it, and rows of missing ids in a part with ids are skipped too."""
    op = OperatingPoint(True, {("group", "coaction"): 0.5})
    ids = ["1", "2"]
    good = _scores("group", "coaction", ids, [0.9, 0.1], [True, False])
    missing = _scores("group", "coaction", [None, None], [0.99, 0.99], [True, True])
    mixed = _scores("group", "coaction", ["2", None], [0.1, 0.99], [False, True])
    want = accounts_table(ids, good, op)
    pd.testing.assert_frame_equal(accounts_table(ids, [good, missing], op), want)
    pd.testing.assert_frame_equal(accounts_table(ids, [good, mixed], op), want)
    assert want["flagged_group"].tolist() == [True, False]
