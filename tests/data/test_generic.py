"""Tests for fraudkit.data.generic: reading, validating and writing the generic graph-fraud format."""

import numpy as np
import pandas as pd
import pytest

from fraudkit.data.generic import load_generic, write_generic
from fraudkit.errors import DataValidationError


def _nodes():
    return pd.DataFrame({"id": ["a", "b", "c", "d"], "x": [0.1, 0.2, 0.3, 0.4], "flag": [True, False, True, False],
                         "label": [1, 0, 0, -1], "train_0": [True, True, False, False],
                         "val_0": [False, False, True, False], "test_0": [False, False, False, False]})


def _edges():
    return pd.DataFrame({"src": ["a", "b", "c", "b"], "dst": ["b", "a", "d", "c"],
                         "relation": ["r1", "r1", "r2", "r1"], "weight": [2.0, 3.0, 1.0, 1.0]})


def _issues(tmp_path, nodes, edges, events=None, fmt="csv"):
    d = tmp_path / "bad"
    d.mkdir()
    for stem, df in (("nodes", nodes), ("edges", edges), ("events", events)):
        if df is not None:
            (df.to_csv(d / f"{stem}.csv", index=False) if fmt == "csv" else df.to_parquet(d / f"{stem}.parquet"))
    with pytest.raises(DataValidationError) as e:
        load_generic(d)
    return {(i.column, i.problem): i for i in e.value.issues}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip(tmp_path, fmt):
    nodes = _nodes()
    before = nodes.copy()
    write_generic(tmp_path / "g", nodes, _edges(), fmt=fmt)
    g = load_generic(tmp_path / "g")
    pd.testing.assert_frame_equal(nodes, before)  # input not mutated
    assert g.name == "g" and g.n_nodes == 4 and g.n_edges == 4
    assert g.feature_names == ("x", "flag")
    np.testing.assert_allclose(g.features[:, 1], [1, 0, 1, 0])
    assert g.labels.tolist() == [1, 0, 0, -1]
    assert g.split_ids == (0,)
    train, val, test = g.split(0)
    assert train.tolist() == [True, True, False, False] and not test.any()
    assert not g.features.flags.writeable


def test_adjacency_symmetric_max_and_relation(tmp_path):
    write_generic(tmp_path / "g", _nodes(), _edges())
    g = load_generic(tmp_path / "g")
    a = g.adjacency().toarray()
    # a-b stored both ways (2 and 3): the larger wins, on both sides
    assert a[0, 1] == a[1, 0] == 3.0
    assert (a == a.T).all() and a.sum() == 2 * (3 + 1 + 1)
    d = g.adjacency(symmetric=False).toarray()
    assert d[0, 1] == 2.0 and d[1, 0] == 3.0 and d[3, 2] == 0.0
    r2 = g.adjacency("r2").toarray()
    assert r2.sum() == 2.0 and r2[2, 3] == 1.0
    with pytest.raises(KeyError, match="no edge has relation"):
        g.adjacency("nope")


def test_describe_and_empty_edges(tmp_path):
    edges = pd.DataFrame({"src": pd.Series([], dtype="int64"), "dst": pd.Series([], dtype="int64")})
    nodes = pd.DataFrame({"id": [0, 1, 2], "x": [1.0, 2.0, 3.0], "label": [1, 0, 0]})
    for fmt in ("csv", "parquet"):
        write_generic(tmp_path / fmt, nodes, edges, fmt=fmt)
        g = load_generic(tmp_path / fmt)
        assert g.n_edges == 0 and g.adjacency().nnz == 0
        assert "1 fraud (33.33% of labelled)" in g.describe()


def test_every_problem_is_reported_at_once(tmp_path):
    nodes = _nodes()
    nodes.loc[1, "id"] = "a"                    # duplicate id
    nodes.loc[2, "label"] = 2                   # label outside {-1, 0, 1}
    nodes["text"] = ["u", "v", "w", "z"]        # non-numeric feature
    nodes.loc[3, "x"] = np.nan                  # missing feature
    nodes.loc[0, "val_0"] = True                # overlaps train_0
    edges = _edges()
    edges.loc[0, "dst"] = "zz"                  # endpoint not in nodes
    events = pd.DataFrame({"account": ["a", "qq"], "target": [1, 2]})
    issues = _issues(tmp_path, nodes, edges, events)
    assert ("id", "duplicate node id") in issues
    assert issues[("label", "label outside {-1, 0, 1}")].example == "2"
    assert ("text", "non-numeric feature") in issues
    nan = issues[("x", "missing or infinite feature values")]
    assert nan.n_rows == 1 and "median" in nan.fix
    assert ("train_0, val_0", "split masks overlap") in issues
    assert issues[("dst", "edge endpoint not in nodes")].example == "'zz'"
    assert ("account", "event account not in nodes") in issues


def test_missing_files_and_columns(tmp_path):
    with pytest.raises(DataValidationError, match="folder not found"):
        load_generic(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError) as e:
        load_generic(tmp_path / "empty")
    assert {i.problem for i in e.value.issues} == {"file not found"} and len(e.value.issues) == 2
    issues = _issues(tmp_path, pd.DataFrame({"key": [1], "x": [1.0]}), pd.DataFrame({"a": [1], "b": [1]}),
                     fmt="parquet")
    assert ("id", "missing column") in issues and ("src", "missing column") in issues


def test_unlabelled_node_in_split_and_bad_weight(tmp_path):
    nodes = _nodes()
    nodes.loc[3, "test_0"] = True  # node d has label -1
    edges = _edges()
    edges.loc[1, "weight"] = 0.0
    issues = _issues(tmp_path, nodes, edges)
    assert issues[("test_0", "split contains nodes with unknown label (-1)")].example == "'d'"
    assert ("weight", "weight missing, non-numeric or zero") in issues


def test_plus_minus_one_labels_are_refused_with_the_mapping(tmp_path):
    nodes = _nodes().assign(label=[1, -1, -1, 1]).drop(columns=["train_0", "val_0", "test_0"])
    issue = _issues(tmp_path, nodes, _edges())[("label", "labels look encoded as -1/+1 (no 0)")]
    assert issue.n_rows == 2 and issue.fix.startswith("write 0 for honest (map -1 -> 0, keep 1 for fraud)")


def test_id_type_mismatch_is_named(tmp_path):
    nodes = pd.DataFrame({"id": [1, 2, 3], "x": [0.0, 1.0, 2.0]})
    edges = pd.DataFrame({"src": ["1", "2"], "dst": ["2", "3"]})
    issues = _issues(tmp_path, nodes, edges, fmt="parquet")
    src = issues[("src", "edge endpoint not in nodes: id type mismatch (src is text, nodes.id is int64)")]
    assert src.example == "'1'" and src.fix.startswith("write the ids with one type in every file")


def test_signed_edges_keep_their_sign(tmp_path):
    edges = _edges().assign(weight=[2.0, -3.0, 1.0, -1.0])
    g = load_generic(write_generic(tmp_path / "signed", _nodes(), edges))
    assert g.weight.tolist() == [2.0, -3.0, 1.0, -1.0]
    assert g.adjacency()[0, 1] == 3.0  # any sign: absolute weights, the larger direction
    assert g.adjacency(sign="positive")[0, 1] == 2.0 and g.adjacency(sign="negative")[1, 2] == 1.0
    assert g.adjacency(sign="negative").nnz == 4


def test_write_generic_keeps_old_folder_when_invalid(tmp_path):
    write_generic(tmp_path / "g", _nodes(), _edges())
    bad = _edges()
    bad.loc[0, "src"] = "nope"
    with pytest.raises(DataValidationError):
        write_generic(tmp_path / "g", _nodes(), bad)
    assert load_generic(tmp_path / "g").n_edges == 4
    with pytest.raises(ValueError, match="fmt"):
        write_generic(tmp_path / "h", _nodes(), _edges(), fmt="xlsx")


def _typed_nodes():
    return pd.DataFrame({"id": [1, 2, 3, 100, 101], "type": ["user"] * 3 + ["product"] * 2,
                         "x": [1.0, 2.0, 3.0, np.nan, np.nan], "price": [np.nan, np.nan, np.nan, 9.5, 3.0],
                         "label": [1, 0, 0, np.nan, np.nan]})


def test_typed_nodes_are_projected_onto_the_labelled_type(tmp_path):
    edges = pd.DataFrame({"src": [1, 2, 3, 1, 2], "dst": [100, 100, 101, 2, 101], "relation": ["review"] * 4 + ["x"]})
    g = load_generic(write_generic(tmp_path / "t", _typed_nodes(), edges))
    # only users are nodes; the product-only column is not a user feature
    assert g.scored_type == "user" and g.n_other_nodes == 2 and g.node_ids.tolist() == [1, 2, 3]
    assert g.feature_names == ("x",) and g.labels.tolist() == [1, 0, 0]
    # the user-user edge stays an edge; user-product edges became events (relation -> action)
    assert g.n_edges == 1 and (g.src.tolist(), g.dst.tolist()) == ([0], [1])
    assert g.events[["account", "target", "action"]].values.tolist() == [
        [1, "100", "review"], [2, "100", "review"], [3, "101", "review"], [2, "101", "x"]]
    # the same graph written with an events table gives the same projection
    ev = pd.DataFrame({"account": [1, 2, 3, 2], "target": ["p0", "p0", "p1", "p1"]})
    plain = _typed_nodes().iloc[:3].drop(columns=["type", "price"])
    h = load_generic(write_generic(tmp_path / "e", plain, pd.DataFrame({"src": [1], "dst": [2]}), ev))
    assert (g.event_projection() != h.event_projection()).nnz == 0
    assert "scored type: 'user' (2 nodes of other types projected through their edges)" in g.describe()


def test_typed_node_errors_name_file_column_example_and_fix(tmp_path):
    for sub in ("a", "c", "s"):
        (tmp_path / sub).mkdir()
    edges = pd.DataFrame({"src": [1, 100], "dst": [100, 101]})
    got = _issues(tmp_path, _typed_nodes(), edges)
    i = got[("src, dst", "edge between two nodes that are not of the scored type ('user')")]
    assert i.file == "edges.csv" and i.example == "100" and "drop the others" in i.fix
    # labels on two types: ambiguous
    both = _typed_nodes().assign(label=[1, 0, 0, 1, 0])
    i = _issues(tmp_path / "a", both, edges.iloc[:1])[("type", "ambiguous scored type (labels on types "
                                                              "['product', 'user'])")]
    assert "scored_type=" in i.fix and i.file == "nodes.csv"
    # an unknown type, a missing type, labels on a non-scored type, products in a split
    with pytest.raises(DataValidationError, match="unknown scored type.*'seller'.*choose one of the node types"):
        load_generic(write_generic(tmp_path / "ok", _typed_nodes(), edges.iloc[:1]), scored_type="seller")
    d = tmp_path / "b"
    d.mkdir()
    both.to_csv(d / "nodes.csv", index=False)
    edges.iloc[:1].to_csv(d / "edges.csv", index=False)
    with pytest.raises(DataValidationError) as e:
        load_generic(d, scored_type="user")
    (i,) = e.value.issues
    assert (i.column, i.example, i.n_rows) == ("label", "100", 2) and "non-scored type" in i.problem
    missing = _typed_nodes().assign(type=["user", "user", None, "product", "product"])
    assert _issues(tmp_path / "c", missing, edges.iloc[:1])[("type", "missing node type")].example == "3"
    split = _typed_nodes().assign(train_0=[True, False, False, True, False])
    got = _issues(tmp_path / "s", split, edges.iloc[:1])
    assert got[("train_0", "split holds nodes of a non-scored type ('user' is scored)")].example == "100"
