"""Tests for fraudkit.identification.models (supervised scorers, time split)."""

import numpy as np
import pandas as pd
import pytest
from _toy import T0, toy_tables

from fraudkit.errors import MissingInputError
from fraudkit.identification.base import NotFittedError
from fraudkit.identification.models import BoostingScorer, LogisticScorer, labels_for, time_split


def _synthetic(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"account_id": np.arange(n), "speed": rng.normal(size=n), "noise": rng.normal(size=n),
                      "count": rng.poisson(3, size=n).astype(float), "channel": "app"})
    y = ((X.speed + 0.2 * rng.normal(size=n)) > 1.2).astype(int).to_numpy()
    X.loc[::17, "noise"] = np.nan
    return X, y


@pytest.mark.parametrize("cls", [LogisticScorer, BoostingScorer])
def test_fit_contract_and_seeded(cls):
    X, y = _synthetic()
    a = cls(seed=3).fit(X, y)
    b = cls(seed=3).fit(X, y)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    assert a.threshold_ == b.threshold_
    assert a.entity_ids_.tolist() == X.account_id.tolist()
    assert a.labels_.tolist() == (a.decision_scores_ > a.threshold_).astype(int).tolist()
    assert list(a.feature_names_in_) == ["speed", "noise", "count"]  # strings ignored
    assert a.validation_precision_ >= 0.9 and a.n_validation_ == 500
    np.testing.assert_allclose(a.decision_function(X), a.decision_scores_)
    assert ((0 <= a.decision_scores_) & (a.decision_scores_ <= 1)).all()
    sf = a.score_frame()
    assert len(sf) == len(X) and sf.flagged.sum() == a.labels_.sum()


def test_logistic_coefficients_readable():
    X, y = _synthetic()
    m = LogisticScorer(seed=0).fit(X, y)
    assert list(m.coef_.columns) == ["feature", "weight", "odds_ratio"]
    assert m.coef_.feature.iloc[0] == "speed" and m.coef_.weight.iloc[0] > 0
    np.testing.assert_allclose(m.coef_.odds_ratio, np.exp(m.coef_.weight))


@pytest.mark.parametrize("cls", [LogisticScorer, BoostingScorer])
def test_reasons_name_the_driver(cls):
    X, y = _synthetic()
    m = cls(seed=0, **({"max_iter": 60} if cls is BoostingScorer else {})).fit(X, y)
    top = X.iloc[np.argsort(-m.decision_scores_)[:10]]
    r = m.reasons(top, top=2)
    assert list(r.columns) == ["entity_id", "reason", "contributions"]
    assert r.entity_id.tolist() == top.account_id.tolist()
    assert all(c[0][0] == "speed" for c in r.contributions)
    assert all(len(c) <= 2 and all(v > 0 for _, v in c) for c in r.contributions)
    assert r.reason.iloc[0].startswith("speed=")


def test_boosting_scores_and_reasons_are_the_same_on_one_thread_or_all(monkeypatch):
    """Scoring runs on all cores (``score_threads=None``) a block of rows at a time: the same values as one thread
    and one block, and a scorer kept by a version without ``score_threads`` still scores."""
    import fraudkit.identification.models as models

    X, y = _synthetic()
    m = BoostingScorer(seed=0, max_iter=40, score_threads=1).fit(X, y)
    one, why = m.decision_function(X), m.reasons(X.iloc[:50])
    monkeypatch.setattr(models, "_PREDICT_BLOCK", 97)
    monkeypatch.setattr(models, "PARALLEL_ROWS", 60)  # blocks of 97 rows on score_threads, the last one on one
    for threads in (None, 2):
        m.score_threads = threads
        np.testing.assert_array_equal(m.decision_function(X), one)
        pd.testing.assert_frame_equal(m.reasons(X.iloc[:50]), why)
    del m.score_threads
    np.testing.assert_array_equal(m.decision_function(X), one)


def test_quantise_rounds_as_frexp_and_ldexp():
    """The bit-level rounding equals frexp / round half to even / ldexp on every kind of float and layout."""
    from fraudkit.identification.models import _quantise

    def frexp_ldexp(M, bits=30):
        m, e = np.frexp(M)
        with np.errstate(over="ignore"):
            return np.ldexp(np.round(m * 2.0**bits) / 2.0**bits, e)

    rng = np.random.default_rng(0)
    ties = np.ldexp(rng.integers(1 << 29, 1 << 30, 5000).astype(float) + 0.5, rng.integers(-80, 80, 5000))
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -3e-320, 1e-310, 2.2250738585072014e-308,
               1.7976931348623157e308, -1.7976931348623157e308, 1.0, -0.75]
    values = np.concatenate([rng.normal(size=20000) * 10.0 ** rng.integers(-300, 300, 20000), ties, special,
                             np.ldexp(rng.random(2000), -1060), rng.integers(-10**6, 10**6, 5000).astype(float)])
    M = values[: (len(values) // 7) * 7].reshape(-1, 7)
    for layout in (M, np.asfortranarray(M), M[::2, 1::3], M.T):
        got, want = _quantise(layout), frexp_ldexp(layout)
        assert got.shape == layout.shape and not np.shares_memory(got, layout)
        np.testing.assert_array_equal(got, want)
        assert (np.signbit(got) == np.signbit(want)).all()
        if layout.flags.c_contiguous or layout.flags.f_contiguous:  # in place (out=M): the same bits, in M
            inplace = layout.copy(order="K")
            assert _quantise(inplace, out=inplace) is inplace
            np.testing.assert_array_equal(inplace.view(np.uint64), got.view(np.uint64))
    assert (_quantise(ties) != ties).all()  # every tie moved, to its even neighbour
    with pytest.raises(ValueError, match="out is a new array"):
        _quantise(M, out=np.empty_like(M))


def test_threshold_generalises_to_new_data():
    X, y = _synthetic(2000, seed=0)
    Xt, yt = _synthetic(2000, seed=1)
    m = BoostingScorer(seed=0, max_iter=80).fit(X, y)
    flag = m.predict(Xt).astype(bool)
    assert flag.sum() > 0 and yt[flag].mean() >= 0.8


def test_explicit_threshold_skips_validation():
    X, y = _synthetic()
    m = LogisticScorer(threshold=0.5).fit(X, y)
    assert m.threshold_ == 0.5 and not hasattr(m, "n_validation_")


def test_bad_input():
    X, y = _synthetic()
    with pytest.raises(NotFittedError):
        LogisticScorer().decision_function(X)
    with pytest.raises(ValueError, match="both classes"):
        LogisticScorer().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="rows"):
        LogisticScorer().fit(X, y[:-1])
    with pytest.raises(TypeError):
        LogisticScorer().fit(X.to_numpy(), y)
    m = LogisticScorer(seed=0).fit(X, y)
    with pytest.raises(MissingInputError, match="speed"):
        m.decision_function(X.drop(columns="speed"))
    with pytest.raises(ValueError, match="validation_fraction"):
        LogisticScorer(validation_fraction=1.5).fit(X, y)


def test_labels_for():
    lab = pd.DataFrame({"entity_type": ["account", "account", "account", "note"],
                        "entity_id": [1, 2, 2, 3], "typology": ["honest_viral_fan", "device_farm",
                                                                "honest_shared_device", "engagement_buyer"]})
    y, t = labels_for([1, 2, 3, 4], lab)
    assert y.tolist() == [0, 1, 0, 0]
    assert t.tolist() == ["honest_viral_fan", "device_farm", "honest", "honest"]
    custom = pd.DataFrame({"entity_type": "account", "entity_id": [1, 2], "typology": ["fraud:review_spam",
                                                                                      "honest:power_reviewer"]})
    assert labels_for([1, 2, 3], custom)[0].tolist() == [1, 0, 0]


@pytest.mark.parametrize("cls", [LogisticScorer, BoostingScorer])
def test_all_empty_feature_is_dropped_before_the_model(cls):
    X, y = _synthetic()
    a = cls(seed=3).fit(X.assign(devices=np.nan), y)
    b = cls(seed=3).fit(X, y)
    assert a.dropped_features_ == ["devices"] and list(a.feature_names_in_) == ["speed", "noise", "count"]
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    with pytest.raises(MissingInputError, match="all empty: speed, noise, count"):
        cls(seed=3).fit(X.assign(speed=np.nan, noise=np.nan, count=np.nan), y)


def test_time_split_disjoint_and_label_delay():
    t = toy_tables(0)
    labels = t.pop("labels")
    sp = time_split(t, labels, train_days=0.9, label_delay_days=0.2)
    assert not set(sp.X_train.account_id) & set(sp.X_test.account_id)
    assert sp.train_end == T0 + pd.Timedelta(days=0.9)
    assert sp.label_known_until == T0 + pd.Timedelta(hours=16.8)
    # honest users first active in [16.8 h, 21.6 h) have no known label yet: neither side
    ev = pd.concat([t[n][["account_id", "ts"]] for n in ("interactions", "orders", "coupon_claims")])
    first = ev.groupby("account_id").ts.min()
    gap = ((first >= sp.label_known_until) & (first < sp.train_end)).sum()
    assert sp.n_unknown_label == gap > 0
    assert set(sp.X_train.account_id) == set(first.index[first < sp.label_known_until])
    # the farm (day 1, 02:00) and the scalpers (claims on day 1) are new in the test window
    assert set(range(121, 157)) <= set(sp.X_test.account_id)
    assert sp.y_test[sp.X_test.account_id.isin(range(121, 157)).to_numpy()].all()
    assert sp.y_train.sum() == 0
    assert len(sp.y_train) == len(sp.X_train) and len(sp.typology_test) == len(sp.X_test)
    with pytest.raises(ValueError, match="no test period"):
        time_split(t, labels, train_days=60)


def test_precision_bound_threshold_is_more_careful():
    from fraudkit.identification.base import threshold_for_precision
    from fraudkit.identification.models import _threshold_for_precision_bound

    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    s = y * 3.0 + rng.normal(size=400)
    plain = threshold_for_precision(s, y, 0.9)
    assert _threshold_for_precision_bound(s, y, 0.9, None) == plain
    careful = _threshold_for_precision_bound(s, y, 0.9, 0.9)
    assert careful >= plain
    flagged = s > careful
    assert y[flagged].mean() >= 0.9
    assert _threshold_for_precision_bound(s[:5], y[:5], 0.99, 0.99) == np.inf


def _two_kinds(n=3000, seed=1):
    """Two fraud kinds seen by different features, with noisy labels: two scorers validated alone at 0.8
    precision make a union below it."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"account_id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (((X.a + 0.8 * rng.normal(size=n)) > 1.5) | ((X.b + 0.8 * rng.normal(size=n)) > 1.5)).astype(int).to_numpy()
    return X, y


def test_union_thresholds_make_the_union_reach_the_target():
    from fraudkit.identification.models import union_thresholds

    X, y = _two_kinds()
    kw = dict(seed=0, target_precision=0.8, precision_confidence=None)
    m = {"logistic": LogisticScorer(**kw).fit(X, y), "boosting": BoostingScorer(**kw).fit(X, y)}
    out = union_thresholds(m, target_precision=0.8, confidence=None)
    assert out["precision_before"] < 0.8 <= out["precision_after"] and out["delta"] > 0
    assert all(out["thresholds"][k] > m[k].threshold_ for k in m)  # only ever tightens
    va, yv = m["logistic"].validation_index_, m["logistic"].validation_y_
    hit = np.zeros(len(va), bool)
    for k in m:
        hit |= m[k].decision_function(X.iloc[va]) > out["thresholds"][k]
    assert yv[hit].mean() == pytest.approx(out["precision_after"])
    # a union already precise enough keeps its thresholds; different hold-outs are not combined
    easy = union_thresholds(m, target_precision=0.5, confidence=None)
    assert easy["delta"] == 0.0 and easy["thresholds"] == {k: m[k].threshold_ for k in m}
    other = {"logistic": m["logistic"], "boosting": BoostingScorer(**{**kw, "seed": 5}).fit(X, y)}
    assert np.isnan(union_thresholds(other)["delta"])
    # exact seeded figures
    assert round(out["delta"], 3) == 0.478
    assert (round(out["precision_before"], 3), round(out["precision_after"], 3)) == (0.765, 0.806)


@pytest.mark.parametrize("cls", [LogisticScorer, BoostingScorer])
def test_row_order_does_not_change_the_fit(cls):
    """Feature tables come back from DuckDB in a different row order run to run: the validation hold-out is
    drawn in key order, so the same entities validate and the threshold and scores are the same."""
    X, y = _synthetic(n=1500, seed=2)
    perm = np.random.default_rng(9).permutation(len(X))
    a = cls(seed=0).fit(X, y)
    b = cls(seed=0).fit(X.iloc[perm].reset_index(drop=True), y[perm])
    assert a.threshold_ == b.threshold_
    np.testing.assert_array_equal(np.sort(a.validation_index_), np.sort(perm[b.validation_index_]))
    sa = pd.Series(a.decision_scores_, index=a.entity_ids_)
    sb = pd.Series(b.decision_scores_, index=b.entity_ids_)
    np.testing.assert_allclose(sa.sort_index().to_numpy(), sb.sort_index().to_numpy(), rtol=0, atol=1e-12)


def test_last_bit_noise_does_not_change_the_fit():
    """Parallel aggregation changes features in their last bits run to run; the fit must not notice."""
    X, y = _synthetic(n=1500, seed=4)
    noisy = X.copy()
    for c in ("speed", "noise"):
        noisy[c] = np.nextafter(noisy[c].to_numpy(), np.inf)
    for cls in (LogisticScorer, BoostingScorer):
        a, b = cls(seed=0).fit(X, y), cls(seed=0).fit(noisy, y)
        assert a.threshold_ == b.threshold_
        np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
