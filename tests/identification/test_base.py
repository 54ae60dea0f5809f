"""The scoring contract, checked on every detector (like scikit-learn's ``check_estimator``).

Each case builds a detector and a tiny seeded fixture in which the riskiest entity is planted, and
pins one exact seeded result. Every check runs on every case: clone and repr, ``fit`` returns self,
aligned fitted attributes, ``labels_ == decision_scores_ > threshold_``, the planted entity scores
highest, inputs are not mutated, the same seed gives the same scores, and use before ``fit`` raises.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn.exceptions
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted as sk_check_is_fitted

from fraudkit.identification.base import BaseScorer, NotFittedError
from fraudkit.identification.graph.association import AssociationNetwork
from fraudkit.identification.graph.communities import CaptureScorer, CommunityScreener, Partition
from fraudkit.identification.graph.consolidation import ConsolidationScorer
from fraudkit.identification.graph.dense import DenseSubgraphDetector
from fraudkit.identification.graph.propagation import LabelPropagation, PersonalizedPageRank
from fraudkit.identification.group.clusters import CoActionMiner, DeviceClusterer
from fraudkit.identification.models import BoostingScorer, LogisticScorer
from fraudkit.identification.rules import RuleScorer

T0 = pd.Timestamp("2024-06-01")


@dataclass
class Case:
    """A detector, its fit arguments, the planted riskiest entity and a pinned result."""

    name: str
    estimator: BaseScorer
    args: tuple
    kwargs: dict = field(default_factory=dict)
    risky: object = None
    pinned: dict = field(default_factory=dict)


# --- fixtures, one per detector -----------------------------------------------------------------------


def _rules():
    spec = {"rules": [{"id": "fast", "condition": "n_likes_1h > 100", "score": 60, "action": "flag"},
                      {"id": "emu", "condition": "is_emulator", "score": 50, "action": "verify"}],
            "thresholds": {"verify": 50, "block": 100}}
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"account_id": [f"u{i}" for i in range(8)],
                          "n_likes_1h": rng.integers(0, 200, 8), "is_emulator": rng.random(8) < 0.3})
    frame.loc[3, ["n_likes_1h", "is_emulator"]] = [900, True]
    return Case("rules", RuleScorer(spec), (frame,), risky="u3",
                pinned={"scores": [60.0, 60.0, 60.0, 110.0, 0.0, 0.0, 0.0, 50.0], "threshold": np.nextafter(50, 0)})


def _behaviour(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"account_id": [f"a{i}" for i in range(n)], "speed": rng.normal(size=n),
                      "noise": rng.normal(size=n)})
    y = (X["speed"] + 0.05 * X["noise"] > 1).astype(int).to_numpy()
    X.loc[7, "speed"], y[7] = 6.0, 1
    return X, y


def _logistic():
    X, y = _behaviour()
    return Case("logistic", LogisticScorer(seed=0), (X, y), risky="a7",
                pinned={"threshold": 0.751341, "n_flagged": 65})


def _boosting():
    X, y = _behaviour()
    return Case("boosting", BoostingScorer(seed=0, max_iter=30), (X, y), risky="a7",
                pinned={"threshold": 0.544845, "n_flagged": 66})


def _devices():
    rng = np.random.default_rng(0)
    n = 12
    dev = pd.DataFrame({"device_id": [f"d{i}" for i in range(n)], "model": "X", "os": "android",
                        "os_version": "12", "screen": "1080x2400", "app_version": "8.1", "is_emulator": False,
                        "is_rooted": False, "fingerprint": ["farm"] * 4 + [f"f{i}" for i in range(4, n)]})
    farm = pd.DataFrame({"device_id": [f"d{i % 4}" for i in range(16)], "account_id": [f"x{i}" for i in range(16)],
                         "ts": T0 + pd.to_timedelta(3 * 3600 + rng.integers(0, 600, 16), unit="s"),
                         "ip": "10.0.0.1", "action": "like"})
    honest = pd.DataFrame({"device_id": [f"d{i}" for i in range(4, n)], "account_id": [f"h{i}" for i in range(4, n)],
                           "ts": T0 + pd.to_timedelta(rng.integers(0, 86400, n - 4), unit="s"),
                           "ip": [f"172.16.{i}.1" for i in range(4, n)], "action": "view"})
    return Case("device_cluster", DeviceClusterer(), (dev, pd.concat([farm, honest], ignore_index=True)),
                risky="d0", pinned={"scores": [0.8647] * 4 + [0.0] * 8})


def _coaction():
    rng = np.random.default_rng(0)
    crowd = pd.DataFrame({"account_id": [f"c{a}" for a in range(6) for _ in range(4)],
                          "target_id": [f"n{t}" for _ in range(6) for t in range(4)],
                          "ts": T0 + pd.to_timedelta(rng.integers(0, 3600, 24), unit="s")})
    crowd = crowd[~((crowd["account_id"] != "c0") & (crowd["target_id"] == "n3"))]
    honest = pd.DataFrame({"account_id": [f"h{i}" for i in range(40) for _ in range(3)],
                           "target_id": [f"m{t}" for t in rng.integers(0, 60, 120)],
                           "ts": T0 + pd.to_timedelta(rng.integers(0, 7 * 86400, 120), unit="s")})
    return Case("coaction", CoActionMiner(seed=0), (pd.concat([crowd, honest], ignore_index=True),), risky="c0",
                pinned={"n_flagged": 6, "top": 0.858237})


def _dense():
    rng = np.random.default_rng(0)
    block = [(f"w{i}", f"n{j}") for i in range(8) for j in range(5)]
    back = [(f"h{i}", f"p{t}") for i in range(60) for t in rng.choice(80, 6, replace=False)]
    camo = [(f"w{i}", f"p{t}") for i in range(8) for t in rng.choice(5, 2, replace=False)]
    edges = pd.DataFrame(block + back + camo, columns=["account_id", "target_id"])
    return Case("dense_subgraph", DenseSubgraphDetector(), (edges,), risky="w0",
                pinned={"n_flagged": 8, "top": 0.532156})


def _dense_matrix():
    a = np.zeros((30, 20))
    a[:5, :4] = 1
    rng = np.random.default_rng(1)
    a[rng.integers(5, 30, 40), rng.integers(0, 20, 40)] = 1
    return Case("dense_subgraph_density", DenseSubgraphDetector(score="density", max_blocks=1),
                (sp.csr_matrix(a),), risky=0, pinned={"n_flagged": 5, "top": 0.895424})


def _association_tables():
    rng = np.random.default_rng(0)
    acc = pd.DataFrame({"account_id": [f"a{i}" for i in range(30)],
                        "registered_at": [T0 - pd.Timedelta(days=2)] * 8 + [T0 - pd.Timedelta(days=400)] * 22,
                        "phone": [f"p{i}" for i in range(30)]})
    dev = ["farm"] * 8 + ["home"] * 3 + [f"d{i}" for i in range(11, 30)]
    logins = pd.DataFrame({"account_id": acc["account_id"], "device_id": dev,
                           "ip": [f"10.0.{i}.1" for i in range(30)],
                           "ts": [T0 + pd.Timedelta(hours=3, minutes=int(m)) for m in rng.integers(0, 30, 30)]})
    logins.loc[8:10, "ts"] = [T0 + pd.Timedelta(hours=h) for h in (9, 14, 20)]
    devices = pd.DataFrame({"device_id": sorted(set(dev)), "is_emulator": [d == "farm" for d in sorted(set(dev))],
                            "is_rooted": [d == "farm" for d in sorted(set(dev))]})
    claims = pd.DataFrame({"account_id": [f"a{i}" for i in range(8) for _ in range(3)], "device_id": "farm",
                           "ip": "10.9.9.9", "ts": T0 + pd.Timedelta(hours=4), "promotion_id": "p1"})
    return {"accounts": acc, "logins": logins, "devices": devices, "coupon_claims": claims}


def _association():
    return Case("association", AssociationNetwork(seed=0, n_estimators=20), (_association_tables(),),
                risky=0, pinned={"scores": [0.6764, 0.3951]})


def _screen():
    prof = pd.DataFrame({"community": [0, 1, 2], "size": [12, 12, 40], "density": [0.9, 0.1, 0.2],
                         "repeat_tie_share": [1, 0, 0.1], "new_account_share": [1.0, 0.0, 0.1],
                         "device_sharing": [1.0, 0.0, 0.0], "address_sharing": [1.0, 0.0, 0.2],
                         "time_concentration": [0.8, 0.2, 0.3], "discounted_share": [1.0, 0.5, 0.5],
                         "known_bad_share": [0.0, 0.0, 0.0]})
    return Case("community_screening", CommunityScreener(), (prof,), risky=0,
                pinned={"scores": [0.9256, 0.1062, 0.2182]})


def _graph():
    rng = np.random.default_rng(0)
    n = 40
    i, j = rng.integers(0, n, 80), rng.integers(0, n, 80)
    ring = np.arange(5)
    i, j = np.r_[i, ring, ring], np.r_[j, (ring + 1) % 5, (ring + 2) % 5]
    return sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))


def _label_propagation():
    return Case("label_propagation", LabelPropagation(), (_graph(), [0, 1, 2]), {"negative_seeds": [39]}, risky=1,
                pinned={"n_flagged": 3, "top": 0.317244})


def _ppr():
    return Case("personalized_pagerank", PersonalizedPageRank(), (_graph(), [0]), risky=0,
                pinned={"n_flagged": 14, "top": 0.206717})


def _capture():
    p = Partition(np.array(["a", "b", "c", "d", "x", "y", "z"]), np.array([0, 0, 0, 0, 1, 1, 1]), "x",
                  n_communities=2)
    ev = pd.DataFrame({"account_id": list("abc") * 2 + ["x", "y"] * 50 + ["d"],
                       "target": [1, 1, 1, 2, 2, 2] + list(range(3, 103)) + [1]})
    return Case("capture", CaptureScorer(), (p, ev), risky="a",
                pinned={"scores": [0.75, 0.75, 0.75, 0.375, 0.0, 0.0, 0.0]})


def _consolidation():
    o = pd.DataFrame({"account_id": list("abcdef"), "product_id": 1, "address": ["hub"] * 6,
                      "ts": [T0 + pd.Timedelta(hours=h) for h in (0, 5, 11, 17, 23, 29)],
                      "received_at": [T0 + pd.Timedelta(days=4, minutes=m) for m in (0, 20, 40, 60, 80, 100)]})
    bg = pd.DataFrame({"account_id": [f"z{i}" for i in range(200)], "product_id": 2,
                       "address": [f"home{i % 50}" for i in range(200)], "ts": T0,
                       "received_at": [T0 + pd.Timedelta(hours=12 + i % 96) for i in range(200)]})
    return Case("consolidation", ConsolidationScorer(), (pd.concat([o, bg], ignore_index=True),), risky="b",
                pinned={"n_flagged": 6, "top": 0.632994})


CASES = [_rules, _logistic, _boosting, _devices, _coaction, _dense, _dense_matrix, _association, _screen,
         _label_propagation, _ppr, _capture, _consolidation]


@pytest.fixture(params=CASES, ids=lambda f: f.__name__.lstrip("_"))
def case(request):
    return request.param()


# --- the checks ------------------------------------------------------------------------------------------


def test_clone_repr_and_params(case):
    est = case.estimator
    assert isinstance(est, BaseScorer)
    twin = clone(est)
    assert twin is not est and type(twin) is type(est)
    assert repr(twin) == repr(est) and repr(est).startswith(type(est).__name__ + "(")
    params = est.get_params()
    assert set(params) >= {"contamination", "threshold"}
    assert {k: repr(v) for k, v in twin.get_params().items()} == {k: repr(v) for k, v in params.items()}
    assert twin.set_params(threshold=0.123).threshold == 0.123 and est.get_params()["threshold"] == params["threshold"]


def test_fit_sets_the_contract(case):
    est = clone(case.estimator)
    assert est.fit(*case.args, **case.kwargs) is est
    n = len(est.entity_ids_)
    assert n > 0
    for attr in ("decision_scores_", "labels_", "reasons_"):
        assert len(getattr(est, attr)) == n, attr
    assert est.decision_scores_.dtype == float and np.isfinite(est.decision_scores_).all()
    assert isinstance(est.threshold_, float)
    assert np.array_equal(est.labels_, (est.decision_scores_ > est.threshold_).astype(int))
    assert est.reasons_.dtype == object and all(isinstance(r, str) for r in est.reasons_)
    if est.labels_.any() and not isinstance(est, (LogisticScorer, BoostingScorer)):
        assert all(est.reasons_[est.labels_ == 1] != ""), "a flagged entity needs a reason"
    frame = est.score_frame()
    assert len(frame) == n and frame["flagged"].sum() == est.labels_.sum()


def test_the_planted_entity_scores_highest(case):
    est = clone(case.estimator).fit(*case.args, **case.kwargs)
    at = list(est.entity_ids_).index(case.risky)
    assert est.labels_[at] == 1
    assert est.decision_scores_[at] == est.decision_scores_.max()
    assert est.decision_scores_[at] > np.median(est.decision_scores_)


def test_inputs_are_not_mutated(case):
    args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
    clone(case.estimator).fit(*case.args, **case.kwargs)
    for before, after in zip(args + tuple(kwargs.values()), case.args + tuple(case.kwargs.values())):
        _assert_same(before, after)


def test_same_seed_same_scores(case):
    a = clone(case.estimator).fit(*case.args, **case.kwargs)
    b = clone(case.estimator).fit(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
    assert np.array_equal(a.decision_scores_, b.decision_scores_)
    assert np.array_equal(a.entity_ids_, b.entity_ids_) and a.threshold_ == b.threshold_
    assert a.reasons_.tolist() == b.reasons_.tolist()


def test_before_fit_raises_not_fitted(case):
    est = clone(case.estimator)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.score_frame()
    with pytest.raises(sklearn.exceptions.NotFittedError):
        sk_check_is_fitted(est)
    sk_check_is_fitted(est.fit(*case.args, **case.kwargs))


def test_pinned_seeded_result(case):
    est = clone(case.estimator).fit(*case.args, **case.kwargs)
    pin = case.pinned
    assert pin, "every detector pins a seeded result"
    if "scores" in pin:
        assert np.round(est.decision_scores_, 4).tolist() == pytest.approx(pin["scores"], abs=1e-4)
    if "threshold" in pin:
        assert est.threshold_ == pytest.approx(pin["threshold"], abs=1e-6)
    if "n_flagged" in pin:
        assert int(est.labels_.sum()) == pin["n_flagged"]
    if "top" in pin:
        assert est.decision_scores_.max() == pytest.approx(pin["top"], abs=1e-6)


def test_contamination_takes_precedence_over_threshold(case):
    est = clone(case.estimator).set_params(contamination=0.2, threshold=0.0).fit(*case.args, **case.kwargs)
    assert est.threshold_ == pytest.approx(np.quantile(est.decision_scores_, 0.8))


# --- exact equivalence with the one-call functions -------------------------------------------------------


def test_functions_wrap_their_classes():
    from fraudkit.identification.graph.communities import capture_scores, captured_targets
    from fraudkit.identification.graph.dense import block_scores, fraudar, fraudar_frame
    from fraudkit.identification.graph.propagation import label_propagation, personalized_pagerank

    adj = _graph()
    assert np.array_equal(label_propagation(adj, [0]), LabelPropagation().fit(adj, [0]).decision_scores_)
    assert np.array_equal(personalized_pagerank(adj, [0]), PersonalizedPageRank().fit(adj, [0]).decision_scores_)
    m = _dense_matrix().args[0]
    blocks = fraudar(m, max_blocks=1)
    est = DenseSubgraphDetector(score="density", max_blocks=1).fit(m)
    assert np.array_equal(block_scores(blocks, m.shape[0]), est.decision_scores_)
    edges = _dense().args[0]
    _, members = fraudar_frame(edges)
    pd.testing.assert_frame_equal(members, DenseSubgraphDetector().fit(edges).members_)
    p, ev = _capture().args
    table = capture_scores(p, ev, captured_targets(p, ev))
    assert np.array_equal(table["score"].to_numpy(), CaptureScorer().fit(p, ev).decision_scores_)


def test_rule_scorer_levels_and_keys():
    case = _rules()
    frame = case.args[0]
    verify = RuleScorer(case.estimator.ruleset).fit(frame)
    block = RuleScorer(case.estimator.ruleset, level="block").fit(frame)
    assert verify.labels_.tolist() == [1, 1, 1, 1, 0, 0, 0, 1]
    assert block.labels_.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert verify.actions_.tolist()[3] == "block" and verify.actions_.tolist()[0] == "verify"
    by_index = RuleScorer(case.estimator.ruleset, key=None, entity=None).fit(frame.drop(columns="account_id"))
    assert by_index.entity_ids_.tolist() == list(range(8))
    with pytest.raises(ValueError, match="level"):
        RuleScorer(case.estimator.ruleset, level="maybe").fit(frame)


def test_coaction_scores_match_account_scores():
    case = _coaction()
    est = clone(case.estimator).fit(*case.args)
    a = est.account_scores()
    got = pd.Series(est.decision_scores_, index=est.entity_ids_).reindex(a["account_id"]).to_numpy()
    assert np.array_equal(got, a["score"].to_numpy(float))
    assert set(est.entity_ids_) == set(case.args[0]["account_id"])


# --- private helpers --------------------------------------------------------------------------------------


def _assert_same(before, after):
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(before, after)
    elif isinstance(before, dict):
        assert before.keys() == after.keys()
        for k in before:
            _assert_same(before[k], after[k])
    elif sp.issparse(before):
        assert before.shape == after.shape and (before != after).nnz == 0
        assert np.array_equal(before.data, after.data) and np.array_equal(before.indices, after.indices)
    elif isinstance(before, Partition):
        assert np.array_equal(before.nodes, after.nodes) and np.array_equal(before.membership, after.membership)
    else:
        assert np.array_equal(np.asarray(before), np.asarray(after))
