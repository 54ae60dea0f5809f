"""Tests for fraudkit.evaluation.graphbench on small generated graphs with a planted neighbourhood signal."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from threadpoolctl import threadpool_limits

from fraudkit.data.generic import GenericGraph, load_generic, write_generic
from fraudkit.errors import FraudkitError
from fraudkit.evaluation import graphbench as gb


def _planted(tmp_path, n=400, seed=0, edges=True):
    """Own features carry no signal; the label is 1 when the neighbours' mean of x0 (plus noise) is in the top 20 %."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    src = rng.integers(0, n, 4 * n)
    dst = rng.integers(0, n, 4 * n)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    a = np.zeros((n, n))
    a[src, dst] = a[dst, src] = 1
    nb_mean = (a @ x[:, 0]) / np.maximum(a.sum(1), 1)
    risk = nb_mean + rng.normal(scale=0.2, size=n)  # noisy, so boosting stops early
    y = (risk > np.quantile(risk, 0.8)).astype(int)
    nodes = pd.DataFrame({"id": np.arange(n), "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "label": y})
    e = pd.DataFrame({"src": src, "dst": dst}) if edges else pd.DataFrame({"src": [], "dst": []}, dtype="int64")
    return load_generic(write_generic(tmp_path / f"planted{int(edges)}", nodes, e))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _planted(tmp_path_factory.mktemp("gb"))


def test_neighbour_aggregation_beats_features_alone(planted, tmp_path):
    out = tmp_path / "trials.csv"
    t = gb.run_benchmark(planted, protocol="full", trials=2, out=out,
                         methods=["features_gbm", "neighbors_gbm", "ensemble"])
    assert list(t.columns) == list(gb.RESULT_COLUMNS)
    r = t.set_index("method")
    assert r.loc["features_gbm", "auroc_mean"] < 0.62          # own features carry no signal
    assert r.loc["neighbors_gbm", "auroc_mean"] > 0.80          # the planted signal is found
    assert r.loc["ensemble", "auroc_mean"] >= r.loc["features_gbm", "auroc_mean"]
    assert (r["trials"] == 2).all()
    per = pd.read_csv(out)
    assert len(per) == 6 and set(per.trial) == {0, 1}
    # exact seeded result: the same call gives the same numbers
    again = gb.run_benchmark(planted, protocol="full", trials=1, methods=["neighbors_gbm"])
    first = per[(per.method == "neighbors_gbm") & (per.trial == 0)].auroc.iloc[0]
    assert again.auroc_mean.iloc[0] == pytest.approx(first, abs=1e-12)
    assert r.loc["neighbors_gbm", "auroc_mean"] == pytest.approx(PINNED_NEIGHBORS_AUROC, abs=1e-9)


PINNED_NEIGHBORS_AUROC = 0.8840625  # seeds 0 and 1, graph seed 0; splits drawn in canonical node order (issue 16)


def _shuffled(graph, tmp_path, seed=7):
    """The same graph written again with its node rows shuffled, ids renamed and edge rows shuffled."""
    rng = np.random.default_rng(seed)
    new_id = rng.permutation(graph.n_nodes) * 13 + 1000
    nodes = pd.DataFrame(graph.features, columns=list(graph.feature_names)).assign(
        id=new_id, label=graph.labels)
    nodes = nodes.iloc[rng.permutation(graph.n_nodes)]
    edges = pd.DataFrame({"src": new_id[graph.src], "dst": new_id[graph.dst]}).iloc[rng.permutation(graph.n_edges)]
    return load_generic(write_generic(tmp_path / "shuffled", nodes, edges))


@pytest.mark.parametrize("protocol,methods", [
    ("full", ["features_gbm", "neighbors_gbm", "neighbors_trees", "propagation", "neighbors_community_gbm",
              "ensemble"]),
    ("semi", ["neighbors_linear", "neighbors_labels_gbm"]),
    ("unsupervised", None)])
def test_results_do_not_depend_on_row_order_or_ids(planted, tmp_path, protocol, methods):
    other = _shuffled(planted, tmp_path)
    assert not np.array_equal(other.node_ids, planted.node_ids)
    a = gb.run_benchmark(planted, protocol=protocol, trials=2, methods=methods).drop(columns="seconds")
    b = gb.run_benchmark(other, protocol=protocol, trials=2, methods=methods).drop(columns="seconds")
    a["note"] = a["note"].str.replace(planted.name, "<name>")
    b["note"] = b["note"].str.replace(other.name, "<name>")
    pd.testing.assert_frame_equal(a.drop(columns="dataset"), b.drop(columns="dataset"), check_exact=True)


def test_methods_never_read_test_labels(planted):
    split = gb.make_splits(planted, protocol="full", trials=1, seed=0)[0]
    flipped_y = planted.labels.copy()
    flipped_y[split.test] = 1 - flipped_y[split.test]
    other = GenericGraph(planted.name, planted.node_ids, planted.features, planted.feature_names, flipped_y,
                         src=planted.src, dst=planted.dst, weight=planted.weight)
    with threadpool_limits(limits=1):
        prev_a, prev_b = {}, {}
        for name in ("neighbors_linear", "neighbors_labels_gbm", "neighbors_community_gbm", "community_risk",
                     "propagation", "ensemble"):
            fn = gb.METHODS[name][0]
            a = fn(gb._Bench(planted), split, 0, dict(prev_a))
            b = fn(gb._Bench(other), split, 0, dict(prev_b))
            np.testing.assert_array_equal(a, b, err_msg=name)
            prev_a[name], prev_b[name] = a, b


def test_semi_and_unsupervised(planted):
    semi = gb.run_benchmark(planted, protocol="semi", trials=2, methods=["neighbors_gbm"])
    assert semi.loc[0, "auroc_mean"] > 0.6 and semi.loc[0, "trials"] == 2
    uns = gb.run_benchmark(planted, protocol="unsupervised", trials=2).set_index("method")
    assert uns.index.tolist() == ["isolation_forest", "isolation_forest_neighbors", "low_degree", "low_activity",
                                  "single_target", "negative_share", "fraudar", "community_screening",
                                  "checked_best", "best_single_feature"]
    assert set(uns.index[uns.trials == 2]) == set(uns.index) - {"low_activity", "single_target", "negative_share"}
    assert uns.loc["low_activity", "note"] == "unavailable: planted1 has no events table"
    assert uns.loc["negative_share", "note"] == "unavailable: planted1 has no negative edge weights (no signed edges)"
    with pytest.raises(ValueError, match="not available for protocol"):
        gb.run_benchmark(planted, protocol="unsupervised", methods=["features_gbm"])


def test_no_edges_marks_graph_methods_unavailable(tmp_path):
    g = _planted(tmp_path, n=300, edges=False)
    t = gb.run_benchmark(g, protocol="full", trials=2, methods=["features_gbm", "neighbors_gbm"]).set_index("method")
    assert t.loc["features_gbm", "trials"] == 2
    assert t.loc["neighbors_gbm", "trials"] == 0 and np.isnan(t.loc["neighbors_gbm", "auroc_mean"])
    assert t.loc["neighbors_gbm", "note"].startswith("unavailable")


def test_make_splits(planted):
    y = planted.labels
    full = gb.make_splits(planted, protocol="full", trials=3, seed=5)
    for s in full:
        assert not (s.train & s.val).any() and not (s.train & s.test).any() and not (s.val & s.test).any()
        assert s.train.sum() == pytest.approx(0.5 * len(y), abs=2)
        assert y[s.train].mean() == pytest.approx(y.mean(), abs=0.01)   # stratified
    assert not np.array_equal(full[0].test, full[1].test)
    again = gb.make_splits(planted, protocol="full", trials=3, seed=5)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(full, again))
    semi = gb.make_splits(planted, protocol="semi", trials=2, seed=0)
    for s in semi:
        assert (s.train.sum(), y[s.train].sum(), s.val.sum(), y[s.val].sum()) == (100, 20, 100, 20)
        assert s.test.sum() == len(y) - 200 and not (s.test & (s.train | s.val)).any()
    uns = gb.make_splits(planted, protocol="unsupervised", trials=2, seed=5)
    assert not uns[0].train.any() and np.array_equal(uns[0].test, full[0].test)


def test_data_splits_are_used(tmp_path):
    nodes = pd.DataFrame({"id": range(8), "x": np.arange(8.0), "label": [0, 1] * 4,
                          "train_0": [1, 1, 1, 1, 0, 0, 0, 0], "val_0": [0, 0, 0, 0, 1, 1, 0, 0],
                          "test_0": [0, 0, 0, 0, 0, 0, 1, 1]})
    g = load_generic(write_generic(tmp_path / "d", nodes, pd.DataFrame({"src": [0], "dst": [1]})))
    (s,) = gb.make_splits(g, protocol="full", trials=1)
    assert s.test.tolist() == [False] * 6 + [True] * 2
    with pytest.raises(ValueError, match="at most 1 trials"):
        gb.make_splits(g, protocol="full", trials=2)
    with pytest.raises(gb.TooFewLabels, match="d: the semi protocol needs at least 60 fraud and 240 honest "
                       r"labelled nodes .* it has 4 fraud and 4 honest. Fix: run --protocol full or unsupervised"):
        gb.make_splits(g, protocol="semi")


def test_evaluate_scores():
    m = gb.evaluate_scores([1, 0, 1, 0, 0], [0.9, 0.8, 0.1, 0.2, 0.3])
    # positive 0.9 outranks all 3 negatives, positive 0.1 none: AUROC 3/6; precision 1 at rank 1, 2/5 at rank 5
    assert m == {"auroc": pytest.approx(3 / 6), "auprc": pytest.approx((1 + 2 / 5) / 2), "rec_at_k": 0.5}
    with pytest.raises(ValueError, match="both"):
        gb.evaluate_scores([0, 0], [0.1, 0.2])


def test_bad_input(planted, tmp_path):
    with pytest.raises(ValueError, match="protocol"):
        gb.run_benchmark(planted, protocol="transductive")
    with pytest.raises(ValueError, match="not available"):
        gb.run_benchmark(planted, methods=["gcn"])
    nolab = GenericGraph("nolab", planted.node_ids, planted.features, planted.feature_names, None)
    with pytest.raises(FraudkitError, match="no 'label' column"):
        gb.run_benchmark(nolab)
    with pytest.raises(ValueError, match="trials"):
        gb.make_splits(planted, trials=0)


def test_cli_and_format_table(planted, tmp_path):
    from fraudkit.cli import main

    res = CliRunner().invoke(main, ["graph-benchmark", str(planted.path), "--trials", "2",
                                    "--methods", "features_gbm", "--out", str(tmp_path / "t.csv")])
    assert res.exit_code == 0, res.output
    assert "| dataset | protocol | method | AUROC" in res.output and "features_gbm" in res.output
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2
    t = gb.run_benchmark(planted, trials=2, methods=["features_gbm"])
    row = format_row = gb.format_table(t).splitlines()[2]
    assert f"{100 * t.auroc_mean[0]:.2f} ± {100 * t.auroc_std[0]:.2f}" in row and format_row.startswith("| planted1")


def test_neighbors_linear_finds_the_linear_neighbour_signal(planted):
    # the planted label is a threshold on the neighbours' mean of x0: a linear model on hop means sees it
    split = gb.make_splits(planted, protocol="semi", trials=1, seed=0)[0]
    bench = gb._Bench(planted)
    with threadpool_limits(limits=1):
        lin = gb.neighbors_linear(bench, split, 0, {})
        own = gb.features_gbm(bench, split, 0, {})
    y = planted.labels
    auc_lin = gb.evaluate_scores(y[split.test], lin[split.test])["auroc"]
    assert auc_lin > 0.85 > gb.evaluate_scores(y[split.test], own[split.test])["auroc"] + 0.2
    assert auc_lin == pytest.approx(PINNED_LINEAR_AUROC, abs=1e-9)
    block = bench.linear_block()
    assert block.shape == (planted.n_nodes, 3 + 3 * 3 + 5)   # own, 1/2/3-hop means, 5 structural
    np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-9)


PINNED_LINEAR_AUROC = 0.8909375  # semi split seed 0, graph seed 0; splits drawn in canonical node order (issue 16)


def test_propagation_ranks_the_fraud_side_first():
    # two cliques joined by one edge; fraud seeds in clique A, honest seeds in clique B
    n = 20
    a = np.zeros((n, n))
    a[:10, :10] = a[10:, 10:] = 1
    np.fill_diagonal(a, 0)
    a[9, 10] = a[10, 9] = 1
    y = np.array([1] * 10 + [0] * 10, dtype=np.int8)
    src, dst = np.nonzero(np.triu(a))
    g = GenericGraph("cliques", np.arange(n), np.zeros((n, 1)), ("x",), y, src=src, dst=dst,
                     weight=np.ones(len(src)))
    train = np.isin(np.arange(n), [0, 1, 18, 19])
    val = np.isin(np.arange(n), [2, 3, 16, 17])
    split = gb.Split(0, train, val, ~train & ~val)
    s = gb.propagation(gb._Bench(g), split, 0, {})
    assert s[split.test & (y == 1)].min() > s[split.test & (y == 0)].max()


def test_ensemble_weights_the_informative_member():
    rng = np.random.default_rng(0)
    n = 600
    y = (rng.random(n) < 0.2).astype(np.int8)
    g = GenericGraph("toy", np.arange(n), np.zeros((n, 1)), ("x",), y)
    split = gb.make_splits(g, protocol="full", trials=1, seed=0)[0]
    good = y + rng.normal(scale=0.7, size=n)
    previous = {"good": good, "noise1": rng.normal(size=n), "noise2": rng.normal(size=n),
                "weak": y + rng.normal(scale=3.0, size=n)}
    bench = gb._Bench(g)
    e = gb.ensemble(bench, split, 0, previous)
    assert e.shape == (n,) and np.array_equal(e, gb.ensemble(bench, split, 0, previous))  # seeded
    auc = gb.evaluate_scores(y[split.test], e[split.test])["auroc"]
    best_single = gb.evaluate_scores(y[split.test], good[split.test])["auroc"]
    assert auc > best_single - 0.02 and auc > 0.8
    # 150 validation nodes: the members within one standard error of the best (here "good" alone) are averaged
    assert auc == pytest.approx(0.8139070960387575, abs=1e-12)   # seed 0, measured once
    # a single member: the ensemble is that member's rank order
    one = gb.ensemble(bench, split, 0, {"good": good})
    assert np.array_equal(np.argsort(one, kind="stable"), np.argsort(good, kind="stable"))
    with pytest.raises(gb.MethodUnavailable):
        gb.ensemble(bench, split, 0, {})


def test_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 8, 300).astype(float)   # many ties
    assert gb._auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_cli_reproduces_the_library_table(planted, tmp_path):
    # what benchmarks/real_data.py --check relies on: the CLI prints the library's rows, and its CSV gives them
    from fraudkit.cli import main

    methods = ["features_gbm", "neighbors_linear", "propagation", "ensemble"]
    res = CliRunner().invoke(main, ["graph-benchmark", str(planted.path), "--protocol", "semi", "--trials", "2",
                                    "--methods", ",".join(methods), "--out", str(tmp_path / "semi.csv")])
    assert res.exit_code == 0, res.output
    lib = gb.run_benchmark(planted, protocol="semi", trials=2, methods=methods)

    def rows(text):  # every cell but s/trial, which is CPU time
        return [r.split("|")[1:8] + r.split("|")[9:] for r in text.splitlines()[2:]]
    assert rows(res.output.strip()) == rows(gb.format_table(lib))
    per = pd.read_csv(tmp_path / "semi.csv")
    means = per.groupby("method", sort=False).auroc.mean()
    np.testing.assert_allclose(means[methods].to_numpy(), lib.set_index("method").auroc_mean[methods].to_numpy(),
                               rtol=0, atol=1e-12)


def _signed(tmp_path, n=300, seed=0):
    """Fraud nodes receive mostly negative ratings, honest ones mostly positive; features are noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    src, dst = rng.integers(0, n, 6 * n), rng.integers(0, n, 6 * n)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    bad = rng.random(len(dst)) < np.where(y[dst] == 1, 0.7, 0.1)
    w = np.where(bad, -rng.integers(1, 11, len(dst)), rng.integers(1, 11, len(dst))).astype(float)
    nodes = pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "label": y})
    # spammers write one or two reviews on one product; honest users review many
    k = np.where(y == 1, rng.integers(1, 3, n), rng.integers(2, 12, n))
    acc = np.repeat(np.arange(n), k)
    tgt = np.where(y[acc] == 1, 0, rng.integers(0, 50, len(acc)))
    events = pd.DataFrame({"account": acc, "target": tgt})
    return load_generic(write_generic(tmp_path / "signed", nodes, pd.DataFrame({"src": src, "dst": dst,
                                                                                "weight": w}), events))


def test_signed_edges_and_events_reach_the_unsupervised_methods(tmp_path):
    g = _signed(tmp_path)
    t = gb.run_benchmark(g, protocol="unsupervised", trials=2,
                         methods=["negative_share", "low_activity", "single_target", "isolation_forest",
                                  "best_single_feature"]).set_index("method")
    assert t.loc["negative_share", "auroc_mean"] > 0.9
    assert t.loc["low_activity", "auroc_mean"] > 0.8
    assert t.loc["single_target", "auroc_mean"] > 0.8
    assert t.loc["best_single_feature", "auroc_mean"] < t.loc["negative_share", "auroc_mean"]
    assert t.loc["negative_share", "auroc_mean"] == pytest.approx(PINNED_NEGATIVE_SHARE_AUROC, abs=1e-9)


PINNED_NEGATIVE_SHARE_AUROC = 0.993452380952381  # graph seed 0, splits seeds 0 and 1, measured once


def test_an_inverted_score_is_flipped_and_said_so(tmp_path):
    """Honest nodes are the outliers: the isolation forest ranks them first, the check on labelled non-test
    nodes flips it, and the note says so."""
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.2).astype(int)
    x = np.where(y[:, None] == 1, rng.normal(scale=0.1, size=(n, 2)), rng.normal(scale=3.0, size=(n, 2)))
    nodes = pd.DataFrame({"id": np.arange(n), "a": x[:, 0], "b": x[:, 1], "label": y})
    g = load_generic(write_generic(tmp_path / "inv", nodes, pd.DataFrame({"src": [0], "dst": [1]})))
    t = gb.run_benchmark(g, protocol="unsupervised", trials=2, methods=["isolation_forest"])
    assert t.loc[0, "auroc_mean"] > 0.8
    assert t.loc[0, "note"].startswith("direction flipped in 2/2 trials (AUROC 0.")


def test_featureless_folder_runs_on_structure(tmp_path):
    p = _planted(tmp_path, n=300)
    nodes = pd.DataFrame({"id": p.node_ids, "label": p.labels})
    g = load_generic(write_generic(tmp_path / "bare", nodes, pd.DataFrame({"src": p.node_ids[p.src],
                                                                           "dst": p.node_ids[p.dst]})))
    t = gb.run_benchmark(g, protocol="full", trials=1, methods=["features_forest", "neighbors_gbm"])
    assert (t.trials == 1).all()
    assert set(t.note) == {"no feature columns: structural features used as own features"}
    lone = load_generic(write_generic(tmp_path / "lone", nodes, pd.DataFrame({"src": [], "dst": []},
                                                                            dtype="int64")))
    with pytest.raises(FraudkitError, match="no feature column and there are no edges: nothing to score"):
        gb.run_benchmark(lone, protocol="full", trials=1)


def test_too_small_for_semi_is_a_message_not_a_traceback(tmp_path):
    nodes = pd.DataFrame({"id": range(300), "x": np.arange(300.0), "label": [1] * 30 + [0] * 270})
    d = write_generic(tmp_path / "small", nodes, pd.DataFrame({"src": [0], "dst": [1]}))
    from fraudkit.cli import main

    res = CliRunner().invoke(main, ["graph-benchmark", str(d), "--protocol", "semi", "--trials", "1"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "the semi protocol needs at least 60 fraud and 240 honest labelled nodes" in res.output
    assert "it has 30 fraud and 270 honest" in res.output


def _planted_module():
    """``benchmarks/planted.py``, the generator of the benchmark's planted graphs."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "planted.py"
    spec = importlib.util.spec_from_file_location("planted", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_typed_bipartite_gives_the_same_metrics_as_events(tmp_path):
    """Users and products as typed nodes + user->product edges, or users + an events table: one benchmark."""
    planted = _planted_module()
    ev = load_generic(planted.write_planted("planted_bipartite", tmp_path / "ev", n=400))
    typed = load_generic(planted.write_planted("planted_bipartite", tmp_path / "typed", n=400, typed=True))
    assert typed.scored_type == "user" and typed.n_other_nodes == 400 and typed.n_nodes == ev.n_nodes == 400
    assert typed.n_edges == 0 and len(typed.events) == len(ev.events)
    cols = ["method", "trials", "auroc_mean", "auprc_mean", "rec_at_k_mean", "note"]
    for protocol, methods in (("full", ["features_trees", "neighbors_gbm", "propagation", "ensemble"]),
                              ("unsupervised", ["low_activity", "fraudar", "community_screening"])):
        a = gb.run_benchmark(ev, protocol=protocol, trials=1, methods=methods)[cols]
        b = gb.run_benchmark(typed, protocol=protocol, trials=1, methods=methods)[cols]
        b["note"] = b["note"].str.replace("typed", "ev")
        pd.testing.assert_frame_equal(a, b)
        assert (a.trials == 1).all()


def test_signed_propagation_reads_the_signs(tmp_path):
    g = _signed(tmp_path)
    t = gb.run_benchmark(g, protocol="full", trials=2, methods=["propagation", "signed_propagation"])
    r = t.set_index("method").auroc_mean
    assert r["signed_propagation"] > 0.9  # fraud receive distrust from honest raters
    assert r["signed_propagation"] == pytest.approx(PINNED_SIGNED_PROPAGATION_AUROC, abs=1e-9)
    with pytest.raises(gb.MethodUnavailable, match="no negative edge weights"):
        gb.signed_propagation(gb._Bench(_planted(tmp_path)), gb.make_splits(g, trials=1)[0], 0, {})


PINNED_SIGNED_PROPAGATION_AUROC = 0.9357142857142857  # graph seed 0, splits seeds 0 and 1, measured once


def test_distrust_from_honest_pushes_towards_fraud():
    # honest 0 distrusts 2 and trusts 3; fraud 1 trusts 4: 2 and 4 look like fraud, 3 honest
    n = 6
    g = GenericGraph("tiny", np.arange(n), np.zeros((n, 1)), ("x",), np.array([0, 1, 0, 1, 0, 1], np.int8),
                     src=np.array([0, 0, 1, 5]), dst=np.array([2, 3, 4, 0]), weight=np.array([-5.0, 5.0, 5.0, 1.0]))
    train = np.array([1, 1, 0, 0, 0, 0], bool)
    split = gb.Split(0, train, ~train, ~train)
    f = gb.signed_propagation(gb._Bench(g), split, 0, {})
    assert f[2] > 0 and f[4] > 0 and f[3] < 0
    assert f[2] == pytest.approx(-f[3])  # the same tie, opposite signs


def test_per_relation_aggregates_keep_a_telling_relation_apart(tmp_path):
    planted = _planted_module()
    g = load_generic(planted.write_planted("planted_relations", tmp_path / "rel", n=1200))
    assert sorted(set(g.relation.tolist())) == ["follows", "shared_device"]
    t = gb.run_benchmark(g, protocol="full", trials=2, methods=["neighbors_gbm", "neighbors_relations_gbm"])
    r = t.set_index("method").auroc_mean
    assert r["neighbors_relations_gbm"] > r["neighbors_gbm"] + 0.02
    with pytest.raises(gb.MethodUnavailable, match="has 0 edge relation"):
        gb.neighbors_relations_gbm(gb._Bench(_signed(tmp_path)), gb.make_splits(g, trials=1)[0], 0, {})


def test_own_block_adds_count_ratios_and_the_baseline_is_no_ensemble_member():
    n = 400
    rng = np.random.default_rng(0)
    followers, following = rng.integers(0, 1000, n), rng.integers(1, 1000, n)
    y = (followers < following / 4).astype(np.int8)  # the ratio, not either count, tells
    x = np.column_stack([followers, following, rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    g = GenericGraph("counts", np.arange(n), x, ("followers", "following", "noise", "flag"), y)
    bench = gb._Bench(g)
    block = bench.own_block()
    assert block.shape == (n, 5)  # two count columns (the 0/1 flag and the real-valued noise are not counts)
    np.testing.assert_allclose(block[:, 4], np.log1p(followers) - np.log1p(following))
    split = gb.make_splits(g, protocol="full", trials=1, seed=0)[0]
    trees = gb.features_trees(bench, split, 0, {})
    forest = gb.features_forest(bench, split, 0, {})
    auc = (lambda s: gb.evaluate_scores(y[split.test], s[split.test])["auroc"])
    assert auc(trees) > auc(forest) and auc(trees) > 0.97
    # the plain baseline never joins the ensemble: with it alone there is nothing to combine
    with pytest.raises(gb.MethodUnavailable):
        gb.ensemble(bench, split, 0, {"features_forest": forest})
    assert np.array_equal(gb.ensemble(bench, split, 0, {"features_forest": forest, "features_trees": trees}),
                          gb.ensemble(bench, split, 0, {"features_trees": trees}))
